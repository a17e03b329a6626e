"""The contract every connector passes: a test module subclasses these with a harness fixture.

A source harness makes sources on the real system (a database table, a folder, an HTTP port)
and produces records into it the way the department's own system would; a sink harness makes
sinks and reads back what arrived. The tests are the same for every connector, so a new
connector is correct in the ways the runtime relies on before anyone runs it for real.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from hub.integration.connector import Delivery, Outcome, Record, Sink, Source, Verdict
from hub.integration.pipeline import Pipeline, PipelineOptions
from hub.testing import MemorySink
from hub.waits import poll

WAIT = 60.0


class SourceHarness(Protocol):
    """How the contract drives one kind of source."""

    def make(self) -> Source:
        """A new source on the system under test (not started)."""

    async def produce(self, count: int) -> list[str]:
        """Create `count` records at the origin; returns their record keys."""

    async def settled(self) -> set[str]:
        """Keys the origin shows as done (marked sent, moved, answered)."""


class SinkHarness(Protocol):
    """How the contract drives one kind of sink."""

    def make(self) -> Sink:
        """A new sink on the system under test (not started)."""

    def records(self, count: int, offset: int = 0) -> list[Record]:
        """Records this sink can store, with distinct ids."""

    async def stored(self) -> list[str]:
        """Ids of what the target holds, one entry per stored copy."""


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = WAIT
) -> None:
    """Wait until `predicate` holds, checking every 20 ms; fail naming `what` after `timeout`."""
    if not await poll(predicate, timeout=timeout, every=0.02):
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def take(stream: AsyncIterator[Delivery], count: int) -> list[Delivery]:
    """The next `count` deliveries, waiting generously (machines here are shared and slow)."""
    taken: list[Delivery] = []
    async with asyncio.timeout(WAIT):
        while len(taken) < count:
            taken.append(await anext(stream))
    return taken


async def nothing_more(stream: AsyncIterator[Delivery], seconds: float = 1.5) -> bool:
    """True if no delivery arrives within `seconds`."""
    try:
        await asyncio.wait_for(anext(stream), seconds)
    except TimeoutError:
        return True
    return False


class SourceContract:
    """Contract tests for sources; subclasses define the `source_harness` fixture."""

    async def test_start_and_stop_are_idempotent(self, source_harness: SourceHarness) -> None:
        source = source_harness.make()
        await source.stop()
        await source.start()
        await source.start()
        await source.stop()
        await source.stop()

    async def test_a_record_makes_the_round_trip_and_is_settled_at_the_origin(
        self, source_harness: SourceHarness
    ) -> None:
        source = source_harness.make()
        await source.start()
        stream = source.deliveries()
        try:
            keys = await source_harness.produce(3)
            got = await take(stream, 3)
            assert sorted(d.record.key for d in got) == sorted(keys)
            await asyncio.gather(*(d.ack(Outcome.done(event_id="e")) for d in got))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await source.stop()
        assert set(keys) <= await source_harness.settled()
        again = source_harness.make()
        await again.start()
        stream = again.deliveries()
        try:
            assert await nothing_more(stream)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await again.stop()

    async def test_a_nakd_record_is_delivered_again(self, source_harness: SourceHarness) -> None:
        source = source_harness.make()
        await source.start()
        stream = source.deliveries()
        try:
            keys = await source_harness.produce(1)
            (first,) = await take(stream, 1)
            await first.nak(0.05)
            (second,) = await take(stream, 1)
            assert first.record.key == second.record.key == keys[0]
            assert second.record.value == first.record.value
            await second.ack(Outcome.done())
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await source.stop()
        assert keys[0] in await source_harness.settled()

    async def test_stopping_loses_nothing_and_redelivers_only_what_was_not_acked(
        self, source_harness: SourceHarness
    ) -> None:
        source = source_harness.make()
        await source.start()
        stream = source.deliveries()
        try:
            keys = await source_harness.produce(12)
            got = await take(stream, 12)
            acked = got[:5]
            await asyncio.gather(*(d.ack(Outcome.done()) for d in acked))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await source.stop()
        again = source_harness.make()
        await again.start()
        stream = again.deliveries()
        try:
            rest = await take(stream, 7)
            assert {d.record.key for d in rest} == set(keys) - {d.record.key for d in acked}
            await asyncio.gather(*(d.ack(Outcome.done()) for d in rest))
            assert await nothing_more(stream)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await again.stop()
        assert set(keys) <= await source_harness.settled()

    async def test_a_parallel_batch_is_delivered_exactly_once(
        self, source_harness: SourceHarness
    ) -> None:
        source = source_harness.make()
        sink = MemorySink()
        stop = asyncio.Event()
        options = PipelineOptions(batch_size=16, concurrency=4, backoff_initial=0.05)
        pipeline = Pipeline("contract", source, sink, options=options)
        task = asyncio.create_task(pipeline.run(stop))
        try:
            await eventually(lambda: pipeline.stats.state == "running", "the pipeline to run")
            keys = await source_harness.produce(120)
            await eventually(lambda: len(sink.records) >= len(keys), "every record at the sink")
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT)
        counts = Counter(sink.keys)
        assert set(counts) == set(keys)
        assert max(counts.values()) == 1
        assert set(keys) <= await source_harness.settled()


class SinkContract:
    """Contract tests for sinks; subclasses define the `sink_harness` fixture."""

    async def test_start_and_stop_are_idempotent(self, sink_harness: SinkHarness) -> None:
        sink = sink_harness.make()
        await sink.stop()
        await sink.start()
        await sink.start()
        await sink.stop()
        await sink.stop()

    async def test_records_make_the_round_trip(self, sink_harness: SinkHarness) -> None:
        sink = sink_harness.make()
        await sink.start()
        try:
            records = sink_harness.records(3)
            outcomes = await sink.send(records)
        finally:
            await sink.stop()
        assert [o.verdict for o in outcomes] == [Verdict.DONE] * 3
        assert sorted(await sink_harness.stored()) == sorted(r.id or r.key for r in records)

    async def test_sending_the_same_records_again_stores_them_once(
        self, sink_harness: SinkHarness
    ) -> None:
        sink = sink_harness.make()
        await sink.start()
        try:
            records = sink_harness.records(4)
            await sink.send(records)
            outcomes = await sink.send(records)
        finally:
            await sink.stop()
        assert {o.verdict for o in outcomes} == {Verdict.DONE}
        assert sorted(await sink_harness.stored()) == sorted(r.id or r.key for r in records)

    async def test_a_parallel_batch_is_stored_exactly_once(self, sink_harness: SinkHarness) -> None:
        sink = sink_harness.make()
        await sink.start()
        try:
            batches = [sink_harness.records(20, offset=20 * i) for i in range(5)]
            results: Sequence[Sequence[Outcome]] = await asyncio.gather(
                *(sink.send(b) for b in batches)
            )
        finally:
            await sink.stop()
        assert all(o.verdict is Verdict.DONE for r in results for o in r)
        stored = await sink_harness.stored()
        assert sorted(stored) == sorted(r.id or r.key for b in batches for r in b)

    async def test_check_reports_a_reachable_target(self, sink_harness: SinkHarness) -> None:
        found = await sink_harness.make().check()
        assert found.detail
