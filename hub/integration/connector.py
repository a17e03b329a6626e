"""The seam between govhub and department systems: records, outcomes, Source/Sink protocols.

A connector does I/O only. A `Source` hands out `Delivery`s (a `Record` plus `ack`/`nak`), a
`Sink` takes records and answers with one `Outcome` per record; everything else (concurrency,
batching, ack/nak, backoff, dead-lettering) belongs to the runtime in
`hub.integration.pipeline`, so every connector gets the same behaviour and no connector has to
get it right on its own. Connectors are found through the `govhub.connectors` entry-point group,
so `pyproject.toml` is the one list of what exists and a department can ship its own.

Control flow never runs through exceptions: a sink says DONE, RETRY, REJECT or UNAVAILABLE
for each record. An exception escaping a connector is a bug or a lost connection, and the
runtime treats it as "retry later", never as a verdict.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from hub.envelope import Envelope
from hub.errors import ConfigError, Reason

CONNECTOR_GROUP = "govhub.connectors"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One unit of data on its way through a pipeline, on either side of a mapping.

    `key` identifies the record at its origin (an outbox row, a file name, an idempotency key)
    and is what dead letters and logs name. `time` is a moment the origin can repeat exactly
    (row insert time, file mtime); together with `key` it fixes the event id, so a record
    delivered twice becomes the same event twice and JetStream keeps one.
    """

    key: str
    value: Mapping[str, Any]
    kind: str = ""
    id: str | None = None
    time: datetime | None = None
    subject: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: Path | None = None
    envelope: Envelope | None = field(default=None, repr=False)


class Verdict(enum.Enum):
    """What became of one record at a sink."""

    DONE = "done"
    RETRY = "retry"
    REJECT = "reject"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A sink's answer for one record.

    DONE: stored or delivered (`ref` says where, `event_id` which hub event carried it).
    RETRY: this record failed and may succeed later; counts towards the poison limit.
    REJECT: this record can never succeed (it does not fit); dead-lettered at once.
    UNAVAILABLE: the target system is down; retried with backoff for as long as it takes,
    without counting against the record.
    """

    verdict: Verdict
    detail: str = ""
    event_id: str = ""
    ref: str = ""
    retry_after: float | None = None
    reason: Reason | None = None

    @classmethod
    def done(cls, *, event_id: str = "", ref: str = "") -> Outcome:
        """The record was delivered."""
        return cls(Verdict.DONE, event_id=event_id, ref=ref)

    @classmethod
    def retry(cls, detail: str, *, after: float | None = None) -> Outcome:
        """This record failed; try it again later."""
        return cls(Verdict.RETRY, detail, retry_after=after)

    @classmethod
    def reject(cls, detail: str, *, reason: Reason | None = None, event_id: str = "") -> Outcome:
        """This record can never be delivered; `detail` is the reason a person reads.

        `reason` is the dead-letter reason code; a sink that does not say is taken to mean
        its target refused the record (`sink_refused`).
        """
        return cls(Verdict.REJECT, detail, event_id=event_id, reason=reason)

    @classmethod
    def unavailable(cls, detail: str) -> Outcome:
        """The target is unreachable; nothing is wrong with the record."""
        return cls(Verdict.UNAVAILABLE, detail)


@runtime_checkable
class Delivery(Protocol):
    """One record handed out by a source, with the controls to settle it.

    `ack` is called exactly once with the final outcome (DONE or REJECT) so the origin can
    record it (mark a row sent, move a file, answer an HTTP caller); `nak` asks for the same
    record again after `delay` seconds.
    """

    @property
    def record(self) -> Record:
        """The record as the origin produced it."""

    async def ack(self, outcome: Outcome) -> None:
        """The runtime is done with this record; `outcome` says how it ended."""

    async def nak(self, delay: float) -> None:
        """Hand this record out again after `delay` seconds."""


@runtime_checkable
class Source(Protocol):
    """Where records come from: a table, a folder, an HTTP endpoint, the hub itself.

    `start` and `stop` are idempotent. `deliveries` yields until `stop` (or forever); it raises
    ServerUnavailable when the system behind it goes away, and the runtime restarts it after a
    backoff. `check` connects without consuming anything and returns a sample record when one
    is at hand. A source whose caller waits for the answer (a webhook) sets `dead_letters` to
    False: the caller receives the reason, so nothing goes to the dead-letter stream.
    """

    dead_letters: ClassVar[bool]

    async def start(self) -> None:
        """Connect and get ready to hand out records."""

    async def stop(self) -> None:
        """Stop handing out records and release connections."""

    def deliveries(self) -> AsyncIterator[Delivery]:
        """The records, one delivery at a time."""

    async def check(self) -> Check:
        """Connect, verify access, and peek at one record without consuming it."""


@runtime_checkable
class Sink(Protocol):
    """Where records go: a table, a folder, an HTTP API, the hub itself."""

    async def start(self) -> None:
        """Connect; idempotent."""

    async def stop(self) -> None:
        """Release connections; idempotent."""

    async def send(self, records: Sequence[Record]) -> Sequence[Outcome]:
        """Deliver records, one outcome per record in the same order."""

    async def check(self) -> Check:
        """Connect and verify the target is usable, without writing anything."""


@dataclass(frozen=True, slots=True)
class Check:
    """What a connector's `check` found: one line for a person, and a sample record if any."""

    detail: str
    sample: Record | None = None


class ConnectorFactory(Protocol):
    """What the `govhub.connectors` entry point of a connector module provides.

    `source_options` and `sink_options` are frozen dataclasses the adapter config is checked
    against (None when the connector has no such side); `source`/`sink` build one from them.
    """

    name: str
    source_options: type[Any] | None
    sink_options: type[Any] | None

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """A source from checked options."""

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """A sink from checked options."""


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the runtime tells a connector about where it runs."""

    adapter: str
    participant: str
    work_dir: Path | None = None


def _group_entries(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def known_connectors() -> list[str]:
    """Names of every installed connector, sorted."""
    return sorted(_group_entries(CONNECTOR_GROUP))


def load_connector(name: str) -> ConnectorFactory:
    """The connector registered under `name`; unknown names are a ConfigError listing the known."""
    entries = _group_entries(CONNECTOR_GROUP)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none installed"
        raise ConfigError(f"unknown connector {name!r}; known connectors: {known}")
    factory: ConnectorFactory = entries[name].load()
    return factory


def derive_event_id(namespace: str, key: str, moment: datetime) -> str:
    """A UUIDv7 that is the same every time for the same record.

    The 48-bit time field is `moment` (the record's own, repeatable time) so ids still sort by
    time as the wire contract expects; the 74 random bits are SHA-256 over namespace and key
    instead of fresh randomness. Re-sending a record after a crash therefore re-sends the same
    `ce-id`/`Nats-Msg-Id`, and JetStream's duplicate window stores it once.
    """
    digest = int.from_bytes(hashlib.sha256(f"{namespace}\n{key}".encode()).digest()[:10], "big")
    ms = int(moment.astimezone(UTC).timestamp() * 1000) & ((1 << 48) - 1)
    value = ms << 80
    value |= 0x7 << 76
    value |= ((digest >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= digest & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
