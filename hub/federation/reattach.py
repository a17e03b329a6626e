"""Re-attach a county's source on the hub stream as soon as the county's leaf reconnects.

While an uplink is down, nats-server retries the hub stream's source of that county with a
backoff that grows by 10 s per failed attempt up to 2 minutes (stream.go,
`calculateRetryBackoff`). After a long outage the catch-up then starts up to two minutes
after the link is back (38.7 s measured for a 20 s cut, docs/federation.md). Removing the
source and adding it again makes the server create the source's consumer at once. A re-added
source resumes after the last origin sequence the hub stream holds (the server scans the
stream for that source's last `Nats-Stream-Source` header), and the stream's duplicate window
catches any re-send, so nothing is stored twice.

`SourceKeeper.watch` polls the hub nodes' `/leafz` (cheap, loopback or the monitoring
network) every `POLL_S` and re-attaches each county whose leaf went from absent to present;
`govhub serve` runs it in the federation service, and `govhub bench federation` runs it during
the catch-up it times. While a county's leaf is away the federation service reads `degraded`
in `/healthz` with that cause, and `ok` again once the leaf is back. A re-attach that does not
take (the leaf's JetStream domain not yet routable) is tried again on the next polls, up to
`ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient

from hub import health
from hub.bus import jetstream
from hub.federation.plan import Plan, county_stream
from hub.metrics import Counter
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.federation.reattach")

POLL_S = 0.5
"""Seconds between two looks at the hub nodes' `/leafz`."""
CONFIRM_S = 3.0
"""Seconds a re-attached source has to show activity before it is re-attached again."""
ATTEMPTS = 3
"""Re-attaches per reconnect before leaving the source to the server's own retries."""

REATTACHED = Counter(
    "govhub_federation_source_reattached_total",
    "Times a county's source was re-attached on the hub stream after its leaf reconnected.",
    ("county",),
)

Leafz = Callable[[], Awaitable[set[str]]]


def connected_leafs(answers: Iterable[dict[str, Any]]) -> set[str]:
    """Leaf node names connected to any hub node, from their `/leafz` answers."""
    return {
        str(leaf.get("name", ""))
        for answer in answers
        for leaf in answer.get("leafs") or []
        if isinstance(leaf, dict)
    }


async def _leafz(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
            data = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class SourceKeeper:
    """Watches the leaf links and re-attaches the county sources of those that come back."""

    def __init__(self, nc: NatsClient, plan: Plan, *, leafz: Leafz | None = None) -> None:
        self._js = jetstream(nc)
        self._plan = plan
        self._leafz = leafz
        self._up: set[str] | None = None  # leaf names seen connected at the last look
        self._pending: dict[str, tuple[int, float]] = {}  # county -> (attempts, re-attached at)
        self.reattached: list[str] = []

    async def _look(self, session: aiohttp.ClientSession) -> set[str]:
        if self._leafz is not None:
            return await self._leafz()
        urls = [f"{n.monitor_url}/leafz" for n in self._plan.hub_nodes]
        return connected_leafs(await asyncio.gather(*(_leafz(session, u) for u in urls)))

    async def watch(self) -> None:
        """Poll and re-attach until cancelled."""
        async with aiohttp.ClientSession() as session:
            while True:
                await self.step(await self._look(session))
                await asyncio.sleep(POLL_S)

    async def step(self, up: set[str]) -> list[str]:
        """One look: re-attach the counties whose leaf came back; returns them."""
        before, self._up = self._up, up
        done = []
        for node in self._plan.counties:
            if node.name not in up:
                self._pending.pop(node.unit, None)
                health.pause(
                    f"uplink {node.unit}",
                    f"the leaf node {node.name} is not connected to the hub; its events wait "
                    f"in {county_stream(node.unit)}",
                )
                continue
            health.resume(f"uplink {node.unit}")
            if before is not None and node.name not in before:
                self._pending[node.unit] = (0, 0.0)  # a reconnect: re-attach now
            due = node.unit in self._pending and await self._due(node.unit)
            if due and await self._reattach(node.unit):
                done.append(node.unit)
        return done

    async def _due(self, unit: str) -> bool:
        """Whether a county waiting for its source should be re-attached (again) now."""
        attempts, at = self._pending[unit]
        if attempts == 0:
            return True
        if await self._source_active(unit, since=at):
            self._pending.pop(unit)
            log.info("federation.source.resumed", county=unit, attempts=attempts)
            return False
        if attempts >= ATTEMPTS:
            self._pending.pop(unit)
            log.warning("federation.source.not_resumed", county=unit, attempts=attempts)
            return False
        return time.monotonic() - at >= CONFIRM_S

    async def _source_active(self, unit: str, *, since: float) -> bool:
        try:
            info = await self._js.stream_info(HUB_STREAM)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            return False
        for source in info.sources or []:
            if source.name == county_stream(unit):
                if source.error is not None or source.active is None or source.active < 0:
                    return False
                # `active`: nanoseconds since the source last heard from the county.
                return bool(time.monotonic() - source.active / 1e9 >= since)
        return False

    async def _reattach(self, unit: str) -> bool:
        """Remove the county's source from the hub stream and add it again."""
        attempts, _ = self._pending.get(unit, (0, 0.0))
        name = county_stream(unit)
        try:
            config = (await self._js.stream_info(HUB_STREAM)).config
            sources = list(config.sources or [])
            source = next((s for s in sources if s.name == name), None)
            if source is None:
                self._pending.pop(unit, None)
                return False
            others = [s for s in sources if s.name != name]
            await self._js.update_stream(replace(config, sources=others))
            await self._js.update_stream(replace(config, sources=[*others, source]))
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("federation.source.reattach_failed", county=unit, error=str(exc))
            self._pending[unit] = (attempts + 1, time.monotonic())
            return False
        self._pending[unit] = (attempts + 1, time.monotonic())
        self.reattached.append(unit)
        REATTACHED.inc(unit)
        log.info("federation.source.reattached", county=unit, attempt=attempts + 1)
        return True
