"""`govhub bench scale`: per-event cost and `govhub serve` memory as the audit log grows.

For each log size the hub's own audit tree is bulk-loaded to that size (synthetic ~1 KB leaves
through the appender's own transaction, as `govhub bench audit` does, attributed to a stream
of their own), then a real `govhub serve` process (every service) takes over as the writer and
a fixed number of batch-signed events goes through the whole path. Reported per size: audited
events/s, the serve process's CPU microseconds per event, its resident memory (VmRSS) and peak
(VmHWM), and `audit proof` time for random events. Flat rows mean cost does not grow with the
log: the writer keeps O(log n) state, and every lookup is an index probe.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.audit import bundle, store
from hub.bench.audit import LeafFactory
from hub.bench.bus import NOTICE, SENDER
from hub.bench.measure import latency_ms, machine, memory_mb
from hub.bench.pipeline import CpuMeter
from hub.ports import free_port
from hub.runtime import Hub
from hub.sender import BatchSender
from hub.waits import poll

LOAD_STREAM = "BENCH_LOAD"
"""The stream the synthetic leaves claim, so the hub stream's own sequence tracking is untouched."""
LOAD_BATCH = 50_000


async def bulk_load(dsn: str, target: int, say: Callable[[str], None]) -> float:
    """Grow the audit tree to ``target`` leaves with synthetic ones; return the seconds taken."""
    factory = LeafFactory(LOAD_STREAM)
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        if not await store.try_lock(conn):
            raise RuntimeError("another audit writer holds the lock; stop it before loading")
        state = await store.load_state(conn)
        tracker = await store.load_tracker(conn)
        loaded = int(
            await conn.fetchval("SELECT count(*) FROM audit_leaves WHERE stream = $1", LOAD_STREAM)
        )
        last_report = started
        while state.size < target:
            step = min(LOAD_BATCH, target - state.size)
            records = factory.records(loaded, loaded + step)
            state, tracker, _ = await store.append_batch(conn, state, tracker, records)
            loaded += step
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                rate = (loaded) / (last_report - started)
                say(f"bulk load: {state.size:,} of {target:,} leaves ({rate:,.0f}/s)")
    finally:
        await conn.close()
    return time.perf_counter() - started


def _start_serve(hub: Hub, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GOVHUB_NATS_URL": hub.nats_url, "GOVHUB_PG_DSN": hub.pg_dsn}
    cmd = [sys.executable, "-m", "hub", "--home", str(hub.settings.home.root), "serve",
           "--http", f"127.0.0.1:{port}"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_size(hub: Hub, size: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait until the audit tree holds ``size`` leaves; return when it did (monotonic)."""

    async def reached() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"govhub serve exited with status {proc.returncode}")
        return int(await hub.pool.fetchval("SELECT size FROM audit_state")) >= size

    # Polling another process's commits; 20 ms resolution.
    if not await poll(reached, timeout=timeout, every=0.02):
        raise RuntimeError(f"the audit log did not reach {size} leaves within {timeout:g} s")
    return time.monotonic()


async def _proof_times(hub: Hub, loaded: int, samples: int) -> dict[str, float]:
    rng = random.Random(loaded)
    times = []
    for _ in range(samples):
        event_id = f"bench-{rng.randrange(loaded):012d}"
        started = time.perf_counter()
        await bundle.proof_for_event(hub.pool, event_id)
        times.append(time.perf_counter() - started)
    return latency_ms(times)


async def measure_size(
    hub: Hub, target: int, events: int, samples: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Load to ``target``, run serve, push ``events`` through it, measure, stop serve."""
    load_s = await bulk_load(hub.pg_dsn, target, say)
    proc = _start_serve(hub, free_port())
    try:
        js = hub.nc.jetstream()
        stream_messages = (await js.stream_info("GOVHUB")).state.messages
        loaded = int(
            await hub.pool.fetchval(
                "SELECT count(*) FROM audit_leaves WHERE stream = $1", LOAD_STREAM
            )
        )
        await _wait_size(hub, loaded + stream_messages, proc, 300)
        idle_rss = memory_mb(proc.pid, "VmRSS")
        schema = hub.schemas.by_name(NOTICE)
        sender = BatchSender(hub.publisher, hub.keystore.current(SENDER))
        record = {"title": "基准测试 benchmark", "body": "x" * 200}
        warm = min(2000, events)  # first events through a fresh process warm its caches
        for _ in range(warm):
            sender.submit_record(f"evt.{SENDER}.scale", schema, record)
        await sender.flush()
        await _wait_size(hub, loaded + stream_messages + warm, proc, 300)
        meter = CpuMeter(hub, proc.pid)
        started = time.monotonic()
        for _ in range(events):
            sender.submit_record(f"evt.{SENDER}.scale", schema, record)
        await sender.flush()
        done = await _wait_size(hub, loaded + stream_messages + warm + events, proc, 600)
        cpu = meter.per_event_us(events)
        size = int(await hub.pool.fetchval("SELECT size FROM audit_state"))
        row: dict[str, Any] = {
            "log_entries": size,
            "bulk_load_s": round(load_s, 1),
            "events": events,
            "events_per_s": round(events / (done - started)),
            "serve_cpu_us_per_event": cpu["appender"],
            "cpu_us_per_event": {("serve" if k == "appender" else k): v for k, v in cpu.items()},
            "serve_rss_mb": memory_mb(proc.pid, "VmRSS"),
            "serve_rss_idle_mb": idle_rss,
            "serve_peak_rss_mb": memory_mb(proc.pid, "VmHWM"),
        }
        await _wait_checkpoint(hub, size, proc)
        row["proof"] = await _proof_times(hub, loaded, samples)
    finally:
        _stop(proc)
    return row


async def _wait_checkpoint(hub: Hub, size: int, proc: subprocess.Popen[bytes]) -> None:

    async def published() -> bool:
        if proc.poll() is not None:
            return True  # it will publish nothing more
        done = await hub.pool.fetchval(
            "SELECT max(size) FROM audit_checkpoints WHERE published_at IS NOT NULL"
        )
        return done is not None and done >= size

    # The serve process signs on its own schedule.
    if not await poll(published, timeout=60, every=0.1) or proc.poll() is not None:
        raise RuntimeError("govhub serve published no checkpoint covering the run")


async def bench_scale(
    hub: Hub, sizes: list[int], events: int, samples: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every size in ascending order on one growing log."""
    rows = [await measure_size(hub, size, events, samples, say) for size in sorted(sizes)]
    explain = await hub.pool.fetch(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT idx, leaf FROM audit_leaves WHERE event_id = $1"
        " ORDER BY verdict <> 'accepted', idx LIMIT 1",
        f"bench-{random.Random(7).randrange(max(sizes) // 2):012d}",
    )
    return {
        "benchmark": "scale",
        "rows": rows,
        "proof_lookup_plan": [r[0] for r in explain],
        "synthetic_stream": LOAD_STREAM,
        "machine": machine(),
    }
