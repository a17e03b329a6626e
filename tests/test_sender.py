"""The batching hub client and the batched pull: batches flush on size or after a moment, and a
fetch hands over what is there instead of waiting for a full batch."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.errors import ServerUnavailable
from hub.runtime import Hub
from hub.sender import BatchSender, Item
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"


def _item(hub: Hub, subject: str, n: int) -> Item:
    body = hub.schemas.by_name(NOTICE).encode({"title": f"t{n}", "body": "b"})
    return Item(subject, NOTICE, body)


async def test_a_lone_event_is_stored_after_the_linger_not_when_a_batch_fills(hub: Hub) -> None:
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"), linger=0.01)
    # A generous bound: the event must not wait for 999 more that never come.
    ack = await asyncio.wait_for(sender.send(_item(hub, "evt.akto.civil.lone", 0)), 30)
    assert ack.stream == HUB_STREAM and ack.seq > 0


async def test_a_full_batch_is_flushed_at_once_as_one_atomic_batch(hub: Hub) -> None:
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"), max_batch=10, linger=60)
    futures = [sender.submit(_item(hub, "evt.akto.civil.full", n)) for n in range(10)]
    acks = await asyncio.wait_for(asyncio.gather(*futures), 30)
    seqs = [a.seq for a in acks]
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    consumer = hub.consumer(HUB_STREAM, None, ["evt.akto.civil.full"])
    deliveries = await consumer.fetch(10, timeout=10)
    assert len({d.envelope.headers["Nats-Batch-Id"] for d in deliveries}) == 1
    assert all(d.event is not None for d in deliveries)
    await consumer.stop()


async def test_a_small_flush_is_published_event_by_event_under_one_batch_signature(
    hub: Hub,
) -> None:
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"), linger=0.01)
    futures = [sender.submit(_item(hub, "evt.akto.civil.small", n)) for n in range(5)]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    consumer = hub.consumer(HUB_STREAM, None, ["evt.akto.civil.small"])
    deliveries = await consumer.fetch(5, timeout=10)
    assert len(deliveries) == 5
    assert not any("Nats-Batch-Id" in d.envelope.headers for d in deliveries)
    assert len({d.envelope.headers["govhub-batch-sig"] for d in deliveries}) == 1
    assert all(d.event is not None for d in deliveries)
    await consumer.stop()


async def test_a_fetch_returns_what_is_available_without_waiting_for_a_full_batch(
    hub: Hub,
) -> None:
    sender = BatchSender(hub.publisher, hub.keystore.current("akqi.health"))
    for n in range(3):
        sender.submit(_item(hub, "evt.akqi.health.few", n))
    await sender.flush()
    consumer = hub.consumer(HUB_STREAM, "few", ["evt.akqi.health.few"])
    deliveries = await asyncio.wait_for(consumer.fetch(1000, timeout=120), 60)
    assert len(deliveries) == 3
    for delivery in deliveries:
        await delivery.ack()
    assert await consumer.fetch(1000, timeout=0.3) == []
    await consumer.stop(delete=True)


async def test_a_fetch_that_waited_returns_as_soon_as_the_first_events_arrive(hub: Hub) -> None:
    consumer = hub.consumer(HUB_STREAM, "waiting", ["evt.akto.civil.late"], deliver_new=True)
    await consumer.start()
    waiting = asyncio.create_task(consumer.fetch(1000, timeout=120))
    await asyncio.sleep(0.2)
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"))
    await sender.send(_item(hub, "evt.akto.civil.late", 1))
    deliveries = await asyncio.wait_for(waiting, 60)
    assert [d.event is not None for d in deliveries] == [True]
    await consumer.stop(delete=True)


async def test_a_fetch_keeps_asking_while_no_consumer_leader_answers(hub: Hub) -> None:
    # After a stream leader is lost, pull requests reach no consumer leader for a moment and
    # come back as status 503. The fetch must ask again, not end the read as if it were done.
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"))
    for n in range(3):
        sender.submit(_item(hub, "evt.akto.civil.gap", n))
    await sender.flush()
    consumer = hub.consumer(HUB_STREAM, "gap", ["evt.akto.civil.gap"])
    await consumer.start()
    js = hub.nc.jetstream()
    config = (await js.consumer_info(HUB_STREAM, "gap")).config
    await js.delete_consumer(HUB_STREAM, "gap")

    async def leader_back() -> None:
        await asyncio.sleep(0.8)
        await js.add_consumer(HUB_STREAM, config)

    back = asyncio.create_task(leader_back())
    deliveries = await consumer.fetch(1000, timeout=10)
    await back
    assert [d.event is not None for d in deliveries] == [True, True, True]
    await consumer.stop(delete=True)


async def test_a_fetch_nobody_answers_until_its_deadline_raises_server_unavailable(
    hub: Hub,
) -> None:
    consumer = hub.consumer(HUB_STREAM, "gone", ["evt.akto.civil.gone"])
    await consumer.start()
    await hub.nc.jetstream().delete_consumer(HUB_STREAM, "gone")
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match="not answering"):
        await consumer.fetch(1000, timeout=1.0)
    assert time.monotonic() - started >= 0.7, "asked again until close to the deadline"
    await consumer.stop()
