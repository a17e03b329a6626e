"""Reference adapters end to end on a real hub: PostgreSQL outbox → signed events → register."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.civil import REGISTER_DDL, SAMPLE
from hub.bus import H_ADAPTER, H_RECORD_KEY
from hub.errors import ConfigError
from hub.integration.adapter import parse_adapter_file
from hub.integration.host import build, check_adapter
from hub.integration.pipeline import Pipeline
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.connector_contract import eventually

DSN_ENV = "GOVHUB_TEST_CIVIL_DSN"

CIVIL = """
[[adapters]]
name = "akto-civil"
adapter = "civil_assistance"
participant = "akto.civil"

[adapters.connector]
type = "postgres"
dsn = { env = "GOVHUB_TEST_CIVIL_DSN" }
schema = "akto_civil"
table = "outbox"
poll_interval = 0.5

[adapters.pipeline]
backoff_initial = 0.05
backoff_max = 0.5

[[adapters]]
name = "pref-civil-register"
adapter = "civil_assistance"
participant = "pref.civil"
direction = "from_hub"

[adapters.connector]
type = "postgres"
dsn = { env = "GOVHUB_TEST_CIVIL_DSN" }
schema = "pref_civil"
table = "household_assistance"
"""


def case(n: int, **changes: Any) -> dict[str, Any]:
    payload = dict(SAMPLE["payload"])
    payload.update(case_no=f"AKT-2026-{n:04d}", hh_code=f"AKT-MJ-{n:05d}", **changes)
    return payload


async def write_cases(dsn: str, payloads: list[tuple[str, dict[str, Any]]]) -> None:
    """What the case system does: its own change and the outbox row, in one transaction."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO akto_civil.outbox (id, aggregatetype, aggregateid, type, payload)"
                " VALUES ($1, 'case', $2, $3, $4::jsonb)",
                [
                    (uuid.uuid4(), p.get("case_no", "?"), kind, json.dumps(p))
                    for kind, p in payloads
                ],
            )
    finally:
        await conn.close()


@pytest.fixture
async def civil_db(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(DSN_ENV, pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE SCHEMA akto_civil; CREATE SCHEMA pref_civil")
        await conn.execute(f"SET search_path = pref_civil; {REGISTER_DDL}")
    finally:
        await conn.close()
    return pg_dsn


async def read_stream(hub: Hub, stream: str, subjects: list[str]) -> list[Any]:
    consumer = hub.consumer(stream, None, subjects, quarantine=False)
    found = []
    try:
        while batch := await consumer.fetch(512, timeout=0.5):
            for delivery in batch:
                found.append(delivery)
                await delivery.ack()
    finally:
        await consumer.stop()
    return found


async def start(pipeline: Pipeline) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    await eventually(lambda: pipeline.stats.state == "running", f"{pipeline.name} to run")
    return stop, task


async def test_outbox_rows_become_verified_events_and_land_in_the_prefecture_register(
    hub: Hub, civil_db: str, tmp_path: Path
) -> None:
    config = parse_adapter_file(CIVIL, tmp_path / "civil.toml")
    outbound, register = (build(hub.parts, item) for item in config.adapters)
    running = [await start(outbound), await start(register)]
    try:
        good = [("HouseholdAssistance", case(n)) for n in range(1, 21)]
        other = [("CaseNoteAdded", {"case_no": "AKT-2026-0001", "text": "家访"})]
        bad = [("HouseholdAssistance", case(99, program="五保"))]
        await write_cases(civil_db, good + other + bad)
        await eventually(lambda: outbound.stats.delivered == 20, "20 events published")
        await eventually(lambda: outbound.stats.dead_lettered == 1, "one dead letter")
        await eventually(lambda: register.stats.delivered == 20, "20 rows in the register")
    finally:
        for stop, task in running:
            stop.set()
            await asyncio.wait_for(task, 60)
    assert outbound.stats.filtered == 1

    events = await read_stream(hub, HUB_STREAM, ["evt.akto.civil.household_assistance"])
    assert len(events) == 20 and all(d.event is not None for d in events)
    conn = await asyncpg.connect(civil_db)
    try:
        marked = await conn.fetch(
            "SELECT payload->>'case_no' AS case_no, govhub_event_id, govhub_error"
            " FROM akto_civil.outbox WHERE type = 'HouseholdAssistance'"
        )
        register_rows = await conn.fetch("SELECT * FROM pref_civil.household_assistance")
    finally:
        await conn.close()
    ids = {d.envelope.event_id for d in events}
    assert {r["govhub_event_id"] for r in marked if r["govhub_error"] is None} == ids
    assert {r["event_id"] for r in register_rows} == ids
    row = next(r for r in register_rows if r["case_id"] == "AKT-2026-0001")
    assert row["program"] == "DIBAO" and row["monthly_amount_fen"] == 124500
    assert row["source"] == "akto.civil"

    (refused,) = [r for r in marked if r["govhub_error"]]
    assert refused["case_no"] == "AKT-2026-0099" and "五保" in refused["govhub_error"]
    (letter,) = await read_stream(hub, QUARANTINE_STREAM, ["quarantine.unmappable"])
    headers = letter.envelope.headers
    assert headers[H_ADAPTER] == "akto-civil"
    assert headers[H_RECORD_KEY].startswith("akto_civil.outbox/")
    assert json.loads(letter.envelope.body)["payload"]["program"] == "五保"


async def test_check_shows_how_the_oldest_row_maps_without_publishing(
    hub: Hub, civil_db: str, tmp_path: Path
) -> None:
    config = parse_adapter_file(CIVIL, tmp_path / "civil.toml")
    outbound, register = config.adapters
    await build(
        hub.parts, outbound
    ).source.start()  # creates the outbox table, as a first run would
    await write_cases(civil_db, [("HouseholdAssistance", case(7))])
    report = await check_adapter(hub.parts, outbound)
    assert report.ok, report.to_json()
    sample = report.sample
    assert sample is not None and sample["mapped"]["case_id"] == "AKT-2026-0007"
    assert sample["mapped"]["monthly_amount_fen"] == 124500
    assert sample["event_id"]
    assert (await check_adapter(hub.parts, register)).ok
    assert await read_stream(hub, HUB_STREAM, ["evt.akto.civil.>"]) == []


def test_a_misspelt_key_is_named_with_its_path(tmp_path: Path) -> None:
    text = CIVIL.replace('table = "household_assistance"', 'tabel = "household_assistance"')
    with pytest.raises(ConfigError) as raised:
        parse_adapter_file(text, tmp_path / "civil.toml")
    assert str(raised.value) == (
        f"{tmp_path / 'civil.toml'}: "
        'adapters[1].connector.tabel: unknown key "tabel" (did you mean "table"?)'
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('type = "postgres"', 'type = "oracle"', 1),
            "adapters[0].connector.type: unknown "
            "connector 'oracle'; known connectors: folder, http, postgres",
        ),
        (
            ('adapter = "civil_assistance"', 'adapter = "civil"', 1),
            "adapters[0].adapter: unknown adapter 'civil'",
        ),
        (
            ('dsn = { env = "GOVHUB_TEST_CIVIL_DSN" }', 'dsn = "postgresql://u:pw@db/civil"', 1),
            "adapters[0].connector.dsn: secrets are given by reference",
        ),
        (('participant = "akto.civil"', 'participant = "akto"', 1), "adapters[0].participant"),
        (
            ("poll_interval = 0.5", 'poll_interval = "fast"', 1),
            "adapters[0].connector.poll_interval: expected a number",
        ),
        (
            ('direction = "from_hub"', 'direction = "sideways"', 1),
            "adapters[1].direction: 'sideways' is not one of",
        ),
    ],
)
def test_config_mistakes_are_refused_before_anything_connects(
    tmp_path: Path, change: tuple[str, str, int], message: str
) -> None:
    old, new, count = change
    with pytest.raises(ConfigError, match=None) as raised:
        parse_adapter_file(CIVIL.replace(old, new, count), tmp_path / "civil.toml")
    assert str(raised.value).startswith(f"{tmp_path / 'civil.toml'}: {message}")


async def test_check_of_a_receiving_adapter_shows_the_row_an_event_becomes(
    hub: Hub, civil_db: str, tmp_path: Path
) -> None:
    _outbound, register = parse_adapter_file(CIVIL, tmp_path / "civil.toml").adapters
    report = await check_adapter(hub.parts, register)
    assert report.ok, report.to_json()
    assert report.sample is not None
    assert report.sample["mapped"]["program"] == "DIBAO"
    assert report.sample["mapped"]["monthly_amount_fen"] == 124500


@pytest.mark.parametrize(
    ("adapter", "change", "reason"),
    [
        ("civil", {"approved_at": "yesterday"},
         "approved_at 'yesterday' is not a time; write it as 2026-12-20T10:30:00+08:00"),
        ("civil", {"start": "next year"},
         "start 'next year' is not a date; write it as 2027-01-01"),
        ("civil", {"persons": "three"}, "persons 'three' is not a whole number"),
        ("stats", {"published_at": "2026-12-05T10:00:00"},
         "published_at '2026-12-05T10:00:00' needs a time zone, for example +08:00"),
        ("stats", {"revision": "second"}, "revision 'second' is not a whole number"),
    ],
    ids=["a time", "a date", "an integer", "a time zone", "a revision"],
)  # fmt: skip
async def test_a_native_value_that_does_not_parse_is_dead_lettered_naming_its_field(
    adapter: str, change: dict[str, Any], reason: str
) -> None:
    from adapters import civil, stats
    from hub.integration.connector import Record
    from hub.testing import run_mapping

    if adapter == "civil":
        value: dict[str, Any] = {**SAMPLE, "payload": {**SAMPLE["payload"], **change}}
        record = Record(key="row-1", value=value, kind=civil.OUTBOX_TYPE)
        mapping, participant = civil.assistance_to_hub, "akto.civil"
    else:
        record = Record(key="post-1", value={**stats.SAMPLE, **change})
        mapping, participant = stats.figures_to_hub, "artux.stats"
    result = await run_mapping(mapping, [record], participant=participant)
    assert result.sent == []
    assert [detail for _, _, detail in result.dead] == [reason]


async def test_an_outbox_row_too_large_for_an_event_is_dead_lettered_oversized_not_published(
    hub: Hub, civil_db: str, tmp_path: Path
) -> None:
    (outbound, _register) = parse_adapter_file(CIVIL, tmp_path / "civil.toml").adapters
    pipeline = build(hub.parts, outbound)
    running = await start(pipeline)
    try:
        rows = [("HouseholdAssistance", case(n)) for n in (1, 2)]
        rows.append(("HouseholdAssistance", case(3, remark="入户核查记录。" * 3_000)))
        await write_cases(civil_db, rows)
        await eventually(lambda: pipeline.stats.delivered == 2, "two events published")
        await eventually(lambda: pipeline.stats.dead_lettered == 1, "one dead letter")
    finally:
        stop, task = running
        stop.set()
        await asyncio.wait_for(task, 60)
    events = await read_stream(hub, HUB_STREAM, ["evt.akto.civil.>"])
    assert len(events) == 2 and all(d.event is not None for d in events)
    conn = await asyncpg.connect(civil_db)
    try:
        error = await conn.fetchval(
            "SELECT govhub_error FROM akto_civil.outbox WHERE payload->>'case_no' = 'AKT-2026-0003'"
        )
    finally:
        await conn.close()
    assert "events are limited to 40,960 bytes (40 KiB)" in error
    (letter,) = await read_stream(hub, QUARANTINE_STREAM, ["quarantine.oversized"])
    assert letter.envelope.headers[H_RECORD_KEY].startswith("akto_civil.outbox/")
    assert json.loads(letter.envelope.body)["payload"]["case_no"] == "AKT-2026-0003"
