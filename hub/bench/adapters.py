"""`govhub bench adapters`: the three reference paths, each next to the same I/O without govhub.

- outbox: rows of a PostgreSQL outbox → mapped, signed, published, acknowledged and marked
  sent (rows/s; target ≥ 3,000), next to plain asyncpg reads, plain nats-py `publish_async`,
  and the two plus the UPDATE that marks rows, done by hand with no mapping or signing;
- webhook: signed POSTs → 202 with the event id (requests/s, p50/p99), next to a plain aiohttp
  handler that parses the JSON and publishes it with nats-py, driven by the same client;
- folder: files dropped with a sidecar → sent as documents through the exchange (files/min),
  next to reading, hashing, publishing and moving the same files by hand.

Everything runs on the servers of the (scratch) hub in one process, one path after the other.
Connectors and adapters are found through their entry points (`load_connector`,
`load_plugin`), as a department's own package would be.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from hub.bench.measure import Stopwatch, latency_ms, machine
from hub.bus import provision
from hub.integration.adapter import Adapter, AdapterContext, load_plugin
from hub.integration.bridge import EventSink
from hub.integration.connector import ConnectorContext, Record, Sink, Source, load_connector
from hub.integration.deadletter import QuarantineDeadLetters
from hub.integration.pipeline import Pipeline, PipelineOptions
from hub.integration.signing import signed_headers
from hub.ports import free_port
from hub.runtime import Hub
from hub.tomlconfig import Secret
from hub.topology import StreamSpec
from hub.waits import poll

DSN_ENV = "GOVHUB_BENCH_OUTBOX_DSN"
SECRET_ENV = "GOVHUB_BENCH_WEBHOOK_SECRET"
RAW_STREAM = StreamSpec(
    "BENCH_ADAPTERS_RAW", ("rawadapters.>",), "benchmark: raw I/O baseline", protect=False
)
TARGET_ROWS_PER_S = 3000


def _adapter(name: str) -> Adapter:
    return load_plugin(name, "bench")


def _sample(adapter: Adapter) -> dict[str, Any]:
    assert adapter.sample is not None, f"the {adapter.name} adapter has no sample record"
    return dict(adapter.sample)


def _source_options(connector: str, **options: Any) -> Any:
    """The source options of an installed connector, built from keyword arguments."""
    factory = load_connector(connector)
    assert factory.source_options is not None, f"the {connector} connector has no source side"
    return factory.source_options(**options)


def _pipeline(
    hub: Hub, name: str, participant: str, source: Source, sink: Sink, mapping: Any, options: Any
) -> Pipeline:
    context = AdapterContext(name, participant, options)
    dead = QuarantineDeadLetters(hub.publisher, adapter=name, participant=participant)

    def apply(record: Record) -> Record | None:
        result: Record | None = mapping(record, context)
        return result

    return Pipeline(
        name,
        source,
        sink,
        apply,
        dead_letters=dead,
        options=PipelineOptions(batch_size=500, concurrency=4, backoff_initial=0.05),
    )


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 600) -> None:
    if not await poll(check, timeout=timeout, every=0.05):
        raise TimeoutError("the benchmark did not finish in time")


async def _run_until(pipeline: Pipeline, done: Callable[[], Awaitable[bool]]) -> float:
    """Run a pipeline until `done`, then stop it; returns the seconds until `done` held."""
    stop = asyncio.Event()
    watch = Stopwatch()
    task = asyncio.create_task(pipeline.run(stop))
    try:
        await _until(done)
        seconds = watch.stop()
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)
    return seconds


# -- outbox ---------------------------------------------------------------------------


def sibling_dsn(dsn: str, database: str) -> str:
    """The DSN of another database on the same server."""
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] + f"/{database}"
    return f"{base}?{query}" if query else base


async def _scratch_database(hub: Hub) -> tuple[str, str]:
    name = f"govhub_bench_{secrets.token_hex(4)}"
    await hub.pool.execute(f'CREATE DATABASE "{name}"')
    return name, sibling_dsn(hub.pg_dsn, name)


async def _fill_outbox(dsn: str, rows: int, native: dict[str, Any]) -> None:
    payloads = []
    for n in range(rows):
        payload = dict(native["payload"], case_no=f"B-{n:07d}", hh_code=f"H{n:07d}")
        payloads.append(json.dumps(payload, ensure_ascii=False))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)"
            " SELECT gen_random_uuid(), 'case', p::jsonb->>'case_no', 'HouseholdAssistance',"
            " p::jsonb FROM unnest($1::text[]) AS p",
            payloads,
        )
    finally:
        await conn.close()


async def _unsent(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE govhub_sent_at IS NULL"))
    finally:
        await conn.close()


async def _raw_outbox(hub: Hub, dsn: str, rows: int, body: bytes) -> dict[str, Any]:
    """The same rows by hand: read, publish_async, mark; and each step alone."""
    js = hub.nc.jetstream(publish_async_max_pending=4000)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE outbox SET govhub_sent_at = NULL")
        watch, last, read = Stopwatch(), 0, 0
        while batch := await conn.fetch(
            "SELECT govhub_pos, id, payload::text FROM outbox WHERE govhub_pos > $1"
            " ORDER BY govhub_pos LIMIT 1000",
            last,
        ):
            last, read = batch[-1]["govhub_pos"], read + len(batch)
        read_s = watch.stop()
        watch = Stopwatch()
        for i in range(rows):
            await js.publish_async(
                f"rawadapters.{i % 16}", body, headers={"Nats-Msg-Id": f"p{time.time_ns()}-{i}"}
            )
        await asyncio.wait_for(js.publish_async_completed(), 300)
        publish_s = watch.stop()
        watch, last = Stopwatch(), 0
        while batch := await conn.fetch(
            "SELECT govhub_pos, id, payload::text FROM outbox WHERE govhub_sent_at IS NULL"
            " AND govhub_pos > $1 ORDER BY govhub_pos LIMIT 1000",
            last,
        ):
            last = batch[-1]["govhub_pos"]
            for row in batch:
                await js.publish_async(
                    f"rawadapters.{row['govhub_pos'] % 16}",
                    row["payload"].encode(),
                    headers={"Nats-Msg-Id": f"m{time.time_ns()}-{row['govhub_pos']}"},
                )
            await asyncio.wait_for(js.publish_async_completed(), 300)
            await conn.execute(
                "UPDATE outbox SET govhub_sent_at = now() WHERE govhub_pos = ANY($1::bigint[])",
                [r["govhub_pos"] for r in batch],
            )
        whole_s = watch.stop()
    finally:
        await conn.close()
    return {
        "raw_asyncpg_read": {"rows_per_s": round(read / read_s), "seconds": round(read_s, 3)},
        "raw_nats_publish_async": {
            "msgs_per_s": round(rows / publish_s),
            "seconds": round(publish_s, 3),
        },
        "raw_read_publish_mark": {
            "rows_per_s": round(rows / whole_s),
            "seconds": round(whole_s, 3),
        },
    }


async def bench_outbox(hub: Hub, rows: int) -> dict[str, Any]:
    """Outbox rows → signed events/s, next to the raw I/O on the same rows."""
    name, dsn = await _scratch_database(hub)
    os.environ[DSN_ENV] = dsn
    try:
        civil = _adapter("civil_assistance")
        assert civil.to_hub is not None
        postgres = load_connector("postgres")
        options = _source_options(
            "postgres", dsn=Secret(env=DSN_ENV), read_batch=1000, max_in_flight=8000
        )
        context = ConnectorContext(adapter="bench-outbox", participant="akto.civil")
        prepare = postgres.source(options, context)
        await prepare.start()
        await prepare.stop()
        await _fill_outbox(dsn, rows, _sample(civil))
        sink = EventSink(hub.trust, hub.bus, hub.signer, "akto.civil")
        pipeline = _pipeline(
            hub,
            "bench-outbox",
            "akto.civil",
            postgres.source(options, context),
            sink,
            civil.to_hub,
            None,
        )

        async def done() -> bool:
            return pipeline.stats.delivered >= rows and await _unsent(dsn) == 0

        seconds = await _run_until(pipeline, done)
        sample = civil.to_hub(
            Record(key="x", value=_sample(civil), kind="HouseholdAssistance"),
            AdapterContext("bench", "akto.civil"),
        )
        assert sample is not None
        body = hub.schemas.by_name(sample.kind).encode(sample.value)
        await provision(hub.nc, [RAW_STREAM])
        raw = await _raw_outbox(hub, dsn, rows, body)
    finally:
        os.environ.pop(DSN_ENV, None)
        await hub.pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rate = round(rows / seconds)
    return {
        "rows": rows,
        "govhub": {
            "rows_per_s": rate,
            "seconds": round(seconds, 3),
            "dead_lettered": pipeline.stats.dead_lettered,
        },
        **raw,
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "meets_target": rate >= TARGET_ROWS_PER_S,
        "ratio_to_raw": round(rate / max(raw["raw_read_publish_mark"]["rows_per_s"], 1), 2),
    }


# -- webhook --------------------------------------------------------------------------


async def _drive(url: str, requests: int, concurrency: int, secret: bytes) -> dict[str, Any]:
    """POST `requests` signed monthly releases with `concurrency` clients; rate and latency."""
    release = _sample(_adapter("monthly_statistics"))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    numbers = iter(range(requests))

    async def client(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            body = json.dumps({**release, "revision": n}).encode()
            headers = {**signed_headers(secret, body), "Idempotency-Key": uuid.uuid4().hex}
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        watch = Stopwatch()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = watch.stop()
    return {
        "requests_per_s": round(requests / seconds),
        **latency_ms(latencies),
        "seconds": round(seconds, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def _raw_webhook(hub: Hub, requests: int, concurrency: int) -> dict[str, Any]:
    """A plain aiohttp handler: parse the JSON, publish it with nats-py, answer 202."""
    js = hub.nc.jetstream()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)
        ack = await js.publish("rawadapters.hook", body)
        return web.json_response({"seq": ack.seq}, status=202)

    app = web.Application()
    app.router.add_post("/raw", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await _drive(f"http://127.0.0.1:{port}/raw", requests, concurrency, b"unused")
    finally:
        await runner.cleanup()


async def bench_webhook(hub: Hub, requests: int, concurrency: int) -> dict[str, Any]:
    """Signed POSTs → verified, mapped, signed, published events; next to a plain handler."""
    secret = secrets.token_hex(16)
    os.environ[SECRET_ENV] = secret
    port = free_port()
    try:
        stats = _adapter("monthly_statistics")
        assert stats.to_hub is not None
        options = _source_options(
            "http", listen=f"127.0.0.1:{port}", path="/figures", hmac_secret=Secret(env=SECRET_ENV)
        )
        context = ConnectorContext(adapter="bench-webhook", participant="artux.stats")
        pipeline = _pipeline(
            hub,
            "bench-webhook",
            "artux.stats",
            load_connector("http").source(options, context),
            EventSink(hub.trust, hub.bus, hub.signer, "artux.stats"),
            stats.to_hub,
            None,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        try:
            await _until(_running(pipeline), 60)
            ours = await _drive(
                f"http://127.0.0.1:{port}/figures", requests, concurrency, secret.encode()
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 120)
    finally:
        os.environ.pop(SECRET_ENV, None)
    await provision(hub.nc, [RAW_STREAM])
    raw = await _raw_webhook(hub, requests, concurrency)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "govhub": ours,
        "raw_aiohttp_nats": raw,
        "ratio_to_raw": round(ours["requests_per_s"] / max(raw["requests_per_s"], 1), 2),
    }


def _running(pipeline: Pipeline) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return pipeline.stats.state == "running"

    return check


# -- folder ---------------------------------------------------------------------------


def _drop(root: Path, files: int, size: int) -> None:
    drop = root / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        name = f"通知-{n:05d}.pdf"
        (drop / f"{name}.toml").write_text(f'title = "基准测试通知 {n}"\n', encoding="utf-8")
        part = drop / f"{name}.part"
        part.write_bytes(os.urandom(size))
        os.replace(part, drop / name)


def _sha256_file(path: Path) -> str:
    """What the folder connector does per file: hex SHA-256, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _raw_folder(root: Path, files: int, size: int) -> tuple[list[bytes], float]:
    _drop(root, files, size)
    done = root / "done"
    done.mkdir()
    watch = Stopwatch()
    contents = []
    for path in sorted((root / "drop").glob("*.pdf")):
        _sha256_file(path)
        contents.append(path.read_bytes())
        os.replace(path, done / path.name)
    return contents, watch.stop()


async def bench_folder(hub: Hub, files: int, size: int) -> dict[str, Any]:
    """Dropped files → documents sent through the exchange (files/min); next to doing it by hand."""
    work = Path(tempfile.mkdtemp(prefix="bench-folder-", dir=hub.settings.home.run))
    try:
        root = work / "office"
        office = _adapter("office_documents")
        assert office.to_hub is not None and office.options is not None
        options = _source_options("folder", path=root, settle_seconds=0, scan_interval=0.05)
        context = ConnectorContext(adapter="bench-folder", participant="pref.office")
        from hub.integration.docbridge import DocumentSink

        sink = DocumentSink(hub.settings, hub.trust, hub.bus, hub.signer, "pref.office")
        pipeline = _pipeline(
            hub,
            "bench-folder",
            "pref.office",
            load_connector("folder").source(options, context),
            sink,
            office.to_hub,
            office.options(default_to=("akto.office",)),
        )
        _drop(root, files, size)

        async def done() -> bool:
            return pipeline.stats.delivered + pipeline.stats.dead_lettered >= files

        seconds = await _run_until(pipeline, done)
        raw_root = work / "raw"
        contents, raw_read_s = await asyncio.to_thread(_raw_folder, raw_root, files, size)
        js = hub.nc.jetstream()
        watch = Stopwatch()
        for n, data in enumerate(contents):
            await js.publish(f"rawadapters.file.{n % 16}", data)
        raw_s = raw_read_s + watch.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "files": files,
        "file_bytes": size,
        "govhub": {
            "files_per_min": round(files / seconds * 60),
            "seconds": round(seconds, 3),
            "dead_lettered": pipeline.stats.dead_lettered,
        },
        "raw_read_hash_publish_move": {
            "files_per_min": round(files / raw_s * 60),
            "seconds": round(raw_s, 3),
        },
    }


async def bench_adapters(
    hub: Hub, *, rows: int, requests: int, concurrency: int, files: int, file_bytes: int
) -> dict[str, Any]:
    """All three paths, one after the other."""
    await provision(hub.nc, [RAW_STREAM])
    return {
        "benchmark": "adapters",
        "outbox": await bench_outbox(hub, rows),
        "webhook": await bench_webhook(hub, requests, concurrency),
        "folder": await bench_folder(hub, files, file_bytes),
        "durability": "file storage; each path acknowledged by JetStream before it counts",
        "machine": machine(),
    }
