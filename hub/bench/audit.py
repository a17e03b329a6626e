"""``govhub bench audit``: append rate, proof time against log size, checkpoint latency, memory.

Everything runs in a temporary home with its own embedded nats-server and PostgreSQL, so a
benchmark never touches a real log. Figures:

* **append**: leaves/s through ``store.append_batch`` (the appender's transaction: idempotency
  lookup, COPY of leaves, tiles, state, sequences) with realistic ~1 KB leaves, next to the raw
  client: asyncpg COPY of the same rows into an unindexed table, in the same run.
* **appender**: end to end from JetStream (fetch, verify every signature, commit, ack), next to
  a raw pull-and-ack of the same messages with no verification and no database.
* **proofs**: ``audit proof`` work (event lookup, checkpoint, tile reads, assembly) at each log
  size. The sizes are reached by a synthetic bulk load through the same ``append_batch`` with
  batches of 50,000 templated leaves (the leaf JSON is formatted from a template, not signed).
* **checkpoint latency**: events published at a steady rate while the audit service runs
  (appender, checkpoints every ``checkpoint_interval``, four local witnesses, k = 3); latency is
  from the publish acknowledgement to the first published checkpoint that covers the event.
* **memory**: the state the appender keeps (compact range and right-edge tiles), measured with
  tracemalloc after loading it at each log size.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from hub.audit import bundle, reader, store
from hub.audit.leaf import LeafRecord
from hub.audit.note import Checkpoint, Signer, sign_note
from hub.audit.sequences import SequenceTracker
from hub.audit.service import AuditLog, AuditService
from hub.bench.bus import plain_client
from hub.db import create_pool, migrate
from hub.home import Home, Settings
from hub.merkle import leaf_hash
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"
Report = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


class LeafFactory:
    """Leaves shaped like a logged notice (~1 KB), formatted from a template for speed."""

    def __init__(self, stream: str = "GOVHUB") -> None:
        """``stream``: the origin stream the leaves claim (a bulk load uses its own)."""
        self.stream = stream
        body = base64.b64encode(os.urandom(120)).decode()
        sig = base64.b64encode(os.urandom(64)).decode()
        self._head = ('{"body":"' + body + '","detail":null,"headers":{"Nats-Msg-Id":"').encode()
        self._mid = (
            '","ce-source":"akto.civil","ce-specversion":"1.0","ce-time":"2026-11-26T08:00:00.'
            '000000Z","ce-type":"gov.common.v1.Notice","content-type":"application/avro",'
            '"govhub-key":"akto.civil/0123456789abcdef","govhub-sig":"' + sig + '","ce-id":"'
        ).encode()
        self._tail = (
            b'"},"origin":null,"reason":null,"received_at":"2026-11-26T08:00:00.000000Z",'
            b'"stream":"' + stream.encode() + b'","stream_seq":'
        )
        self.now = datetime.now(UTC)

    def record(self, i: int) -> LeafRecord:
        """Leaf number ``i`` (unique event id)."""
        event_id = f"bench-{i:012d}"
        raw = event_id.encode()
        leaf = self._head + raw + self._mid + raw + self._tail + str(i + 1).encode() + b',"v":1}'
        return LeafRecord(
            event_id, leaf_hash(raw), leaf, event_id, "akto.civil", NOTICE,
            "evt.akto.civil.notice", "accepted", None, None, self.now, self.now, self.stream, i + 1,
            None,
        )  # fmt: skip

    def records(self, start: int, end: int) -> list[LeafRecord]:
        """Leaves ``[start, end)``."""
        return [self.record(i) for i in range(start, end)]


async def _database(hub: Hub, name: str) -> str:
    """A fresh, migrated database on the bench's PostgreSQL server."""
    admin = await asyncpg.connect(hub.pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = hub.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    pool = await create_pool(dsn)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    return dsn


class _Writer:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.state: store.TreeState | None = None
        self.tracker = SequenceTracker()

    async def append(self, records: list[LeafRecord]) -> None:
        if self.state is None:
            self.state = await store.load_state(self.conn)
        self.state, self.tracker, _ = await store.append_batch(
            self.conn, self.state, self.tracker, records
        )


async def bench_append(hub: Hub, leaves: int, batch: int, say: Report) -> dict[str, Any]:
    """Sustained appends/s through the appender's transaction, and raw COPY of the same rows."""
    dsn = await _database(hub, "bench_append")
    factory = LeafFactory()
    batches = [factory.records(i, min(i + batch, leaves)) for i in range(0, leaves, batch)]
    conn = await asyncpg.connect(dsn)
    try:
        writer = _Writer(conn)
        started = time.perf_counter()
        for records in batches:
            await writer.append(records)
        elapsed = time.perf_counter() - started
        await conn.execute("CREATE TABLE raw_copy (LIKE audit_leaves)")
        rows = [store.leaf_row(r.stream_seq - 1, r) for records in batches for r in records]
        raw_started = time.perf_counter()
        for i in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "raw_copy", records=rows[i : i + batch], columns=store.LEAF_COLUMNS
                )
        raw = time.perf_counter() - raw_started
    finally:
        await conn.close()
    result = {
        "leaves": leaves,
        "batch": batch,
        "leaves_per_s": round(leaves / elapsed),
        "raw_copy_rows_per_s": round(leaves / raw),
        "leaf_bytes": len(batches[0][0].leaf),
    }
    say(f"append: {result['leaves_per_s']:,} leaves/s (raw COPY {result['raw_copy_rows_per_s']:,})")
    return result


async def bench_appender(hub: Hub, events: int, say: Report) -> dict[str, Any]:
    """The appender end to end from JetStream, next to a raw pull-and-ack of the messages."""
    envs = [hub.seal("akto.civil", NOTICE, {"title": f"n{i}", "body": "b"}) for i in range(events)]
    await hub.publisher.publish_many(envs)
    async with plain_client(hub) as plain:  # the raw side is plain nats-py, as shipped
        js = plain.jetstream()
        raw = await js.pull_subscribe("", durable="bench_raw", stream=HUB_STREAM)
        started, seen = time.perf_counter(), 0
        total = (await js.stream_info(HUB_STREAM)).state.messages
        while seen < total:
            msgs = await raw.fetch(1000, timeout=5)
            for msg in msgs:
                await msg.ack()
            seen += len(msgs)
        raw_elapsed = time.perf_counter() - started
        await raw.unsubscribe()
    appender = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).appender()
    rss_before = _rss_kib()
    started = time.perf_counter()
    size = await appender.catch_up(timeout=600)
    elapsed = time.perf_counter() - started
    result = {
        "messages": size,
        "leaves_per_s": round(size / elapsed),
        "raw_pull_ack_per_s": round(total / raw_elapsed),
        "rss_growth_mib": round((_rss_kib() - rss_before) / 1024, 1),
    }
    say(
        f"appender end to end: {result['leaves_per_s']:,} leaves/s "
        f"(raw pull+ack {result['raw_pull_ack_per_s']:,}/s)"
    )
    return result


def _rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def bench_sizes(
    hub: Hub, sizes: list[int], samples: int, say: Report
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Grow one log through every size; time proofs and measure the writer's state at each."""
    dsn = await _database(hub, "bench_sizes")
    factory = LeafFactory()
    signer = Signer.generate("bench.govhub.example/audit")
    pool = await create_pool(dsn)
    conn = await asyncpg.connect(dsn)
    proofs, memory = [], []
    try:
        writer, size = _Writer(conn), 0
        for target in sorted(sizes):
            load_started = time.perf_counter()
            while size < target:
                step = min(50_000, target - size)
                await writer.append(factory.records(size, size + step))
                size += step
            load = time.perf_counter() - load_started
            root = bytes(await conn.fetchval("SELECT root FROM audit_state"))
            text = sign_note(Checkpoint("bench.govhub.example/audit", size, root).body(), signer)
            await conn.execute(
                "INSERT INTO audit_checkpoints (size, root, note, published_at)"
                " VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
                size,
                root,
                text,
            )
            rng = random.Random(size)
            timings, lookups = [], []
            for _ in range(samples):
                event_id = f"bench-{rng.randrange(size):012d}"
                started = time.perf_counter()
                await reader.find_event(pool, event_id)
                lookups.append(time.perf_counter() - started)
                started = time.perf_counter()
                await bundle.proof_for_event(pool, event_id)
                timings.append(time.perf_counter() - started)
            row = {"size": size, "bulk_load_s": round(load, 1), **_ms(timings)}
            row["lookup_p50_ms"] = _ms(lookups)["p50_ms"]
            proofs.append(row)
            memory.append({"size": size, "state_bytes": await _state_bytes(conn)})
            say(
                f"size {size:>12,}: proof p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms; "
                f"writer state {memory[-1]['state_bytes']:,} bytes (loaded in {load:.0f} s)"
            )
    finally:
        await conn.close()
        await pool.close()
    return proofs, memory


async def _state_bytes(conn: asyncpg.Connection) -> int:
    """Bytes the writer's in-memory state takes, as tracemalloc sees them after loading it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state = await store.load_state(conn)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del state
    return held


async def bench_latency(hub: Hub, seconds: float, rate: int, say: Report) -> dict[str, Any]:
    """Publish at ``rate``/s for ``seconds`` with the audit service running; time to checkpoint."""
    service = AuditService(AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus))
    arrivals: list[tuple[float, int]] = []
    caught_up = asyncio.Event()
    target = [1 << 62]

    async def on_checkpoint(msg: Any) -> None:
        arrivals.append((time.perf_counter(), int(msg.headers.get("govhub-tree-size", "0"))))
        if arrivals[-1][1] >= target[0]:
            caught_up.set()

    sub = await hub.nc.subscribe("sys.audit.checkpoint", cb=on_checkpoint)
    task = asyncio.create_task(service.run())
    acked: dict[str, float] = {}
    try:
        await asyncio.wait_for(service.appender.leading.wait(), 30)
        per_tick = max(1, round(rate * 0.05))  # publish every 50 ms
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < seconds:
            envs = [
                hub.seal("artux.stats", NOTICE, {"title": f"l{n + i}", "body": "b"})
                for i in range(per_tick)
            ]
            n += per_tick
            for env, _ack in zip(envs, await hub.publisher.publish_many(envs), strict=True):
                acked[env.event_id] = time.perf_counter()
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        target[0] = (await hub.nc.jetstream().stream_info(HUB_STREAM)).state.messages
        if arrivals and arrivals[-1][1] >= target[0]:
            caught_up.set()
        await asyncio.wait_for(caught_up.wait(), 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sub.unsubscribe()
    rows = await hub.pool.fetch(
        "SELECT event_id, idx FROM audit_leaves WHERE event_id = ANY($1::text[])", list(acked)
    )
    latencies = []
    for r in rows:
        covered = next((t for t, size in arrivals if size > r["idx"]), None)
        if covered is not None:
            latencies.append(covered - acked[r["event_id"]])
    result = {"events": len(acked), "rate_per_s": rate, "covered": len(latencies),
              "checkpoints": len(arrivals), **_ms(latencies or [0.0])}  # fmt: skip
    say(
        f"checkpoint latency at {rate}/s: p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms over {len(latencies)} events"
    )
    return result


async def run_bench(
    *,
    leaves: int = 200_000,
    batch: int = 1000,
    events: int = 20_000,
    sizes: tuple[int, ...] = (10_000, 1_000_000),
    samples: int = 200,
    latency_seconds: float = 10.0,
    rate: int = 500,
    say: Report = _quiet,
) -> dict[str, Any]:
    """Run every part in a temporary home with embedded servers; return the figures."""
    with tempfile.TemporaryDirectory(prefix="govhub-bench-audit-") as folder:
        settings = Settings(home=Home(Path(folder)))
        async with open_hub(settings) as hub:
            say("servers up in a temporary home; measuring")
            result: dict[str, Any] = {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "postgres": await hub.pool.fetchval("SHOW server_version"),
                },
                "append": await bench_append(hub, leaves, batch, say),
                "appender": await bench_appender(hub, events, say),
                "checkpoint_latency": await bench_latency(hub, latency_seconds, rate, say),
            }
            proofs, memory = await bench_sizes(hub, list(sizes), samples, say)
            result["proofs"], result["memory"] = proofs, memory
    return result


def iter_sizes(text: str) -> Iterator[int]:
    """Parse ``1e4,1e6`` or ``10000,1000000``."""
    for part in text.split(","):
        if part.strip():
            yield int(float(part))


def render(result: dict[str, Any]) -> str:
    """The figures as text for a person."""
    a, e, c = result["append"], result["appender"], result["checkpoint_latency"]
    lines = [
        f"machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"PostgreSQL {result['machine']['postgres']}",
        f"append into PostgreSQL   {a['leaves_per_s']:>10,} leaves/s   (raw COPY of the same "
        f"rows {a['raw_copy_rows_per_s']:,}/s; {a['leaf_bytes']} B leaves, batch {a['batch']})",
        f"appender from JetStream  {e['leaves_per_s']:>10,} leaves/s   (raw pull+ack "
        f"{e['raw_pull_ack_per_s']:,}/s; includes Ed25519 verification of every event)",
        f"checkpoint latency       p50 {c['p50_ms']:.0f} ms, p99 {c['p99_ms']:.0f} ms, max "
        f"{c['max_ms']:.0f} ms   ({c['covered']} events at {c['rate_per_s']}/s)",
    ]
    for p, m in zip(result["proofs"], result["memory"], strict=True):
        lines.append(
            f"proof at {p['size']:>12,} leaves  p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms"
            f"  (lookup {p['lookup_p50_ms']:.2f} ms)   writer state {m['state_bytes']:,} B"
        )
    return "\n".join(lines)


def dumps(result: dict[str, Any]) -> str:
    """One JSON document."""
    return json.dumps(result, indent=2)
