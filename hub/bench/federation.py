"""`govhub bench federation`: cross-domain latency county→hub, and catch-up after an outage.

Runs on a scratch federated home (its own nodes and PostgreSQL, removed afterwards):

1. latency: `akto.civil` publishes signed events one at a time into its county stream; a
   verifying consumer at the hub receives them after the hub stream sourced them. Next to
   it, plain nats-py: raw bodies published into the same county stream and pulled raw at
   the hub, same path, no signing or verification.
2. catch-up: akto's uplink is cut, `--events` signed events queue in the county stream (acked
   by the county), the uplink is restored, and the hub is timed from reconnect until it holds
   every one. The federation service's source keeper runs throughout, as in `govhub serve`:
   it re-attaches akto's source once the leaf is back (hub/federation/reattach.py). The
   sourcing itself is the servers', so there is no client figure to put beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub.bench.measure import latency_ms, machine
from hub.bus import close, connect, jetstream
from hub.federation.credentials import service_nkey
from hub.federation.reattach import SourceKeeper
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"
SENDER = "akto.civil"
UNIT = "akto"


@contextlib.asynccontextmanager
async def scratch_federation(settings: Settings) -> AsyncIterator[Hub]:
    """A federated hub on a throwaway home under this home (removed afterwards)."""
    settings.home.root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-fed-", dir=settings.home.root))
    scratch = replace(settings, home=Home(root), nats_url=None, pg_dsn=settings.pg_dsn)
    try:
        async with open_hub(scratch, federated=True) as hub:
            try:
                yield hub
            finally:
                if hub.federation is not None and hub.federation.servers is not None:
                    hub.federation.servers.stop_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _hub_count(hub: Hub, subject: str) -> int:
    info = await jetstream(hub.nc).stream_info(HUB_STREAM, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def signed_latency(hub: Hub, samples: int) -> dict[str, Any]:
    """Publish → verified at the hub consumer, one event at a time."""
    link = await hub.link(SENDER)
    assert link is not None
    consumer = hub.consumer(
        HUB_STREAM, None, [f"evt.{SENDER}.latency"], deliver_new=True, quarantine=False
    )
    await consumer.start()
    latencies = []
    try:
        for i in range(samples):
            env = hub.seal(
                SENDER,
                NOTICE,
                {"title": f"latency {i}", "body": "b"},
                subject=f"evt.{SENDER}.latency",
            )
            started = time.perf_counter()
            await link.publisher.publish(env)
            got = False
            while not got:
                for delivery in await consumer.fetch(1, timeout=5.0):
                    await delivery.ack()
                    got = got or delivery.envelope.event_id == env.event_id
            latencies.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    return latency_ms(latencies)


async def raw_latency(hub: Hub, samples: int) -> dict[str, Any]:
    """The same path with plain nats-py: raw publish at the county, raw pull at the hub."""
    assert hub.federation is not None
    node = hub.federation.plan.node_for_unit(UNIT)
    county = await connect(
        node.client_url, nkey_seed=service_nkey(hub.settings.home, f"node-{node.name}").seed
    )
    subject = f"evt.{SENDER}.rawlatency"
    js_hub = jetstream(hub.nc)
    sub = await js_hub.pull_subscribe(
        subject,
        stream=HUB_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW),
    )
    latencies = []
    try:
        js_county = jetstream(county)
        for i in range(samples):
            started = time.perf_counter()
            await js_county.publish(
                subject, b"raw", headers={"Nats-Msg-Id": f"raw-{time.time_ns()}-{i}"}
            )
            msgs = await sub.fetch(1, timeout=5.0)
            for msg in msgs:
                await msg.ack()
            latencies.append(time.perf_counter() - started)
    finally:
        await sub.unsubscribe()
        await close(county)
    return latency_ms(latencies)


async def catch_up(hub: Hub, events: int) -> dict[str, Any]:
    """Queue `events` during a cut uplink, restore it, time the hub until it holds them all."""
    assert hub.federation is not None
    link = await hub.link(SENDER)
    assert link is not None
    subject = f"evt.{SENDER}.queued"
    before = await _hub_count(hub, subject)
    keeper = SourceKeeper(hub.nc, hub.federation.plan)
    watching = asyncio.create_task(keeper.watch())
    try:
        result = await _timed_catch_up(hub, link, subject, before, events)
        return {**result, "source_reattached": keeper.reattached.count(UNIT)}
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


async def _timed_catch_up(
    hub: Hub, link: Any, subject: str, before: int, events: int
) -> dict[str, Any]:
    assert hub.federation is not None and hub.federation.servers is not None
    servers = hub.federation.servers
    servers.uplink(UNIT, enabled=False)
    try:
        queued_at = time.perf_counter()
        for start in range(0, events, 1000):
            envs = [
                hub.seal(SENDER, NOTICE, {"title": f"queued {i}", "body": "离线"}, subject=subject)
                for i in range(start, min(events, start + 1000))
            ]
            await link.publisher.publish_many(envs)
        queue_s = time.perf_counter() - queued_at
    finally:
        await asyncio.to_thread(servers.uplink, UNIT, enabled=True)
    reconnect = time.perf_counter()
    first: float | None = None
    while True:
        count = await _hub_count(hub, subject) - before
        now = time.perf_counter()
        if count and first is None:
            first = now - reconnect
        if count >= events:
            break
        if now - reconnect > 600:
            raise TimeoutError(f"the hub held {count} of {events} queued events after 600 s")
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - reconnect
    return {
        "events": events,
        "queued_per_s": round(events / queue_s),
        "reconnect_to_first_s": round(first or 0.0, 3),
        "reconnect_to_caught_up_s": round(seconds, 3),
        "catch_up_per_s": round(events / seconds),
    }


async def bench_federation(settings: Settings, events: int, samples: int) -> dict[str, Any]:
    """Every figure of `govhub bench federation`."""
    async with scratch_federation(settings) as hub:
        await signed_latency(hub, min(20, samples))  # warm-up
        signed = await signed_latency(hub, samples)
        raw = await raw_latency(hub, samples)
        outage = await catch_up(hub, events)
    return {
        "benchmark": "federation",
        "latency": {"govhub": signed, "raw": raw, "samples": samples},
        "catch_up": outage,
        "topology": "1 hub node + 4 county leafs + region leaf, loopback, sync_interval: always",
        "machine": machine(),
    }
