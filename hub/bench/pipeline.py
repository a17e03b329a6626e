"""`govhub bench pipeline`: the whole signed and audited path next to raw nats-py, same run.

Path measured: a record handed to the hub client (``BatchSender``: Avro encode, one
govhub-sig-v2 signature per batch, JetStream atomic batch publish) → JetStream (file storage,
``sync_interval: always``) → the audit appender in its own process, as in ``govhub serve``
(batched fetch, every signature verified, Avro decode, Merkle append, PostgreSQL COPY and
commit, then ack) → a signed, witnessed checkpoint. Latency is from handing the record over to
the commit of its leaf; the appender process announces each commit (monotonic clock, tree
size) on a core NATS subject, and in a fresh hub leaf ``i`` is stream message ``i + 1``.

In the same run, against the same server: plain nats-py JetStream publishing of bodies of the
same size, the better of ``publish_async`` and atomic batch publish (``raw_publish_per_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import subprocess
import sys
import time
from collections import deque
from typing import Any

from hub.bench.bus import NOTICE, RAW_STREAM, SENDER, plain_client, raw_batch, raw_publish
from hub.bench.measure import children, cpu_seconds, latency_ms, machine, memory_mb
from hub.bus import PubAck, provision
from hub.runtime import Hub
from hub.sender import BatchSender
from hub.waits import poll

COMMITTED = "bench.pipeline.committed"
READY = "bench.pipeline.ready"
SUBJECT = f"evt.{SENDER}.pipeline"


class CommitLog:
    """Commit announcements from the appender process: when the tree reached which size."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.grew = asyncio.Event()

    async def on_message(self, msg: Any) -> None:
        """Record one ``<monotonic seconds> <tree size>`` announcement."""
        moment, size = msg.data.split()
        self.times.append(float(moment))
        self.sizes.append(int(size))
        self.grew.set()

    @property
    def size(self) -> int:
        """The latest tree size announced."""
        return self.sizes[-1] if self.sizes else 0

    async def wait_for(self, size: int, timeout: float) -> None:
        """Wait until the tree holds ``size`` leaves."""
        async with asyncio.timeout(timeout):
            while self.size < size:
                self.grew.clear()
                await self.grew.wait()

    def audited_at(self, seq: int) -> float:
        """When stream message ``seq`` (leaf ``seq - 1``) was committed."""
        return self.times[bisect.bisect_left(self.sizes, seq)]


async def _produce(
    sender: BatchSender, schema: Any, record: dict[str, Any], events: int, rate: float | None
) -> tuple[list[float], list[PubAck]]:
    """Hand ``events`` records to the hub client, at ``rate`` per second or as fast as it takes
    them (at most 8 full batches outstanding)."""
    handed: list[float] = []
    futures: deque[asyncio.Future[PubAck]] = deque()
    acks: list[PubAck] = []
    started = time.monotonic()
    for i in range(events):
        if rate is not None and i % 10 == 0:
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        handed.append(time.monotonic())
        futures.append(sender.submit_record(SUBJECT, schema, record))
        if len(futures) >= 8000:
            acks.append(await futures.popleft())
    await sender.flush()
    acks += [await f for f in futures]
    return handed, acks


async def measure(
    hub: Hub,
    commits: CommitLog,
    events: int,
    size: int,
    rate: float | None,
    *,
    batch_signatures: bool = True,
) -> dict[str, Any]:
    """One run: hand over ``events`` records and wait until every one is audited."""
    schema = hub.schemas.by_name(NOTICE)
    record = {"title": "基准测试 benchmark", "body": "x" * size}
    key = hub.keystore.current(SENDER)
    sender = BatchSender(hub.publisher, key, batch_signatures=batch_signatures)
    handed, acks = await _produce(sender, schema, record, events, rate)
    published = time.monotonic()
    await commits.wait_for(max(a.seq for a in acks), timeout=600)
    audited = [commits.audited_at(a.seq) for a in acks]
    seconds = max(audited) - handed[0]
    first = bisect.bisect_left(commits.sizes, min(a.seq for a in acks))
    batches = len(commits.sizes) - first
    return {
        "offered_per_s": rate,
        "events": events,
        "events_per_s": round(events / seconds),
        "published_per_s": round(events / (published - handed[0])),
        **latency_ms([a - h for a, h in zip(audited, handed, strict=True)]),
        "seconds": round(seconds, 3),
        "appender_commits": batches,
        "mean_commit_leaves": round(events / max(batches, 1), 1),
    }


def _appender_process(hub: Hub) -> subprocess.Popen[bytes]:
    """The audit service in its own process, like `govhub serve --only audit`.

    Its stderr goes to bench-appender.log in the bench home: a pipe nobody reads would fill up
    and stall the appender mid-run.
    """
    env = {
        **os.environ,
        "GOVHUB_NATS_URL": hub.nats_url,
        "GOVHUB_PG_DSN": hub.pg_dsn,
        "GOVHUB_HOME": str(hub.settings.home.root),
    }
    with (hub.settings.home.root / "bench-appender.log").open("ab") as log:
        return subprocess.Popen(  # the child keeps its own copy of the log's descriptor
            [sys.executable, "-m", "hub.bench.pipeline"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


class CpuMeter:
    """CPU time of each process on the path, for "microseconds of CPU per event" figures.

    The embedded servers' pids come from their pid files (PostgreSQL's backends are found
    again at each sample, so connections opened meanwhile count); with external servers only
    the two govhub processes are measured.
    """

    def __init__(self, hub: Hub, appender: int | None) -> None:
        self.groups: dict[str, list[int]] = {"publisher": [os.getpid()]}
        if appender is not None:
            self.groups["appender"] = [appender]
        self._postmaster: int | None = None
        home = hub.settings.home
        with contextlib.suppress(OSError, ValueError, IndexError):
            if hub.settings.nats_url is None:
                self.groups["nats_server"] = [int((home.nats / "nats.pid").read_text().split()[0])]
        with contextlib.suppress(OSError, ValueError, IndexError):
            if hub.settings.pg_dsn is None:
                pid_file = home.postgres / "data" / "postmaster.pid"
                self._postmaster = int(pid_file.read_text().split()[0])
        self._start = self._sample()

    def _sample(self) -> dict[str, dict[int, float]]:
        if self._postmaster is not None:
            self.groups["postgres"] = [self._postmaster, *children(self._postmaster)]
        return {name: {p: cpu_seconds(p) for p in pids} for name, pids in self.groups.items()}

    def per_event_us(self, events: int) -> dict[str, float]:
        """Microseconds of CPU per event since the meter started, by group and in total."""
        now = self._sample()
        used: dict[str, float] = {}
        for name, pids in now.items():
            before = self._start.get(name, {})
            # A process that appeared meanwhile counts from 0; one that is gone adds nothing.
            used[name] = sum(max(0.0, t - before.get(p, 0.0)) for p, t in pids.items() if t)
            used[name] *= 1e6 / events
        used["total"] = sum(used.values())
        return {name: round(value, 1) for name, value in used.items()}


async def _durability(hub: Hub) -> dict[str, str]:
    settings = {}
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        settings[f"postgres_{name}"] = str(await hub.pool.fetchval(f"SHOW {name}"))
    settings["jetstream"] = "file storage, sync_interval: always" + (
        "" if hub.settings.nats_url is None else " (as configured on the external server)"
    )
    settings["appender"] = "acks JetStream only after the PostgreSQL commit"
    return settings


async def bench_pipeline(
    hub: Hub,
    events: int,
    size: int,
    rates: list[float],
    seconds: float,
    *,
    compare_v1: bool = False,
) -> dict[str, Any]:
    """Raw publishing, then the audited pipeline at full speed and at each offered load."""
    await provision(hub.nc, [RAW_STREAM])
    body = hub.schemas.by_name(NOTICE).encode({"title": "基准测试 benchmark", "body": "x" * size})
    warm = min(1000, events)
    async with plain_client(hub) as plain:  # the raw side is plain nats-py, as shipped
        await raw_publish(plain, [body] * warm)
        raw_async = await raw_publish(plain, [body] * events)
        meter = CpuMeter(hub, None)
        raw_atomic = await raw_batch(plain, [body] * events)
        raw_atomic["cpu_us_per_event"] = meter.per_event_us(events)
    raw_best = max(raw_async["events_per_s"], raw_atomic["events_per_s"])
    commits = CommitLog()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_ready(_msg: Any) -> None:
        if not ready.done():
            ready.set_result(None)

    subs = [
        await hub.nc.subscribe(COMMITTED, cb=commits.on_message),
        await hub.nc.subscribe(READY, cb=on_ready),
    ]
    child = _appender_process(hub)
    try:
        await asyncio.wait_for(ready, 120)
        stream_messages = (await hub.nc.jetstream().stream_info("GOVHUB")).state.messages
        await commits.wait_for(stream_messages, 120)
        await measure(hub, commits, min(2000, events), size, None)  # warm-up
        meter = CpuMeter(hub, child.pid)
        full = await measure(hub, commits, events, size, None)
        full["cpu_us_per_event"] = meter.per_event_us(events)
        v1 = None
        if compare_v1:
            meter = CpuMeter(hub, child.pid)
            v1 = await measure(hub, commits, events, size, None, batch_signatures=False)
            v1["cpu_us_per_event"] = meter.per_event_us(events)
        loads = []
        for rate in rates:
            loads.append(await measure(hub, commits, max(1, int(rate * seconds)), size, rate))
        rss = memory_mb(child.pid)
        checkpoint = await _final_checkpoint(hub, commits.size)
    finally:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(20)
        if child.poll() is None:
            child.kill()
            child.wait()
        for sub in subs:
            await sub.unsubscribe()
    return {
        "benchmark": "pipeline",
        "events": events,
        "body_bytes": len(body),
        "events_per_s": full["events_per_s"],
        "p50_ms": full["p50_ms"],
        "p99_ms": full["p99_ms"],
        "raw_publish_per_s": raw_best,
        "ratio": round(full["events_per_s"] / raw_best, 2),
        "govhub": full,
        "loads": loads,
        "govhub_sig_v1": v1,
        "raw_publish_async": raw_async,
        "raw_atomic_batch": raw_atomic,
        "appender_rss_mb": rss,
        "checkpoint": checkpoint,
        "durability": await _durability(hub),
        "signatures": "govhub-sig-v2 (one Ed25519 signature per batch of up to 1,000 events)",
        "machine": machine(),
    }


async def _final_checkpoint(hub: Hub, size: int) -> dict[str, Any]:
    """Wait for a published checkpoint covering the whole tree (signed and cosigned)."""
    found: dict[str, Any] = {"size": None, "cosignatures": 0}

    async def covered() -> bool:
        row = await hub.pool.fetchrow(
            "SELECT size, cardinality(cosigners) AS cosigners FROM audit_checkpoints"
            " WHERE published_at IS NOT NULL ORDER BY size DESC LIMIT 1"
        )
        if row is None or row["size"] < size:
            return False
        found.update(size=row["size"], cosignatures=row["cosigners"])
        return True

    # A bounded wait on the other process's checkpoint schedule.
    await poll(covered, timeout=60, every=0.1)
    return found


async def _child() -> None:
    """The appender process: the audit service, announcing each commit on core NATS."""
    from hub.audit.service import AuditLog, AuditService
    from hub.home import Settings
    from hub.runtime import open_hub

    async with open_hub(Settings.from_env(None)) as hub:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def announce(size: int) -> None:
            task = loop.create_task(
                hub.nc.publish(COMMITTED, f"{time.monotonic()} {size}".encode())
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        service = AuditService(
            AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus), on_commit=announce
        )
        runner = loop.create_task(service.run())
        await service.appender.leading.wait()
        await hub.nc.publish(READY, b"")
        stop = asyncio.Event()
        for signal_name in ("SIGTERM", "SIGINT"):
            import signal

            loop.add_signal_handler(getattr(signal, signal_name), stop.set)
        await stop.wait()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def main() -> None:
    """Entry point of the appender process (`python -m hub.bench.pipeline`).

    It runs on uvloop's loop when installed, as `govhub serve` does (hub.cli.common.run), so
    the appender's CPU per event is the one the service has.
    """
    argparse.ArgumentParser(description=__doc__).parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_child())
    else:
        uvloop.run(_child())


if __name__ == "__main__":
    main()
