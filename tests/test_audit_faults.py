"""Faults while events flow: PostgreSQL down, the appender process killed mid-batch.

In both cases JetStream keeps what the appender has not acked, so the log ends with every
message exactly once, indexes gap-free from 0, and `verify --full` passing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from hub.audit import fsck
from hub.audit.appender import DURABLE
from hub.audit.service import AuditLog, AuditService
from hub.db import create_pool
from hub.embedded import EmbeddedPostgres, ServerInfo
from hub.home import Home, Settings
from hub.ports import free_port
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM
from tests.servers import NatsServer

NOTICE = "gov.common.v1.Notice"
GOVHUB = str(Path(sys.executable).parent / "govhub")


async def publish(hub: Hub, count: int, tag: str) -> None:
    envs = [
        hub.seal("akto.civil", NOTICE, {"title": f"{tag}{i}", "body": "b"}) for i in range(count)
    ]
    await hub.publisher.publish_many(envs)


async def stream_size(hub: Hub) -> int:
    return int((await hub.nc.jetstream().stream_info(HUB_STREAM)).state.messages)


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 120.0, every: float = 0.2
) -> None:
    """Poll a condition in another process's hands (there is no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(every)


async def check_log(dsn: str, hub: Hub, expected: int) -> None:
    """Exactly one leaf per message, indexes 0..n-1, and a full replay that verifies."""
    conn = await asyncpg.connect(dsn)
    try:
        count, distinct, top = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT event_key), max(idx) FROM audit_leaves"
        )
        seqs = await conn.fetchval("SELECT count(DISTINCT stream_seq) FROM audit_leaves")
        gaps = await conn.fetchval("SELECT count(*) FROM audit_gaps")
    finally:
        await conn.close()
    assert count == distinct == top + 1 == seqs == expected
    assert gaps == 0
    pool = await create_pool(dsn)
    try:
        audit = AuditLog(
            hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus, create_keys=False
        )
        report = await fsck.verify_log(
            pool, audit.verifier_trust(), audit.config.origin, full=True, events=hub.verifier
        )
    finally:
        await pool.close()
    assert report.leaves_checked == expected


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, list[ServerInfo]]]:
    """A PostgreSQL server this test may stop and start (the shared one must stay up)."""
    server = EmbeddedPostgres(Home(tmp_path / "pg"))
    running = [server.start(None)]
    try:
        yield server, running
    finally:
        if running:
            server.stop(running[-1])


@pytest.fixture
async def pg_hub(
    tmp_path: Path, nats_server: NatsServer, own_postgres: tuple[EmbeddedPostgres, list[ServerInfo]]
) -> AsyncIterator[Hub]:
    settings = Settings(Home(tmp_path / "home"), nats_server.url, own_postgres[1][0].url)
    async with open_hub(settings) as hub:
        yield hub


async def test_postgresql_down_while_events_flow_loses_nothing_and_duplicates_nothing(
    pg_hub: Hub, own_postgres: tuple[EmbeddedPostgres, list[ServerInfo]]
) -> None:
    hub, (server, running) = pg_hub, own_postgres
    dsn, port = running[0].url, running[0].port
    service = AuditService(AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus))
    task = asyncio.create_task(service.run())
    try:
        await publish(hub, 300, "before")
        target = await stream_size(hub)

        async def logged_all() -> bool:
            return service.appender.size == target

        await wait_for(logged_all)
        await asyncio.to_thread(server.stop, running.pop())
        await publish(hub, 400, "during")
        await asyncio.sleep(2.0)  # the appender retries against a database that is not there
        info = await hub.nc.jetstream().consumer_info(HUB_STREAM, DURABLE)
        assert info.num_pending + info.num_ack_pending > 0  # nothing acked while PG is down
        assert not service.appender.leading.is_set()
        running.append(await asyncio.to_thread(server.start, {"port": port}))
        await publish(hub, 300, "after")
        target = await stream_size(hub)
        await wait_for(logged_all)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await check_log(dsn, hub, target)


def start_serve(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GOVHUB_HOME": str(settings.home.root),
        "GOVHUB_NATS_URL": settings.nats_url or "",
        "GOVHUB_PG_DSN": settings.pg_dsn or "",
    }
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [GOVHUB, "serve", "--only", "audit", "--http", f"127.0.0.1:{free_port()}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


async def writer_in_transaction(pool: asyncpg.Pool) -> int | None:
    """The backend pid of the lock holder if it is inside a transaction right now."""
    return await pool.fetchval(
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.xact_start IS NOT NULL"
        " AND a.datname = current_database() LIMIT 1"
    )


async def test_killing_the_appender_mid_batch_leaves_no_gap_and_no_duplicate(
    hub: Hub, hub_settings: Settings, tmp_path: Path
) -> None:
    await AuditLog(
        hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus
    ).catch_up()  # keys exist before two processes start at once
    first = start_serve(hub_settings, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:

        async def size() -> int:
            return int(await hub.pool.fetchval("SELECT size FROM audit_state"))

        start = await size()
        second = start_serve(hub_settings, tmp_path / "second.log")
        killed = asyncio.Event()

        async def keep_publishing() -> None:
            batch = 0
            while not killed.is_set() or batch < 10:
                await publish(hub, 100, f"b{batch}-")
                batch += 1
                if killed.is_set():
                    batch = max(batch, 10)  # a few more batches once the writer is gone
                    await publish(hub, 500, "after")
                    return

        publishing = asyncio.create_task(keep_publishing())

        async def mid_batch() -> bool:
            return await size() > start + 200 and await writer_in_transaction(hub.pool) is not None

        await wait_for(mid_batch, every=0.005)  # a commit takes milliseconds: look often
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed.set()
        await publishing
        target = await stream_size(hub)

        async def caught_up() -> bool:
            return await size() == target

        await wait_for(caught_up, 180)
        assert second.poll() is None  # the standby took over and is still running
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert hub_settings.pg_dsn is not None
    await check_log(hub_settings.pg_dsn, hub, target)
