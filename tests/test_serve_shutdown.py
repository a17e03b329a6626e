"""`govhub serve` shuts down in the documented order: stop intake, let in-flight work finish
within the grace period, then cancel. An event a service holds when serve is told to stop is
finished and acknowledged once, not cancelled half-way and delivered again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Protocol

import pytest
from aiohttp import web

from hub import serve as serve_module
from hub.audit import appender as appender_module
from hub.audit import service as audit_service
from hub.audit.service import AuditLog, AuditService
from hub.collaborators import Parts
from hub.directory import materializer as materializer_module
from hub.directory import service as directory_service
from hub.directory.materializer import Materializer
from hub.directory.service import DirectoryService
from hub.directory.store import load_entry
from hub.directory.workflow import Directory
from hub.intake import Intake
from hub.runtime import Hub
from hub.serve import serve
from hub.topology import HUB_STREAM
from hub.waits import poll
from tests.directory_support import entry_file, register_population_schema

NOTICE = "gov.common.v1.Notice"
DURABLE = "serve_shutdown_test"


class HoldsOneEvent:
    """A stream service that takes one event, then holds it until serve stops its intake.

    It finishes the event (acks it) only after the intake closed: had serve cancelled first,
    the ack would never happen and JetStream would deliver the event again.
    """

    name = "holds-one-event"
    subject: ClassVar[str] = ""
    instances: ClassVar[list[HoldsOneEvent]] = []

    def __init__(self, hub: Hub) -> None:
        self.consumer = hub.consumer(
            HUB_STREAM, DURABLE, [self.subject], max_deliver=-1, backoff=(), ack_wait=2.0
        )
        self.intake = Intake()
        self.taken = asyncio.Event()
        self.finished: list[str] = []
        self.cancelled = False
        HoldsOneEvent.instances.append(self)

    def stop_intake(self) -> None:
        self.intake.close()

    async def run(self) -> None:
        try:
            while self.intake.open:
                for delivery in await self.consumer.fetch_verified(1, timeout=0.5):
                    self.taken.set()
                    await self.intake.closed()
                    await asyncio.sleep(0.3)  # the work still to do when the stop arrives
                    await delivery.ack()
                    self.finished.append(delivery.envelope.event_id)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            await self.consumer.stop()

    def routes(self) -> list[web.RouteDef]:
        return []


async def test_an_event_in_flight_when_serve_stops_is_finished_and_acknowledged_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(serve_module.SERVICES, HoldsOneEvent.name, f"{__name__}:HoldsOneEvent")
    HoldsOneEvent.instances.clear()
    env = hub.seal("akto.civil", NOTICE, {"title": "in flight at shutdown", "body": "b"})
    HoldsOneEvent.subject = env.subject
    await hub.publisher.publish_many([env])
    stop = asyncio.Event()
    running = asyncio.create_task(serve(hub, only=[HoldsOneEvent.name], port=0, stop=stop))
    async with asyncio.timeout(30):
        while not HoldsOneEvent.instances:  # noqa: ASYNC110 - serve builds it in this loop
            await asyncio.sleep(0.01)
    (service,) = HoldsOneEvent.instances
    await asyncio.wait_for(service.taken.wait(), 30)

    stop.set()
    await asyncio.wait_for(running, 30)

    assert service.finished == [env.event_id]
    assert not service.cancelled
    info = await hub.nc.jetstream().consumer_info(HUB_STREAM, DURABLE)
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert info.ack_floor.stream_seq == info.delivered.stream_seq
    await asyncio.sleep(2.5)  # past the ack wait: an unacked event would be delivered again
    info = await hub.nc.jetstream().consumer_info(HUB_STREAM, DURABLE)
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)


async def test_the_stream_services_return_by_themselves_once_intake_stops(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grace period longer than the test may take: serve returns in time only if every
    # service finished on its own, without being cancelled at the end of the grace period.
    monkeypatch.setattr(serve_module, "GRACE_S", 60.0)
    monkeypatch.setenv("GOVHUB_EXCHANGE_AGENT", "akto.civil")
    stop = asyncio.Event()
    services = ["exchange", "exchange-agent", "approval"]
    running = asyncio.create_task(serve(hub, only=services, port=0, stop=stop))
    await asyncio.sleep(1.5)  # each service is inside its fetch loop by now

    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(running, 30)
    assert time.monotonic() - started < 10


class HoldsFirstBatch:
    """Builds a single-writer service whose first commit is held until serve is told to stop:
    the batch is in hand (fetched, not yet committed or acked) when the stop arrives."""

    stop: ClassVar[asyncio.Event]
    holding: ClassVar[asyncio.Event]
    batches: ClassVar[list[int]] = []

    @classmethod
    def reset(cls) -> asyncio.Event:
        cls.stop, cls.holding, cls.batches = asyncio.Event(), asyncio.Event(), []
        return cls.stop

    @classmethod
    def hold(cls, commit: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def held(conn: Any, deliveries: Sequence[Any], *rest: Any) -> Any:
            if not cls.holding.is_set():
                cls.holding.set()
                await cls.stop.wait()
                await asyncio.sleep(0.3)  # the work still to do when the stop arrives
            cls.batches.append(len(deliveries))
            return await commit(conn, deliveries, *rest)

        return held


def audit_holding_first_batch(parts: Parts) -> AuditService:
    service = audit_service.create(parts)
    service.appender.commit = HoldsFirstBatch.hold(service.appender.commit)  # type: ignore[method-assign]
    return service


def directory_holding_first_batch(parts: Parts) -> DirectoryService:
    service = directory_service.create(parts)
    materializer = service.materializer
    materializer.commit = HoldsFirstBatch.hold(materializer.commit)  # type: ignore[method-assign]
    return service


async def serve_until_holding(hub: Hub, name: str, factory: str, mp: pytest.MonkeyPatch) -> None:
    """Run serve with one writer until its first batch is in hand, then stop it; asserts serve
    returned by itself (the grace period is longer than the test may take)."""
    mp.setattr(serve_module, "GRACE_S", 60.0)
    mp.setitem(serve_module.SERVICES, name, f"{__name__}:{factory}")
    stop = HoldsFirstBatch.reset()
    running = asyncio.create_task(serve(hub, only=[name], port=0, stop=stop))
    await asyncio.wait_for(HoldsFirstBatch.holding.wait(), 30)
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(running, 30)
    assert time.monotonic() - started < 10


async def assert_nothing_pending(hub: Hub, durable: str, ack_wait: float) -> None:
    js = hub.nc.jetstream()
    info = await js.consumer_info(HUB_STREAM, durable)
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert info.ack_floor.stream_seq == info.delivered.stream_seq
    await asyncio.sleep(ack_wait + 0.5)  # past the ack wait: an unacked batch would come back
    info = await js.consumer_info(HUB_STREAM, durable)
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)


async def test_the_audit_writer_commits_and_acks_the_batch_it_holds_when_serve_stops(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appender_module, "ACK_WAIT", 1.0)
    sent = [hub.seal("artux.stats", NOTICE, {"title": f"通知 {i}", "body": "b"}) for i in range(20)]
    await hub.publisher.publish_many(sent)
    total = int((await hub.nc.jetstream().stream_info(HUB_STREAM)).state.messages)

    await serve_until_holding(hub, "audit", "audit_holding_first_batch", monkeypatch)

    # The held batch was committed once, with everything the stream held: no leaf twice.
    assert sum(HoldsFirstBatch.batches) == total
    assert await hub.pool.fetchval("SELECT size FROM audit_state") == total
    rows = await hub.pool.fetch("SELECT leaf FROM audit_leaves")
    ids = [json.loads(bytes(r["leaf"]))["headers"]["ce-id"] for r in rows]
    assert len(ids) == total == len(set(ids))
    assert {e.event_id for e in sent} <= set(ids)
    await assert_nothing_pending(hub, appender_module.DURABLE, 1.0)


async def test_the_directory_writer_commits_and_acks_the_batch_it_holds_when_serve_stops(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(materializer_module, "ACK_WAIT", 1.0)
    await register_population_schema(hub)
    directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    codes = [f"101001-{n:06d}" for n in (31, 32, 33)]
    for code in codes:
        await directory.publish("akto.stats", entry_file(code=code), settle=False)

    await serve_until_holding(hub, "directory", "directory_holding_first_batch", monkeypatch)

    assert sum(HoldsFirstBatch.batches) == len(codes)
    for code in codes:
        _, status, _ = await load_entry(hub.pool, code)
        assert status == "active"
    info = await hub.nc.jetstream().consumer_info(HUB_STREAM, materializer_module.DURABLE)
    last_seq = await hub.pool.fetchval("SELECT last_seq FROM directory_state")
    assert last_seq == info.delivered.stream_seq
    assert await hub.pool.fetchval("SELECT count(*) FROM directory_events") == len(codes)
    await assert_nothing_pending(hub, materializer_module.DURABLE, 1.0)


async def advisory_locks(hub: Hub) -> tuple[int, int]:
    """(granted, waiting) advisory locks in the test's database."""
    row = await hub.pool.fetchrow(
        "SELECT count(*) FILTER (WHERE granted) AS granted,"
        " count(*) FILTER (WHERE NOT granted) AS waiting FROM pg_locks"
        " WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert row is not None
    return int(row["granted"]), int(row["waiting"])


class Writer(Protocol):
    intake: Intake

    def stop_intake(self) -> None: ...

    async def run(self) -> None: ...


async def assert_standby_returns_at_once(hub: Hub, first: Writer, second: Writer) -> None:
    first_task = asyncio.create_task(first.run())
    assert await poll(lambda: _locks_are(hub, (1, 0)), timeout=30, every=0.05)
    second_task = asyncio.create_task(second.run())
    assert await poll(lambda: _locks_are(hub, (1, 1)), timeout=30, every=0.05)

    second.stop_intake()
    # The standby ends its lock wait at once, while the writer still holds the lock.
    await asyncio.wait_for(second_task, 2)
    assert await advisory_locks(hub) == (1, 0)
    assert not first_task.done()

    first.stop_intake()
    await asyncio.wait_for(first_task, 5)
    assert await advisory_locks(hub) == (0, 0)  # the writer released the lock on its way out


async def _locks_are(hub: Hub, expected: tuple[int, int]) -> bool:
    return await advisory_locks(hub) == expected


async def test_a_standby_audit_writer_returns_at_once_when_its_intake_stops(hub: Hub) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    await assert_standby_returns_at_once(hub, audit.appender(), audit.appender())


async def test_a_standby_directory_writer_returns_at_once_when_its_intake_stops(hub: Hub) -> None:
    def materializer() -> Materializer:
        return Materializer(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus)

    await assert_standby_returns_at_once(hub, materializer(), materializer())
