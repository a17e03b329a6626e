"""Federation health from the hub nodes' monitoring endpoints: source lag, leaf links.

`govhub serve` runs the `federation` service: every few seconds it reads `/jsz` (the hub
stream's sources: how far each county's source lags, when it was last active, its error) and
`/leafz` (which leaf nodes are connected, their round-trip time) from every hub node, sets
the Prometheus gauges below and serves the same snapshot at `/federation`. It re-attaches a
county's source as soon as the county's leaf reconnects (hub/federation/reattach.py), instead
of leaving the catch-up to the server's retry backoff of up to 2 minutes. It also watches
the registry and re-syncs the servers' users on every change, so a revocation made by any
process ends the participant's access within seconds. In a single-node hub it idles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from hub.bus import jetstream
from hub.collaborators import Bus, Parts
from hub.federation.plan import Plan, county_stream
from hub.federation.reattach import SourceKeeper
from hub.metrics import Gauge
from hub.participants import PARTICIPANTS_BUCKET
from hub.topology import HUB_STREAM
from hub.waits import poll

log = structlog.get_logger("hub.federation.monitor")

INTERVAL_S = 5.0

SOURCE_LAG = Gauge(
    "govhub_federation_source_lag",
    "Events in a county's stream the hub stream has not sourced yet.",
    ("county",),
)
SOURCE_IDLE = Gauge(
    "govhub_federation_source_idle_seconds",
    "Seconds since the hub's source last heard from a county (-1: not active).",
    ("county",),
)
SOURCE_ERROR = Gauge(
    "govhub_federation_source_error", "1 while a county's source reports an error.", ("county",)
)
LEAF_UP = Gauge(
    "govhub_federation_leaf_up", "1 while a leaf node's uplink to the hub is connected.", ("node",)
)
LEAF_RTT = Gauge(
    "govhub_federation_leaf_rtt_seconds", "Round-trip time of a leaf node's uplink.", ("node",)
)


@dataclass(frozen=True)
class CountyState:
    """What the hub knows about one county."""

    county: str
    node: str
    source_lag: int | None
    source_idle_s: float | None
    source_error: str | None
    leaf_up: bool
    leaf_rtt_s: float | None


_DURATION = re.compile(r"([\d.]+)(ns|µs|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """A Go duration string (`1m2.5s`, `137µs`) in seconds."""
    parts = _DURATION.findall(text or "")
    return sum(float(n) * _UNITS[u] for n, u in parts) if parts else None


def sources_of(jsz: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The hub stream's source entries from a `/jsz?streams=1&config=1` answer, by name."""
    found: dict[str, dict[str, Any]] = {}
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream.get("name") == HUB_STREAM:
                for source in stream.get("sources") or []:
                    found[source.get("name", "")] = source
    return found


def leafs_of(leafz: dict[str, Any]) -> dict[str, float | None]:
    """Connected leaf nodes from a `/leafz` answer: server name -> round-trip seconds."""
    return {
        leaf.get("name", ""): parse_duration(leaf.get("rtt", ""))
        for leaf in leafz.get("leafs") or []
    }


def county_states(
    plan: Plan, jsz: Sequence[dict[str, Any]], leafz: Sequence[dict[str, Any]]
) -> list[CountyState]:
    """Combine every hub node's answers (in a cluster only some hold the stream)."""
    sources: dict[str, dict[str, Any]] = {}
    for answer in jsz:
        sources.update(sources_of(answer))
    leafs: dict[str, float | None] = {}
    for answer in leafz:
        leafs.update(leafs_of(answer))
    states = []
    for node in plan.counties:
        source = sources.get(county_stream(node.unit))
        active = source.get("active") if source else None
        error = (source or {}).get("error")
        states.append(
            CountyState(
                county=node.unit,
                node=node.name,
                source_lag=int(source.get("lag", 0)) if source else None,
                source_idle_s=active / 1e9 if isinstance(active, int) and active >= 0 else None,
                source_error=error.get("description") if isinstance(error, dict) else None,
                leaf_up=node.name in leafs,
                leaf_rtt_s=leafs.get(node.name),
            )
        )
    return states


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as reply:
            data = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def snapshot(plan: Plan, session: aiohttp.ClientSession) -> list[CountyState]:
    """Ask every hub node's monitoring endpoint and combine the answers."""
    jsz = [await _get(session, f"{n.monitor_url}/jsz?streams=1&config=1") for n in plan.hub_nodes]
    leafz = [await _get(session, f"{n.monitor_url}/leafz") for n in plan.hub_nodes]
    return county_states(plan, jsz, leafz)


def record(states: Sequence[CountyState]) -> None:
    """Set the gauges from a snapshot."""
    for state in states:
        SOURCE_LAG.set(
            float(state.source_lag if state.source_lag is not None else -1), state.county
        )
        SOURCE_IDLE.set(
            state.source_idle_s if state.source_idle_s is not None else -1.0, state.county
        )
        SOURCE_ERROR.set(1.0 if state.source_error else 0.0, state.county)
        LEAF_UP.set(1.0 if state.leaf_up else 0.0, state.node)
        if state.leaf_rtt_s is not None:
            LEAF_RTT.set(state.leaf_rtt_s, state.node)


class FederationService:
    """`govhub serve` service: federation gauges, `/federation`, permission sync."""

    name = "federation"

    def __init__(self, pool: asyncpg.Pool, bus: Bus) -> None:
        self._pool = pool
        self._bus = bus
        self._last: list[CountyState] = []
        self._at = 0.0

    def routes(self) -> Sequence[web.RouteDef]:
        """`GET /federation`: the last snapshot as JSON."""

        async def federation(_request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "federated": self._bus.federation is not None,
                    "at": self._at,
                    "counties": [asdict(s) for s in self._last],
                }
            )

        return [web.get("/federation", federation)]

    async def run(self) -> None:
        """Refresh the gauges and keep the servers' users in sync until cancelled."""
        federation = self._bus.federation
        if federation is None:
            await asyncio.Event().wait()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_registry())
            group.create_task(SourceKeeper(self._bus.nc, federation.plan).watch())
            async with aiohttp.ClientSession() as session:
                while True:
                    self._last = await snapshot(federation.plan, session)
                    self._at = time.time()
                    record(self._last)
                    await asyncio.sleep(INTERVAL_S)

    async def _watch_registry(self) -> None:
        federation = self._bus.federation
        assert federation is not None
        kv = await jetstream(self._bus.nc).key_value(PARTICIPANTS_BUCKET)
        watcher = await kv.watchall(include_history=False)
        try:
            initial = True
            async for entry in watcher:
                if entry is None:
                    initial = False
                    continue
                if not initial:
                    await _recorded(self._pool, entry.key, entry.value)
                    changed = await federation.sync_permissions(self._pool)
                    log.info("federation.registry.changed", key=entry.key, nodes=changed)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()


async def _recorded(
    pool: Any, participant: str, value: bytes | None, timeout: float = 10.0
) -> None:
    """Wait until PostgreSQL shows the status a registry entry carries.

    The registry writer puts the KV entry inside its PostgreSQL transaction, so the watcher
    can see a revocation before it is committed; permissions derived from the record then
    would still let the revoked participant in.
    """
    try:
        wanted = json.loads(value or b"{}").get("status")
    except ValueError:
        return
    if not wanted:
        return

    async def recorded() -> bool:
        status = await pool.fetchval("SELECT status FROM participants WHERE id = $1", participant)
        return status in (None, wanted)

    # The writer's commit is a moment away, in another process: nothing to await.
    await poll(recorded, timeout=timeout, every=0.1)


def create(parts: Parts) -> FederationService:
    """The SERVICES factory."""
    return FederationService(parts.pool, parts.bus)
