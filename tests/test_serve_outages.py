"""Outage drills on `govhub serve` with every service running, as an operator would run them.

Each drill runs real processes (a `govhub serve` child, nats-server, PostgreSQL), puts steady
load on the hub, breaks something, and counts acknowledged against stored: every
acknowledged event is in the audit log exactly once, every document is in one state, every
directory event applied once. `/healthz` must say `degraded` during the outage and `ok`
after it, by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.audit.service import AuditLog
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.directory_support import register_population_schema
from tests.drills import (
    Load,
    Postgres,
    Serve,
    assert_nothing_lost_or_doubled,
    converged,
    directory_events,
    send_documents,
    wait_until,
)
from tests.servers import NatsServer

EVENTS, RATE = 1200, 300.0


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

            async def caught_up() -> bool:
                return await converged(hub, own_postgres.url, docs, len(entries.acked))

            await wait_until(caught_up, "serve to catch up after the restart", timeout=90)
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
