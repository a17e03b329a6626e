"""The postgres connector against a real PostgreSQL: the contract, plus what is outbox-specific."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from connectors.postgres import CONNECTOR, OutboxOptions, TableOptions
from hub.errors import ConfigError
from hub.integration.connector import ConnectorContext, Outcome, Record, Sink, Source, Verdict
from hub.tomlconfig import Secret
from tests.connector_contract import SinkContract, SourceContract, take

DSN_ENV = "GOVHUB_TEST_DEPT_DSN"
CONTEXT = ConnectorContext(adapter="test", participant="akto.civil")


async def insert_outbox(dsn: str, count: int, *, table: str = "outbox") -> list[str]:
    """Write outbox rows the way a department application does; returns their record keys."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        await conn.executemany(
            f"INSERT INTO {table} (id, aggregatetype, aggregateid, type, payload)"
            " VALUES ($1, 'household', $2, 'AssistanceGranted', $3::jsonb)",
            [(i, f"H{n:04d}", json.dumps({"n": n})) for n, i in enumerate(ids)],
        )
    finally:
        await conn.close()
    return [f"public.{table}/{i}" for i in ids]


class OutboxHarness:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def make(self) -> Source:
        options = OutboxOptions(dsn=Secret(env=DSN_ENV), poll_interval=0.5)
        return CONNECTOR.source(options, CONTEXT)

    async def produce(self, count: int) -> list[str]:
        return await insert_outbox(self.dsn, count)

    async def settled(self) -> set[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT id::text FROM outbox WHERE govhub_sent_at IS NOT NULL")
        finally:
            await conn.close()
        return {f"public.outbox/{r['id']}" for r in rows}


class TableHarness:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def make(self) -> Sink:
        options = TableOptions(dsn=Secret(env=DSN_ENV), table="landing", create=True)
        return CONNECTOR.sink(options, CONTEXT)

    def records(self, count: int, offset: int = 0) -> list[Record]:
        moment = datetime(2026, 12, 1, tzinfo=UTC)
        return [
            Record(
                key=f"k{i}",
                id=f"0190a1b2-0000-7000-8000-{i:012d}",
                value={
                    "source": "akto.civil",
                    "type": "gov.common.v1.Notice",
                    "subject": "evt.akto.civil.notice",
                    "time": moment,
                    "data": {"title": f"第{i}号", "body": "b"},
                },
            )
            for i in range(offset, offset + count)
        ]

    async def stored(self) -> list[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM landing")]
        finally:
            await conn.close()


@pytest.fixture
def dept_dsn(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(DSN_ENV, pg_dsn)
    return pg_dsn


@pytest.fixture
def source_harness(dept_dsn: str) -> OutboxHarness:
    return OutboxHarness(dept_dsn)


@pytest.fixture
def sink_harness(dept_dsn: str) -> TableHarness:
    return TableHarness(dept_dsn)


class TestOutboxSourceContract(SourceContract):
    """The outbox source passes the connector contract."""


class TestTableSinkContract(SinkContract):
    """The table sink passes the connector contract."""


async def test_a_fresh_database_gets_a_debezium_layout_outbox_with_bookkeeping(
    dept_dsn: str,
) -> None:
    source = OutboxHarness(dept_dsn).make()
    await source.start()
    await source.stop()
    conn = await asyncpg.connect(dept_dsn)
    try:
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox'"
            )
        }
    finally:
        await conn.close()
    assert {"id", "aggregatetype", "aggregateid", "type", "payload"} <= columns
    assert {"govhub_pos", "govhub_created_at", "govhub_sent_at", "govhub_event_id"} <= columns


async def test_an_outbox_without_the_bookkeeping_columns_is_refused_when_prepare_is_off(
    dept_dsn: str,
) -> None:
    conn = await asyncpg.connect(dept_dsn)
    try:
        await conn.execute(
            "CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text,"
            " type text, payload jsonb)"
        )
    finally:
        await conn.close()
    options = OutboxOptions(dsn=Secret(env=DSN_ENV), prepare=False)
    source = CONNECTOR.source(options, CONTEXT)
    with pytest.raises(ConfigError, match="govhub_pos"):
        await source.start()
    with pytest.raises(ConfigError, match="ALTER TABLE"):
        await source.check()


async def test_a_row_committed_late_behind_the_cursor_is_still_delivered(dept_dsn: str) -> None:
    harness = OutboxHarness(dept_dsn)
    source = harness.make()
    await source.start()
    stream = source.deliveries()
    late = await asyncpg.connect(dept_dsn)
    try:
        # A long transaction takes a position first but commits after a later row.
        tx = late.transaction()
        await tx.start()
        await late.execute(
            "INSERT INTO outbox (aggregatetype, aggregateid, type, payload)"
            " VALUES ('household', 'LATE', 'AssistanceGranted', '{}')"
        )
        (early,) = await harness.produce(1)
        (first,) = await take(stream, 1)
        assert first.record.key == early
        await first.ack(Outcome.done())
        await tx.commit()
        (second,) = await take(stream, 1)
        assert second.record.value["aggregateid"] == "LATE"
        await second.ack(Outcome.done())
    finally:
        await late.close()
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()


async def test_a_second_reader_of_the_same_outbox_waits_as_standby(dept_dsn: str) -> None:
    harness = OutboxHarness(dept_dsn)
    leader, standby = harness.make(), harness.make()
    await leader.start()
    await standby.start()
    leading, waiting = leader.deliveries(), standby.deliveries()
    try:
        keys = await harness.produce(2)
        got = await take(leading, 2)
        assert sorted(d.record.key for d in got) == sorted(keys)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(waiting), 1.5)
        await asyncio.gather(*(d.ack(Outcome.done()) for d in got))
    finally:
        await leading.aclose()  # type: ignore[attr-defined]
        await leader.stop()
        await waiting.aclose()  # type: ignore[attr-defined]
        await standby.stop()


async def test_a_rejected_row_is_marked_with_its_reason_for_the_department(dept_dsn: str) -> None:
    harness = OutboxHarness(dept_dsn)
    source = harness.make()
    await source.start()
    stream = source.deliveries()
    try:
        await harness.produce(1)
        (delivery,) = await take(stream, 1)
        await delivery.ack(Outcome.reject("amount_fen: not a number"))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()
    conn = await asyncpg.connect(dept_dsn)
    try:
        row = await conn.fetchrow("SELECT govhub_sent_at, govhub_error FROM outbox")
    finally:
        await conn.close()
    assert row["govhub_sent_at"] is not None
    assert row["govhub_error"] == "amount_fen: not a number"


async def test_check_peeks_at_the_oldest_unsent_row_without_consuming_it(dept_dsn: str) -> None:
    harness = OutboxHarness(dept_dsn)
    source = harness.make()
    await source.start()
    await source.stop()
    keys = await harness.produce(2)
    found = await harness.make().check()
    assert "2 unsent" in found.detail
    assert found.sample is not None and found.sample.key in keys
    assert await harness.settled() == set()


async def test_the_table_sink_refuses_only_the_row_the_database_refuses(dept_dsn: str) -> None:
    conn = await asyncpg.connect(dept_dsn)
    try:
        await conn.execute(
            "CREATE TABLE cases (event_id text PRIMARY KEY, amount_fen bigint NOT NULL"
            " CHECK (amount_fen >= 0))"
        )
    finally:
        await conn.close()
    sink = CONNECTOR.sink(TableOptions(dsn=Secret(env=DSN_ENV), table="cases"), CONTEXT)
    await sink.start()
    try:
        outcomes = await sink.send(
            [
                Record(key="a", id="a", value={"amount_fen": 100}),
                Record(key="b", id="b", value={"amount_fen": -5}),
                Record(key="c", id="c", value={"amount_fen": 7, "extra": 1}),
                Record(key="d", id="d", value={"amount_fen": 9}),
            ]
        )
    finally:
        await sink.stop()
    assert [o.verdict for o in outcomes] == [
        Verdict.DONE,
        Verdict.REJECT,
        Verdict.REJECT,
        Verdict.DONE,
    ]
    assert "check constraint" in outcomes[1].detail
    assert "extra" in outcomes[2].detail


async def test_the_table_sink_needs_a_unique_key_column(dept_dsn: str) -> None:
    conn = await asyncpg.connect(dept_dsn)
    try:
        await conn.execute("CREATE TABLE loose (event_id text, n int)")
    finally:
        await conn.close()
    sink = CONNECTOR.sink(TableOptions(dsn=Secret(env=DSN_ENV), table="loose"), CONTEXT)
    with pytest.raises(ConfigError, match="unique index"):
        await sink.start()


async def test_every_acked_row_is_marked_with_the_event_it_became(dept_dsn: str) -> None:
    harness = OutboxHarness(dept_dsn)
    source = harness.make()
    await source.start()
    stream = source.deliveries()
    try:
        await harness.produce(50)
        got = await take(stream, 50)
        event_ids = {d.record.key: f"event-{i}" for i, d in enumerate(got)}
        await asyncio.gather(*(d.ack(Outcome.done(event_id=event_ids[d.record.key])) for d in got))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()
    conn = await asyncpg.connect(dept_dsn)
    try:
        rows = await conn.fetch("SELECT id::text, govhub_event_id FROM outbox")
    finally:
        await conn.close()
    assert {f"public.outbox/{r['id']}": r["govhub_event_id"] for r in rows} == event_ids


async def test_a_new_row_is_delivered_on_notify_without_waiting_for_the_poll(
    dept_dsn: str,
) -> None:
    options = OutboxOptions(dsn=Secret(env=DSN_ENV), poll_interval=600.0)
    source = CONNECTOR.source(options, CONTEXT)
    await source.start()
    stream = source.deliveries()
    try:
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.5)  # the source has read the empty table and waits
        (key,) = await insert_outbox(dept_dsn, 1)
        delivery = await asyncio.wait_for(first, 60)  # far below the 600 s poll interval
        assert delivery.record.key == key
        await delivery.ack(Outcome.done())
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()
