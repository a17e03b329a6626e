"""The streams of a federation: county outbound streams, the hub sourcing them, mirrors back.

```
county leaf (domain cty-akto)                         hub (domain pref, R1 or R3)
  GOV_AKTO        *.akto.> (limits, discard new,  ──► GOVHUB  *.pref.>, *.xj.>  +  sources
                  byte budget, deny delete/purge)               GOV_ARTUX, GOV_AKTO, ...
  KV_govhub_participants   mirror  ◄──────────────────  KV_govhub_participants
  KV_govhub_schemas        mirror  ◄──────────────────  KV_govhub_schemas
  GOVHUB_DOWN              mirror of GOVHUB, only  ◄──  (what the prefecture and the
                           *.pref.> and *.xj.>            region send: circulars, documents,
                                                          administrative acts)
```

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
from hub.schema.watch import SCHEMAS_BUCKET
from hub.subjects import CHANNELS
from hub.topology import HUB_DOMAIN, HUB_STREAM, StreamSpec

log = structlog.get_logger("hub.federation.streams")

# Shared state every county keeps a local copy of, so it verifies and decodes offline. The
# directory adds its bucket here.
MIRRORED_BUCKETS: list[str] = [PARTICIPANTS_BUCKET, SCHEMAS_BUCKET]
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


def county_configs(plan: Plan, node: Node) -> list[StreamConfig]:
    """Every stream a county node holds."""
    configs = [outbound_spec(plan, node).config()]
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
