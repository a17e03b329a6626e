"""Faults with real servers: the department database down, NATS down, an adapter killed mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from adapters.civil import REGISTER_DDL, SAMPLE
from hub.home import Settings
from hub.integration.adapter import parse_adapter_file
from hub.integration.host import build
from hub.runtime import Hub
from hub.topology import HUB_STREAM
from tests.connector_contract import eventually
from tests.servers import NatsServer
from tests.test_adapters import read_stream, start

DSN_ENV = "GOVHUB_TEST_DEPT_DSN"

CONFIG = """
[[adapters]]
name = "akto-civil"
adapter = "civil_assistance"
participant = "akto.civil"
[adapters.connector]
type = "postgres"
dsn = { env = "GOVHUB_TEST_DEPT_DSN" }
poll_interval = 0.5
[adapters.pipeline]
backoff_initial = 0.1
backoff_max = 1.0
"""


@pytest.fixture
async def dept_db(pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The civil-affairs bureau's own database, separate from the hub's, so it can go down."""
    name = f"govhub_dept_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv(DSN_ENV, dsn)
    yield dsn
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def set_database_up(admin_dsn: str, dsn: str, up: bool) -> None:
    """Take a database down the way an outage looks to clients: sessions cut, logins refused."""
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(up).lower()}')
        if not up:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await admin.close()


async def insert_cases(dsn: str, first: int, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = []
        for n in range(first, first + count):
            payload = dict(SAMPLE["payload"], case_no=f"AKT-{n:06d}", hh_code=f"H{n:06d}")
            rows.append((uuid.uuid4(), payload["case_no"], json.dumps(payload)))
        await conn.executemany(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)"
            " VALUES ($1, 'case', $2, 'HouseholdAssistance', $3::jsonb)",
            rows,
        )
    finally:
        await conn.close()


async def count_sent(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE govhub_sent_at IS NOT NULL) AS sent, count(*) AS total"
            " FROM outbox"
        )
    finally:
        await conn.close()
    return int(row["sent"]), int(row["total"])


async def assert_each_case_once(hub: Hub, dsn: str, expected: int) -> None:
    events = await read_stream(hub, HUB_STREAM, ["evt.akto.civil.household_assistance"])
    ids = Counter(d.envelope.event_id for d in events)
    assert len(events) == expected and max(ids.values()) == 1
    conn = await asyncpg.connect(dsn)
    try:
        marked = {
            r["govhub_event_id"] for r in await conn.fetch("SELECT govhub_event_id FROM outbox")
        }
    finally:
        await conn.close()
    assert marked == set(ids)


async def test_the_department_database_going_down_loses_nothing_and_duplicates_nothing(
    hub: Hub, dept_db: str, pg_admin_dsn: str, tmp_path: Path
) -> None:
    (item,) = parse_adapter_file(CONFIG, tmp_path / "a.toml").adapters
    pipeline = build(hub.parts, item)
    stop, task = await start(pipeline)
    try:
        await insert_cases(dept_db, 0, 30)
        await eventually(lambda: pipeline.stats.delivered == 30, "the first 30 cases")
        await set_database_up(pg_admin_dsn, dept_db, False)
        await eventually(lambda: pipeline.stats.state == "degraded", "the outage to be noticed")
        assert "unavailable" in pipeline.stats.last_error
        await set_database_up(pg_admin_dsn, dept_db, True)
        await eventually(lambda: pipeline.stats.state == "running", "the adapter to reconnect")
        await insert_cases(dept_db, 30, 30)
        await eventually(_all_sent(dept_db, 60), "all 60 cases sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    await assert_each_case_once(hub, dept_db, 60)


def _all_sent(dsn: str, total: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await count_sent(dsn) == (total, total)

    return check


REGISTER = """
[[adapters]]
name = "pref-civil-register"
adapter = "civil_assistance"
participant = "pref.civil"
direction = "from_hub"
[adapters.connector]
type = "postgres"
dsn = { env = "GOVHUB_TEST_DEPT_DSN" }
table = "household_assistance"
[adapters.pipeline]
backoff_initial = 0.1
backoff_max = 1.0
"""


async def test_events_for_a_department_database_that_is_down_wait_and_arrive_once(
    hub: Hub,
    dept_db: str,
    pg_dsn: str,
    pg_admin_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_COUNTY_DSN", pg_dsn)  # the county's own database stays up
    conn = await asyncpg.connect(dept_db)
    try:
        await conn.execute(REGISTER_DDL)
    finally:
        await conn.close()
    county = CONFIG.replace("GOVHUB_TEST_DEPT_DSN", "GOVHUB_TEST_COUNTY_DSN")
    (outbound,) = parse_adapter_file(county, tmp_path / "a.toml").adapters
    (register,) = parse_adapter_file(REGISTER, tmp_path / "r.toml").adapters
    publisher, receiver = build(hub.parts, outbound), build(hub.parts, register)
    running = [await start(publisher), await start(receiver)]
    try:
        await insert_cases(pg_dsn, 0, 10)
        await eventually(lambda: receiver.stats.delivered == 10, "the first 10 in the register")
        await set_database_up(pg_admin_dsn, dept_db, False)
        await insert_cases(pg_dsn, 10, 10)  # the county publishes on meanwhile
        await eventually(lambda: publisher.stats.delivered == 20, "the county's 20 published")
        await eventually(lambda: receiver.stats.state == "degraded", "the outage noticed")
        await set_database_up(pg_admin_dsn, dept_db, True)
        await eventually(lambda: receiver.stats.delivered >= 20, "all 20 in the register")
    finally:
        for stop, task in running:
            stop.set()
            await asyncio.wait_for(task, 60)
    conn = await asyncpg.connect(dept_db)
    try:
        rows = await conn.fetch("SELECT event_id FROM household_assistance")
    finally:
        await conn.close()
    assert len(rows) == 20 == len({r["event_id"] for r in rows})
    assert receiver.stats.dead_lettered == 0


async def test_a_database_that_is_down_at_start_is_waited_for(
    hub: Hub, dept_db: str, pg_admin_dsn: str, tmp_path: Path
) -> None:
    (item,) = parse_adapter_file(CONFIG, tmp_path / "a.toml").adapters
    first = build(hub.parts, item)
    await first.source.start()  # the table exists, as after an earlier run
    await first.source.stop()
    await insert_cases(dept_db, 0, 10)
    await set_database_up(pg_admin_dsn, dept_db, False)
    pipeline = build(hub.parts, item)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    try:
        await eventually(lambda: pipeline.stats.state == "degraded", "the adapter to wait")
        await set_database_up(pg_admin_dsn, dept_db, True)
        await eventually(_all_sent(dept_db, 10), "the 10 waiting cases sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    await assert_each_case_once(hub, dept_db, 10)


async def test_while_nats_is_down_outbox_rows_stay_unsent_until_acknowledged(
    hub: Hub, dept_db: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    (item,) = parse_adapter_file(CONFIG, tmp_path / "a.toml").adapters
    pipeline = build(hub.parts, item)
    stop, task = await start(pipeline)
    try:
        nats_server.kill()
        await insert_cases(dept_db, 0, 20)
        await eventually(lambda: pipeline.stats.received >= 20, "the rows read by the adapter")
        assert await count_sent(dept_db) == (0, 20)
        await asyncio.sleep(1.0)  # more time for a wrong ack to show; nothing may be marked
        assert await count_sent(dept_db) == (0, 20)
        nats_server.start()
        await eventually(_all_sent(dept_db, 20), "every row acknowledged and marked", timeout=120)
    finally:
        stop.set()
        await asyncio.wait_for(task, 90)
    await assert_each_case_once(hub, dept_db, 20)


def _adapter_process(
    settings: Settings, config: Path, dsn: str, log: Path
) -> subprocess.Popen[bytes]:
    """`govhub adapter run` in its own process; stderr to `log` (a pipe nobody reads fills up)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    env.update(
        {
            "GOVHUB_NATS_URL": settings.nats_url or "",
            "GOVHUB_PG_DSN": settings.pg_dsn or "",
            DSN_ENV: dsn,
        }
    )
    argv = [
        sys.executable,
        "-m",
        "hub",
        "--home",
        str(settings.home.root),
        "adapter",
        "run",
        str(config),
        "--json",
    ]
    with log.open("ab") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )


async def test_an_adapter_killed_mid_batch_resumes_without_loss_or_duplicate(
    hub: Hub, hub_settings: Settings, dept_db: str, tmp_path: Path
) -> None:
    config = tmp_path / "civil.toml"
    config.write_text(CONFIG, encoding="utf-8")
    (item,) = parse_adapter_file(CONFIG, config).adapters
    prepare = build(hub.parts, item)
    await prepare.source.start()
    await prepare.source.stop()
    total = 4000
    await insert_cases(dept_db, 0, total)

    log = tmp_path / "adapter.log"
    first = _adapter_process(hub_settings, config, dept_db, log)
    try:
        await eventually(lambda: _some_sent(dept_db), "the first rows sent", timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    sent_at_kill, _ = await count_sent(dept_db)
    assert 0 < sent_at_kill < total, "the kill must land mid-run"

    second = _adapter_process(hub_settings, config, dept_db, log)
    try:
        await eventually(_all_sent(dept_db, total), "the rest after the restart", timeout=180)
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, log.read_text(errors="replace")
    assert json.loads(out)["adapters"]["akto-civil"]["state"] == "stopped"
    await assert_each_case_once(hub, dept_db, total)


async def _some_sent(dsn: str) -> bool:
    sent, _ = await count_sent(dsn)
    return sent > 0
