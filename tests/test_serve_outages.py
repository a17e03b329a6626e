"""Outage drills on `govhub serve` with every service running, as an operator would run them.

Each drill runs real processes (a `govhub serve` child, nats-server, PostgreSQL), puts steady
load on the hub, breaks something, and counts acknowledged against stored: every
acknowledged event is in the audit log exactly once, every document is in one state, every
directory event applied once. `/healthz` must say `degraded` during the outage and `ok`
after it, by itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.audit.service import AuditLog
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.directory_support import register_population_schema
from tests.drills import (
    GOVHUB,
    Load,
    Postgres,
    Serve,
    assert_nothing_lost_or_doubled,
    directory_events,
    query,
    send_documents,
    stream_messages,
    wait_converged,
    wait_until,
)
from tests.servers import NatsServer

EVENTS, RATE = 900, 300.0


@pytest.fixture
def own_postgres(tmp_path: Path) -> AsyncIterator[Postgres]:
    """A PostgreSQL this drill may crash (the shared one must stay up)."""
    server = Postgres(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _prepared(hub: Hub) -> None:
    """What every drill needs before serve starts: the data schema, the log keys."""
    await register_population_schema(hub)
    AuditLog(
        hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus
    )  # creates the log and witness keys once, before any serve process


async def test_serve_rides_out_a_postgresql_crash_under_load_and_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, own_postgres: Postgres
) -> None:
    settings = Settings(Home(tmp_path / "home"), nats_server.url, own_postgres.url)
    async with open_hub(settings) as hub:
        await _prepared(hub)
        serve = Serve(settings, tmp_path / "serve.log")
        serve.start()
        try:
            await serve.wait_health("ok")
            load = Load.notices(hub, EVENTS, RATE, "pg")
            entries = Load(hub, directory_events(hub, range(1, 31)), RATE / 10)
            loading = asyncio.gather(
                load.run(),
                entries.run(),
                send_documents(hub, tmp_path / "docs", 8, every=0.4),
            )
            await load.reached(EVENTS // 3)
            await asyncio.to_thread(own_postgres.kill)
            await serve.wait_health("degraded", cause="PostgreSQL")
            await asyncio.to_thread(own_postgres.start)
            await serve.wait_health("ok")
            _, _, docs = await loading

            await wait_converged(hub, own_postgres.url, docs, len(entries.acked))
            assert serve.running
            await assert_nothing_lost_or_doubled(
                hub,
                own_postgres.url,
                {"notices": load.acked, "directory": entries.acked},
                docs,
            )
            await serve.wait_health("ok")
        finally:
            code = serve.stop()
        assert code == 0, serve.tail()


async def test_serve_rides_out_nats_killed_mid_publish_and_senders_retry_with_the_same_ids(
    hub: Hub, hub_settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    await _prepared(hub)
    assert hub_settings.pg_dsn is not None
    serve = Serve(hub_settings, tmp_path / "serve.log")
    serve.start()
    try:
        await serve.wait_health("ok")
        load = Load.notices(hub, EVENTS, RATE, "nats")
        entries = Load(hub, directory_events(hub, range(1, 31)), RATE / 10)
        loading = asyncio.gather(
            load.run(), entries.run(), send_documents(hub, tmp_path / "docs", 8, every=0.4)
        )
        await load.reached(EVENTS // 3)
        await asyncio.to_thread(nats_server.kill)
        await serve.wait_health("degraded", cause="NATS")
        await asyncio.to_thread(nats_server.start)
        await serve.wait_health("ok")
        _, _, docs = await loading

        await wait_converged(hub, hub_settings.pg_dsn or "", docs, len(entries.acked))
        assert serve.running
        await assert_nothing_lost_or_doubled(
            hub, hub_settings.pg_dsn, {"notices": load.acked, "directory": entries.acked}, docs
        )
        await serve.wait_health("ok")
    finally:
        code = serve.stop()
    assert code == 0, serve.tail()


async def writer_in_transaction(dsn: str) -> bool:
    """Whether the audit writer (the advisory lock holder) is inside a transaction now."""
    rows = await query(
        dsn,
        "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.xact_start IS NOT NULL"
        " AND a.datname = current_database() AND a.query LIKE '%audit%' LIMIT 1",
    )
    return bool(rows)


async def test_serve_killed_mid_append_and_restarted_leaves_a_tree_that_verifies_in_full(
    hub: Hub, hub_settings: Settings, tmp_path: Path
) -> None:
    await _prepared(hub)
    dsn = hub_settings.pg_dsn
    assert dsn is not None
    serve = Serve(hub_settings, tmp_path / "serve.log")
    serve.start()
    try:
        await serve.wait_health("ok")
        load = Load.notices(hub, EVENTS, RATE, "kill")
        entries = Load(hub, directory_events(hub, range(1, 31)), RATE / 10)
        # No documents here: what a killed tracker held comes back only after its ack wait
        # (tests/test_exchange_receipts.py drills that); this drill is about the tree.
        loading = asyncio.gather(load.run(), entries.run())
        await load.reached(EVENTS // 3)

        async def mid_append() -> bool:
            return await writer_in_transaction(dsn)

        # A commit takes milliseconds: look often.
        await wait_until(mid_append, "the appender to be inside a commit", every=0.005)
        serve.kill()
        serve.start()
        await serve.wait_health("ok")
        await loading

        await wait_converged(hub, dsn, [], len(entries.acked))
        await assert_nothing_lost_or_doubled(
            hub, dsn, {"notices": load.acked, "directory": entries.acked}, []
        )
        verified = await asyncio.to_thread(
            subprocess.run,
            [GOVHUB, "audit", "verify", "--full", "--json"],
            env=serve.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["leaves_checked"] == await stream_messages(hub)
    finally:
        code = serve.stop()
    assert code == 0, serve.tail()


async def test_two_serve_processes_share_the_work_with_one_audit_writer(
    hub: Hub, hub_settings: Settings, tmp_path: Path
) -> None:
    await _prepared(hub)
    dsn = hub_settings.pg_dsn
    assert dsn is not None
    pair = [Serve(hub_settings, tmp_path / f"serve-{n}.log") for n in (1, 2)]
    for serve in pair:
        serve.start()
    try:
        for serve in pair:
            await serve.wait_health("ok")
        load = Load.notices(hub, EVENTS, RATE, "pair")
        entries = Load(hub, directory_events(hub, range(1, 31)), RATE / 10)
        _, _, docs = await asyncio.gather(
            load.run(), entries.run(), send_documents(hub, tmp_path / "docs", 8, every=0.4)
        )

        await wait_converged(hub, dsn, docs, len(entries.acked))
        await assert_nothing_lost_or_doubled(
            hub, dsn, {"notices": load.acked, "directory": entries.acked}, docs
        )
        writers = [await s.metric("govhub_audit_writer") for s in pair]
        assert sorted(writers) == [0, 1], "exactly one process appends to the audit log"
        applied = [await s.metric("govhub_exchange_events_total") for s in pair]
        assert sum(applied) == 2 * len(docs), "each manifest and receipt applied once"
        materialized = [await s.metric("govhub_directory_events_total") for s in pair]
        assert sorted(materialized) == [0, len(entries.acked)], "one directory writer"
        for serve in pair:
            await serve.wait_health("ok")
    finally:
        codes = [serve.stop() for serve in pair]
    assert codes == [0, 0], pair[0].tail() + pair[1].tail()
