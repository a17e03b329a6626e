"""`govhub serve` shuts down in the documented order: stop intake, let in-flight work finish
within the grace period, then cancel. An event a service holds when serve is told to stop is
finished and acknowledged once, not cancelled half-way and delivered again."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import pytest
from aiohttp import web

from hub import serve as serve_module
from hub.intake import Intake
from hub.runtime import Hub
from hub.serve import serve
from hub.topology import HUB_STREAM

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
