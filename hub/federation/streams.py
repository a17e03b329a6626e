"""The streams of a federation: county outbound streams, the hub sourcing them, mirrors back.

```
county leaf (domain cty-akto)                         hub (domain pref, R1 or R3)
  GOV_AKTO        *.akto.> (limits, discard new,  ──► GOVHUB  *.pref.>, *.xj.>  +  sources
                  byte budget, deny delete/purge)               GOV_ARTUX, GOV_AKTO, ...
  DOCS_AKTO       dstore.docs_akto.> (document    ──► DOCS_AKTO  mirror: the hub's copy that
                  content, the sender's store)                   every other reader fetches
                                                      DOCS_PREF, DOCS_XJ  dstore.docs_pref|xj.>
  KV_govhub_participants   mirror  ◄──────────────────  KV_govhub_participants
  KV_govhub_schemas        mirror  ◄──────────────────  KV_govhub_schemas
  KV_govhub_directory      mirror  ◄──────────────────  KV_govhub_directory
  GOVHUB_DOWN              mirror of GOVHUB, only  ◄──  (what the prefecture and the
                           *.pref.> and *.xj.>            region send: circulars, documents,
                                                          administrative acts)
```

A department's document content stays in its own county's `DOCS_<UNIT>` (acknowledged there,
uplink or not); the hub mirrors it once, and recipients anywhere else read that copy, so a
circular to four counties crosses the sender's uplink once and stays readable when the
sender's county is cut off later (hub/exchange/store.py `read_location`).

JetStream moves the data: the hub's sources resume from the last origin sequence they stored
(`Nats-Stream-Source` on every sourced message), mirrors resume likewise, and neither needs a
forwarder of ours. A county stream is never deleted and re-created under the same name: the
hub tracks progress by origin sequence and would stall (nats-server #6206).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import nats.js.errors
import structlog
from nats.js.api import (
    DiscardPolicy,
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)

from hub.federation.plan import Node, Plan, county_stream
from hub.participants import PARTICIPANTS_BUCKET
from hub.subjects import CHANNELS
from hub.topology import (
    DIRECTORY_BUCKET,
    HUB_DOMAIN,
    HUB_STREAM,
    SCHEMAS_BUCKET,
    StreamSpec,
    document_stream,
    document_stream_config,
)

log = structlog.get_logger("hub.federation.streams")

# Shared state every county keeps a local copy of, so it verifies, decodes and searches the
# directory offline. The hub creates these buckets before any county mirrors them.
MIRRORED_BUCKETS: list[str] = [PARTICIPANTS_BUCKET, SCHEMAS_BUCKET, DIRECTORY_BUCKET]
DOWN_STREAM = "GOVHUB_DOWN"
KV_HISTORY = 16


def unit_subjects(unit: str) -> tuple[str, ...]:
    """Every subject a unit's participants publish on: `<channel>.<unit>.>`."""
    return tuple(f"{channel}.{unit}.>" for channel in CHANNELS)


def county_source(node: Node) -> StreamSource:
    """The hub stream's source for one county: its outbound stream, through its domain."""
    return StreamSource(
        name=county_stream(node.unit),
        external=ExternalStream(api=f"$JS.{node.domain}.API", deliver=""),
    )


def hub_specs(specs: Sequence[StreamSpec], plan: Plan) -> list[StreamSpec]:
    """The single-node hub streams adapted to a federation.

    `GOVHUB` captures only the hub's and the region's subjects (a county's subjects are
    stored by its own stream; two streams capturing one subject across a leaf link would both
    store it) and sources every county stream. Every stream gets the plan's replicas.
    """
    adapted = []
    for spec in specs:
        if spec.name == HUB_STREAM:
            spec = replace(
                spec,
                subjects=tuple(s for unit in plan.hub_units for s in unit_subjects(unit)),
                extra={**spec.extra, "sources": [county_source(n) for n in plan.counties]},
            )
        adapted.append(replace(spec, replicas=plan.replicas))
    return adapted


def outbound_spec(plan: Plan, node: Node) -> StreamSpec:
    """A county's outbound stream: limits retention, discard new at its byte budget.

    `discard: new` is the point: when an outage outlasts the budget, the county's adapters
    get `StreamFull` and keep their records, instead of the oldest unforwarded events being
    dropped without anyone noticing.
    """
    return StreamSpec(
        name=county_stream(node.unit),
        subjects=unit_subjects(node.unit),
        description=f"Outbound events of {node.unit}, sourced by the prefecture hub",
        max_bytes=plan.county_max_bytes,
    )


def document_store(unit: str, replicas: int = 1) -> StreamConfig:
    """A unit's document store `DOCS_<UNIT>` (hub/exchange/store.py) with these replicas."""
    return replace(document_stream_config(unit), num_replicas=replicas)


def document_copy(plan: Plan, node: Node) -> StreamConfig:
    """The hub's copy of a county's document store: a mirror under the same name in `pref`.

    Readers outside the county fetch from it, so a document's content crosses the county's
    uplink once, whatever the number of recipients, and stays readable at the hub while the
    county is cut off.
    """
    name = document_stream(node.unit)
    return StreamConfig(
        name=name,
        description=f"The hub's copy of {node.unit}'s document store {name}",
        mirror=StreamSource(
            name=name, external=ExternalStream(api=f"$JS.{node.domain}.API", deliver="")
        ),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        allow_direct=True,
        deny_delete=True,
        num_replicas=plan.replicas,
    )


def hub_document_configs(plan: Plan) -> list[StreamConfig]:
    """The document streams of the hub domain: the stores of the hub's and the region's
    units (the region runs no JetStream, its office stores at the hub), then the copies of
    every county's store (after the county stores exist, like every mirror)."""
    configs = [document_store(unit, plan.replicas) for unit in plan.hub_units]
    return configs + [document_copy(plan, node) for node in plan.counties]


def kv_mirror(bucket: str) -> StreamConfig:
    """A county's read-only copy of a hub KV bucket (readable with the normal KV API)."""
    stream = f"KV_{bucket}"
    return StreamConfig(
        name=stream,
        description=f"Mirror of the hub's {bucket} bucket, for offline verification",
        mirror=StreamSource(
            name=stream, external=ExternalStream(api=f"$JS.{HUB_DOMAIN}.API", deliver="")
        ),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs_per_subject=KV_HISTORY,
        allow_direct=True,
        mirror_direct=True,
        deny_delete=True,
        num_replicas=1,
    )


def down_mirror(plan: Plan) -> StreamConfig:
    """What flows down to a county: the hub stream's events from the prefecture and region."""
    filters = [
        SubjectTransform(src=subject, dest=subject)
        for unit in plan.hub_units
        for subject in unit_subjects(unit)
    ]
    return StreamConfig(
        name=DOWN_STREAM,
        description="Events of the prefecture and the region, mirrored for offline reading",
        mirror=StreamSource(
            name=HUB_STREAM,
            external=ExternalStream(api=f"$JS.{HUB_DOMAIN}.API", deliver=""),
            subject_transforms=filters,
        ),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_bytes=plan.county_max_bytes,
        allow_direct=True,
        num_replicas=1,
    )


def county_origin_configs(plan: Plan, node: Node) -> list[StreamConfig]:
    """The streams the hub reads from a county: outbound events and the document store."""
    return [outbound_spec(plan, node).config(), document_store(node.unit)]


def county_configs(plan: Plan, node: Node) -> list[StreamConfig]:
    """Every stream a county node holds (the hub's origins first)."""
    configs = county_origin_configs(plan, node)
    configs += [kv_mirror(bucket) for bucket in MIRRORED_BUCKETS]
    configs.append(down_mirror(plan))
    return configs


async def ensure_streams(js: object, configs: Sequence[StreamConfig]) -> None:
    """Create streams that are missing; update the ones whose config changed (idempotent)."""
    for config in configs:
        try:
            await js.add_stream(config)  # type: ignore[attr-defined]
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # type: ignore[attr-defined]
        log.debug("federation.stream.ready", stream=config.name)
