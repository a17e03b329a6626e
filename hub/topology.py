"""Which streams and buckets exist, with what limits: the one place that says so.

A single-node hub keeps every participant event in the stream `GOVHUB`. In a federated hub
the same stream captures the hub's own units and *sources* each county's outbound stream
`GOV_<UNIT>` from the county's JetStream domain (docs/federation.md), so every hub service
reads one stream either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from hub.subjects import CHANNELS, QUARANTINE_PREFIX, SYSTEM_PREFIX, check_participant_id

HUB_STREAM = "GOVHUB"
QUARANTINE_STREAM = "QUARANTINE"
SYSTEM_STREAM = "GOVHUB_SYS"
HUB_DOMAIN = "pref"
# The directory's KV copy (hub/directory/materializer.py writes it). Created with the hub's
# other buckets so the county mirrors of it (hub/federation/streams.py) never start against
# a missing source.
DIRECTORY_BUCKET = "govhub_directory"
# The schema registry's KV bucket (hub/schema/registry.py writes it, hub/schema/watch.py
# reads it); a county mirrors it under the same name in its own domain.
SCHEMAS_BUCKET = "govhub_schemas"
# The root of every unit's document store subjects (hub/exchange/store.py): outside the event
# channels, so no county stream that takes `*.<unit>.>` events captures a chunk.
STORE_ROOT = "dstore"

# Producers retry with the same Nats-Msg-Id for up to this long (after a local broker
# restart, for example), and JetStream drops the re-sends inside the window.
DUPLICATE_WINDOW_S = 15 * 60
MAX_MSG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StreamSpec:
    """A stream govhub provisions; `config()` gives the nats-py configuration."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_bytes: int = -1
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    protect: bool = True
    atomic: bool = True
    extra: dict[str, object] = field(default_factory=dict)
    replicas: int = 1

    def config(self) -> StreamConfig:
        """The JetStream stream configuration.

        Limits retention with `discard: new`: a full stream refuses new events with an error
        the publisher sees, instead of silently dropping the oldest (possibly unforwarded)
        ones. Delete and purge are denied because the audit log proves there are no gaps.
        """
        config = StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_bytes=self.max_bytes,
            max_msg_size=MAX_MSG_BYTES,
            duplicate_window=self.duplicate_window_s,
            deny_delete=self.protect,
            deny_purge=self.protect,
            allow_atomic=self.atomic or None,
            allow_direct=True,
            num_replicas=self.replicas,
        )
        # Federation adds `sources` (the hub stream sourcing county streams), see
        # hub/federation/streams.py.
        for key, value in self.extra.items():
            setattr(config, key, value)
        return config


def hub_streams(max_bytes: int = -1) -> list[StreamSpec]:
    """The streams of a single-node hub."""
    return [
        StreamSpec(
            name=HUB_STREAM,
            subjects=tuple(f"{channel}.>" for channel in CHANNELS),
            description="Every participant event: data, documents, directory, administration",
            max_bytes=max_bytes,
        ),
        StreamSpec(
            name=QUARANTINE_STREAM,
            subjects=(f"{QUARANTINE_PREFIX}.>",),
            description="Rejected and poison events, each with its typed reason",
            duplicate_window_s=24 * 3600,
            atomic=False,
        ),
        StreamSpec(
            name=SYSTEM_STREAM,
            subjects=(f"{SYSTEM_PREFIX}.>",),
            description="Hub service output: audit checkpoints, alarms",
            atomic=False,
        ),
    ]


def document_stream(unit: str) -> str:
    """The stream of a unit's documents: `DOCS_<UNIT>`."""
    return "DOCS_" + unit.upper().replace("-", "_")


def document_subject_root(unit: str) -> str:
    """The subject root of a unit's documents: `dstore.docs_<unit>`."""
    return f"{STORE_ROOT}.docs_{unit}"


def document_store_prefix(participant: str) -> str:
    """A participant's own prefix in its unit's store: `dstore.docs_<unit>.<dept>`.

    The department in the subject lets server permissions give each participant its own
    prefix (`dstore.docs_akto.civil.>`), as they do for its events.
    """
    unit, dept = check_participant_id(participant)
    return f"{document_subject_root(unit)}.{dept}"


def document_stream_config(unit: str, max_bytes: int = -1) -> StreamConfig:
    """The `DOCS_<UNIT>` stream.

    Deletes are denied so no single chunk can be removed from under a manifest; purge stays
    allowed so a send that failed (a file that changed) can withdraw its orphan chunks. NATS
    account permissions should leave purge to the unit's own users (docs/exchange.md).
    """
    check_participant_id(f"{unit}.x")
    return StreamConfig(
        name=document_stream(unit),
        description=f"Document content of unit {unit} (claim check for doc.{unit}.> manifests)",
        subjects=[f"{document_subject_root(unit)}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        max_msg_size=MAX_MSG_BYTES,
        duplicate_window=DUPLICATE_WINDOW_S,
        deny_delete=True,
        deny_purge=False,
        allow_direct=True,
        num_replicas=1,
    )
