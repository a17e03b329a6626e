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
    AuditLog(hub)  # creates the log and witness keys once, before any serve process




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

        import time as _t
        for _i in range(40):
            info = await hub.nc.jetstream().consumer_info("GOVHUB", "directory")
            rows = await query(dsn, "SELECT count(*), (SELECT last_seq FROM directory_state) FROM directory_events")
            print("D", _t.strftime("%H:%M:%S"), info.num_pending, info.num_ack_pending, info.num_redelivered, info.num_waiting, info.delivered.stream_seq, info.ack_floor.stream_seq, tuple(rows[0]))
            if rows[0][0] == 30: break
            await asyncio.sleep(1)
        if rows[0][0] != 30:
            print(serve.tail(200))
            import subprocess as _sp
            _sp.run(["py-spy", "dump", "--pid", str(serve.proc.pid)])
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


