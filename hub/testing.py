"""In-memory Source, Sink and dead letters, for testing mappings without NATS or a database.

A department tests its adapter's mapping by running records through the real runtime into a
`MemorySink` that encodes every record with the real schema files, so a field that does not
fit fails the test the way it would fail in production (docs/adapters.md):

    result = await run_mapping(ADAPTER.to_hub, [Record(key="1", value={...})],
                               participant="akto.civil")
    assert result.sent[0].value["amount_fen"] == 60000
    assert not result.dead
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hub.codec import SchemaCache
from hub.errors import InputError, Reason, SchemaError
from hub.integration.adapter import AdapterContext
from hub.integration.connector import Check, Outcome, Record
from hub.integration.pipeline import Pipeline, PipelineOptions


class MemoryDelivery:
    """A delivery of a MemorySource."""

    def __init__(self, source: MemorySource, record: Record) -> None:
        self._source = source
        self._record = record

    @property
    def record(self) -> Record:
        """The record."""
        return self._record

    async def ack(self, outcome: Outcome) -> None:
        """Settle: the source remembers the outcome under the record's key."""
        self._source._settled(self._record, outcome)

    async def nak(self, delay: float) -> None:
        """Hand the record out again after `delay` seconds."""
        self._source._redeliver(self._record, delay)


class MemorySource:
    """Hands out records given in memory; `finite` sources end once every record is settled."""

    dead_letters: ClassVar[bool] = True

    def __init__(self, records: Iterable[Record] = (), *, finite: bool = True) -> None:
        self._ready: list[Record] = list(records)
        self._finite = finite
        self._inflight = 0
        self._wake = asyncio.Event()
        self.outcomes: dict[str, Outcome] = {}
        self.deliveries_made = 0
        self.naks: list[tuple[str, float]] = []
        self.started = False

    def put(self, record: Record) -> None:
        """Add a record, as if the department system produced it."""
        self._ready.append(record)
        self._wake.set()

    async def start(self) -> None:
        """Nothing to connect."""
        self.started = True

    async def stop(self) -> None:
        """Nothing to release."""
        self.started = False

    async def check(self) -> Check:
        """Always reachable; the sample is the next record."""
        return Check("memory source", self._ready[0] if self._ready else None)

    async def deliveries(self) -> AsyncIterator[MemoryDelivery]:
        """Every record, then the redeliveries; ends when all are settled if finite."""
        while True:
            if self._ready:
                record = self._ready.pop(0)
                self._inflight += 1
                self.deliveries_made += 1
                yield MemoryDelivery(self, record)
                continue
            if self._finite and self._inflight == 0:
                return
            self._wake.clear()
            await self._wake.wait()

    def _settled(self, record: Record, outcome: Outcome) -> None:
        self.outcomes[record.key] = outcome
        self._inflight -= 1
        self._wake.set()

    def _redeliver(self, record: Record, delay: float) -> None:
        self.naks.append((record.key, delay))

        def again() -> None:
            self._inflight -= 1
            self.put(record)

        asyncio.get_running_loop().call_later(delay, again)


class MemorySink:
    """Keeps what it is sent; with `schemas`, refuses records that do not fit their schema.

    `answer` may script the outcome per record (return None for the normal path), which is
    how tests make a sink flaky, unavailable or refusing.
    """

    def __init__(
        self,
        *,
        schemas: SchemaCache | None = None,
        answer: Callable[[Record], Outcome | None] | None = None,
    ) -> None:
        self._schemas = schemas
        self._answer = answer
        self.records: list[Record] = []
        self.calls = 0
        self.started = False

    @property
    def keys(self) -> list[str]:
        """Keys of the stored records, in arrival order."""
        return [r.key for r in self.records]

    async def start(self) -> None:
        """Nothing to connect."""
        self.started = True

    async def stop(self) -> None:
        """Nothing to release."""
        self.started = False

    async def check(self) -> Check:
        """Always reachable."""
        return Check("memory sink")

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """Store each record (after the schema check), one outcome each."""
        self.calls += 1
        outcomes = []
        for record in records:
            scripted = self._answer(record) if self._answer is not None else None
            if scripted is not None:
                outcomes.append(scripted)
                continue
            if self._schemas is not None:
                try:
                    self._schemas.by_name(record.kind).encode(record.value)
                except (InputError, SchemaError) as exc:
                    outcomes.append(Outcome.reject(str(exc), reason=Reason.UNMAPPABLE))
                    continue
            self.records.append(record)
            outcomes.append(Outcome.done(ref=f"memory:{len(self.records)}"))
        return outcomes


@dataclass
class MemoryDeadLetters:
    """Dead letters kept in a list: (record key, reason, detail)."""

    letters: list[tuple[str, Reason, str]] = field(default_factory=list)

    async def put(self, record: Record, reason: Reason, detail: str) -> None:
        """Keep it."""
        self.letters.append((record.key, reason, detail))


@dataclass
class MappingResult:
    """What came out of `run_mapping`."""

    sent: list[Record]
    dead: list[tuple[str, Reason, str]]


def _unchanged(record: Record, _ctx: AdapterContext) -> Record:
    return record


async def run_mapping(
    mapping: Callable[[Record, AdapterContext], Record | None] = _unchanged,
    records: Iterable[Record] = (),
    *,
    participant: str = "akqi.market",
    options: Any = None,
    schemas: SchemaCache | None = None,
) -> MappingResult:
    """Run records through an adapter mapping and the real runtime into a schema-checking sink.

    `participant` and `options` are what the mapping sees in its AdapterContext; `schemas`
    defaults to the schema files shipped in `schemas/`.
    """
    if schemas is None:
        from schemas import SCHEMA_DIR

        schemas = SchemaCache.from_directory(SCHEMA_DIR)
    context = AdapterContext("test", participant, options)

    def transform(record: Record) -> Record | None:
        return mapping(record, context)

    sink = MemorySink(schemas=schemas)
    dead = MemoryDeadLetters()
    source = MemorySource(records)
    tuning = PipelineOptions(backoff_initial=0.01, backoff_max=0.05)
    pipeline = Pipeline("test", source, sink, transform, dead_letters=dead, options=tuning)
    await asyncio.wait_for(pipeline.run(), 60)
    return MappingResult(sent=sink.records, dead=dead.letters)
