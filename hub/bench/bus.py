"""`govhub bench publish` and `govhub bench consume`: signed publishing and verified consumption,
each next to plain nats-py on the same server, stream settings and payload size in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

from hub.bench.measure import Stopwatch, latency_ms, machine
from hub.bus import Publisher, provision
from hub.envelope import format_time, parse_time, seal
from hub.runtime import Hub
from hub.topology import HUB_STREAM, StreamSpec

NOTICE = "gov.common.v1.Notice"
SENDER = "akto.civil"
RAW_STREAM = StreamSpec(
    "BENCH_RAW", ("rawbench.>",), "benchmark: raw nats-py baseline", protect=False
)


@contextlib.asynccontextmanager
async def plain_client(hub: Hub) -> AsyncIterator[NatsClient]:
    """A plain nats-py connection to the hub's server, for the raw client's side of a
    benchmark (govhub's connection parses and writes headers faster, see hub.bus.HubClient)."""
    nc = await nats.connect(hub.nats_url)
    try:
        yield nc
    finally:
        await nc.close()


def _record(size: int) -> dict[str, str]:
    return {"title": "基准测试 benchmark", "body": "x" * size}


def _record_latency(latencies: list[float], started: float, _future: object) -> None:
    latencies.append(time.perf_counter() - started)


async def raw_publish(nc: NatsClient, bodies: list[bytes]) -> dict[str, Any]:
    """Plain nats-py `publish_async` of the same bodies into a stream with the same settings."""
    js = nc.jetstream(publish_async_max_pending=4000)
    latencies: list[float] = []
    watch = Stopwatch()
    for i, body in enumerate(bodies):
        started = time.perf_counter()
        future = await js.publish_async(
            f"rawbench.{i % 16}", body, headers={"Nats-Msg-Id": f"r{time.time_ns()}-{i}"}
        )
        future.add_done_callback(functools.partial(_record_latency, latencies, started))
    await asyncio.wait_for(js.publish_async_completed(), 120)
    seconds = watch.stop()
    return {
        "events_per_s": round(len(bodies) / seconds),
        **latency_ms(latencies),
        "seconds": round(seconds, 3),
    }


async def raw_batch(nc: NatsClient, bodies: list[bytes]) -> dict[str, Any]:
    """Plain nats-py atomic batch publishing (ADR-50) of the same bodies, 1,000 per batch."""
    latencies: list[float] = []
    watch = Stopwatch()
    for start in range(0, len(bodies), 1000):
        chunk = bodies[start : start + 1000]
        began = time.perf_counter()
        batch = f"rb{time.time_ns()}"
        for number, body in enumerate(chunk, start=1):
            headers = {
                "Nats-Msg-Id": f"{batch}-{number}",
                "Nats-Batch-Id": batch,
                "Nats-Batch-Sequence": str(number),
            }
            if number == len(chunk):
                headers["Nats-Batch-Commit"] = "1"
            if number in (1, len(chunk)):
                await nc.request(f"rawbench.{number % 16}", body, headers=headers, timeout=30)
            else:
                await nc.publish(f"rawbench.{number % 16}", body, headers=headers)
        latencies += [time.perf_counter() - began] * len(chunk)
    seconds = watch.stop()
    return {
        "events_per_s": round(len(bodies) / seconds),
        **latency_ms(latencies),
        "seconds": round(seconds, 3),
    }


async def signed_publish(hub: Hub, events: int, size: int) -> dict[str, Any]:
    """govhub: encode and sign every event, then `Publisher.publish_many` (atomic batches of
    up to 1,000, acknowledged); latency is seal start → acknowledgement of its batch."""
    schema = hub.schemas.by_name(NOTICE)
    key = hub.keystore.current(SENDER)
    subject = f"evt.{SENDER}.bench"
    record = _record(size)
    publisher = Publisher(hub.nc)
    latencies: list[float] = []
    watch = Stopwatch()
    for start in range(0, events, 1000):
        began = time.perf_counter()
        count = min(1000, events - start)
        envs = [seal(key, subject, NOTICE, schema.encode(record)) for _ in range(count)]
        await publisher.publish_many(envs)
        latencies += [time.perf_counter() - began] * count
    seconds = watch.stop()
    await publisher.close()
    return {
        "events_per_s": round(events / seconds),
        **latency_ms(latencies),
        "seconds": round(seconds, 3),
    }


async def bench_publish(hub: Hub, events: int, size: int) -> dict[str, Any]:
    """Raw publish_async, raw atomic batches, then govhub signed publishing, same bodies."""
    await provision(hub.nc, [RAW_STREAM])
    schema = hub.schemas.by_name(NOTICE)
    body = schema.encode(_record(size))
    warm = min(500, events)
    async with plain_client(hub) as plain:
        await raw_publish(plain, [body] * warm)
        await signed_publish(hub, warm, size)
        raw = await raw_publish(plain, [body] * events)
        batch = await raw_batch(plain, [body] * events)
    signed = await signed_publish(hub, events, size)
    return {
        "benchmark": "publish",
        "events": events,
        "body_bytes": len(body),
        "govhub": signed,
        "raw_publish_async": raw,
        "raw_atomic_batch": batch,
        "ratio": round(signed["events_per_s"] / raw["events_per_s"], 2),
        "ratio_to_best_raw": round(
            signed["events_per_s"] / max(raw["events_per_s"], batch["events_per_s"]), 2
        ),
        "durability": "file storage, sync_interval: always",
        "machine": machine(),
    }


async def _fill(hub: Hub, events: int, size: int) -> None:
    schema = hub.schemas.by_name(NOTICE)
    key = hub.keystore.current(SENDER)
    publisher = Publisher(hub.nc, max_inflight=4000)
    body = schema.encode(_record(size))
    await publisher.publish_many(
        [seal(key, f"evt.{SENDER}.bench", NOTICE, body) for _ in range(events)]
    )
    await publisher.close()


async def verified_drain(hub: Hub, events: int, durable: str) -> dict[str, Any]:
    """govhub: fetch, verify every event (signature, key window, subject, schema, decode), ack."""
    consumer = hub.consumer(HUB_STREAM, durable, [f"evt.{SENDER}.bench"])
    done = 0
    batch_times: list[float] = []
    watch = Stopwatch()
    while done < events:
        started = time.perf_counter()
        batch = await consumer.fetch(512, timeout=2.0)
        if not batch:
            break
        for delivery in batch:
            if delivery.event is None:
                raise RuntimeError(f"benchmark event refused: {delivery.rejection}")
            await delivery.ack()
        done += len(batch)
        batch_times.append((time.perf_counter() - started) / len(batch))
    seconds = watch.stop()
    await consumer.stop(delete=True)
    return {"events_per_s": round(done / seconds), "events": done, "seconds": round(seconds, 3)}


async def raw_drain(nc: NatsClient, events: int, durable: str) -> dict[str, Any]:
    """Plain nats-py pull consumer: fetch and ack, no verification."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"evt.{SENDER}.bench",
        durable=durable,
        stream=HUB_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000),
    )
    done = 0
    watch = Stopwatch()
    while done < events:
        try:
            batch = await sub.fetch(512, timeout=2.0)
        except nats.errors.TimeoutError:
            break
        for msg in batch:
            await msg.ack()
        done += len(batch)
    seconds = watch.stop()
    await sub.unsubscribe()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_consumer(HUB_STREAM, durable)
    return {"events_per_s": round(done / seconds), "events": done, "seconds": round(seconds, 3)}


async def live_latency(hub: Hub, events: int, rate: float, size: int) -> dict[str, Any]:
    """Publish at a steady rate while a verifying consumer reads: ce-time → verified, p50/p99."""
    consumer = hub.consumer(HUB_STREAM, "bench_live", [f"evt.{SENDER}.live"], deliver_new=True)
    await consumer.start()
    schema = hub.schemas.by_name(NOTICE)
    key = hub.keystore.current(SENDER)
    body = schema.encode(_record(size))
    publisher = Publisher(hub.nc)
    latencies: list[float] = []

    async def produce() -> None:
        interval = 1.0 / rate
        start = time.perf_counter()
        for i in range(events):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            env = seal(key, f"evt.{SENDER}.live", NOTICE, body, time_text=format_time())
            asyncio.get_running_loop().create_task(publisher.publish(env))

    async def consume() -> None:
        while len(latencies) < events:
            batch = await consumer.fetch(256, timeout=2.0)
            if not batch:
                break
            now = time.time()
            for delivery in batch:
                assert delivery.event is not None
                latencies.append(now - parse_time(delivery.event.fields.time_text).timestamp())
                await delivery.ack()

    await asyncio.gather(produce(), consume())
    await consumer.stop(delete=True)
    await publisher.close()
    return {"offered_per_s": rate, "events": len(latencies), **latency_ms(latencies)}


async def bench_consume(hub: Hub, events: int, size: int, rate: float) -> dict[str, Any]:
    """Backlog drain throughput (govhub verified vs raw fetch+ack) and live latency."""
    await _fill(hub, events, size)
    async with plain_client(hub) as plain:
        raw = await raw_drain(plain, events, "bench_raw")
    verified = await verified_drain(hub, events, "bench_verified")
    live = await live_latency(hub, min(events, int(rate * 5)), rate, size)
    return {
        "benchmark": "consume",
        "events": events,
        "govhub": {**verified, "live": live},
        "raw_fetch_ack": raw,
        "ratio": round(verified["events_per_s"] / raw["events_per_s"], 2),
        "machine": machine(),
    }
