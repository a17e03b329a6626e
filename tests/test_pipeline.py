"""The adapter runtime's rules (ack, nak, backoff, dead letters, shutdown) with in-memory ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from hub.errors import Reason
from hub.integration.connector import Outcome, Record, Verdict, derive_event_id
from hub.integration.pipeline import Pipeline, PipelineOptions
from hub.testing import MemoryDeadLetters, MemorySink, MemorySource, run_mapping

FAST = PipelineOptions(backoff_initial=0.01, backoff_max=0.05, max_attempts=3, batch_size=8)
NOTICE = "gov.common.v1.Notice"


def notice(key: str, title: str = "t") -> Record:
    return Record(key=key, kind=NOTICE, value={"title": title, "body": "b"})


async def run(pipeline: Pipeline) -> None:
    await asyncio.wait_for(pipeline.run(), 60)


async def test_every_record_reaches_the_sink_and_is_acked_done() -> None:
    source = MemorySource([notice(str(i)) for i in range(20)])
    sink = MemorySink()
    await run(Pipeline("t", source, sink, options=FAST))
    assert sorted(sink.keys, key=int) == [str(i) for i in range(20)]
    assert {o.verdict for o in source.outcomes.values()} == {Verdict.DONE}


async def test_a_record_the_mapping_cannot_handle_is_dead_lettered_and_the_rest_flows() -> None:
    def mapping(record: Record) -> Record:
        if record.key == "bad":
            raise KeyError("household_id")
        return record

    dead = MemoryDeadLetters()
    source = MemorySource([notice("a"), notice("bad"), notice("b")])
    sink = MemorySink()
    await run(Pipeline("t", source, sink, mapping, dead_letters=dead, options=FAST))
    assert sink.keys == ["a", "b"]
    assert [(k, r) for k, r, _ in dead.letters] == [("bad", Reason.UNMAPPABLE)]
    assert "household_id" in dead.letters[0][2]
    assert source.outcomes["bad"].verdict is Verdict.REJECT


async def test_a_record_that_does_not_fit_its_schema_is_dead_lettered_with_the_reason() -> None:
    bad = Record(key="row-7", kind=NOTICE, value={"title": 42, "body": "b"})
    result = await run_mapping(records=[notice("row-6"), bad])
    assert [r.key for r in result.sent] == ["row-6"]
    assert result.dead[0][:2] == ("row-7", Reason.UNMAPPABLE)
    assert NOTICE in result.dead[0][2]


async def test_a_failing_record_is_redelivered_with_backoff_and_then_succeeds() -> None:
    failures = {"x": 2}

    def answer(record: Record) -> Outcome | None:
        if failures.get(record.key, 0) > 0:
            failures[record.key] -= 1
            return Outcome.retry("HTTP 503")
        return None

    source = MemorySource([notice("x"), notice("y")])
    sink = MemorySink(answer=answer)
    await run(Pipeline("t", source, sink, options=PipelineOptions(backoff_initial=0.01)))
    assert sorted(sink.keys) == ["x", "y"]
    assert [k for k, _ in source.naks] == ["x", "x"]
    assert all(delay > 0 for _, delay in source.naks)


async def test_a_record_that_keeps_failing_becomes_poison_after_max_attempts() -> None:
    dead = MemoryDeadLetters()
    source = MemorySource([notice("p"), notice("ok")])
    sink = MemorySink(answer=lambda r: Outcome.retry("HTTP 500") if r.key == "p" else None)
    await run(Pipeline("t", source, sink, dead_letters=dead, options=FAST))
    assert sink.keys == ["ok"]
    assert dead.letters[0][:2] == ("p", Reason.POISON)
    assert "3 attempts" in dead.letters[0][2]
    assert source.deliveries_made == 4  # p three times, ok once


async def test_an_unavailable_target_never_turns_records_into_poison() -> None:
    down = {"rounds": 12}  # far more than max_attempts

    def answer(_record: Record) -> Outcome | None:
        if down["rounds"] > 0:
            down["rounds"] -= 1
            return Outcome.unavailable("connection refused")
        return None

    dead = MemoryDeadLetters()
    source = MemorySource([notice("a")])
    sink = MemorySink(answer=answer)
    pipeline = Pipeline("t", source, sink, dead_letters=dead, options=FAST)
    await run(pipeline)
    assert sink.keys == ["a"]
    assert dead.letters == []
    assert pipeline.stats.state == "stopped"


async def test_a_sink_that_raises_is_treated_as_retry_not_as_a_verdict() -> None:
    class Exploding(MemorySink):
        calls_left = 1

        async def send(self, records):  # type: ignore[no-untyped-def]
            if self.calls_left:
                self.calls_left -= 1
                raise RuntimeError("bug in the sink")
            return await super().send(records)

    source = MemorySource([notice("a")])
    sink = Exploding()
    await run(Pipeline("t", source, sink, options=FAST))
    assert sink.keys == ["a"]
    assert source.naks and source.naks[0][0] == "a"


async def test_when_the_dead_letter_stream_is_unreachable_the_record_stays_at_its_origin() -> None:
    class Broken(MemoryDeadLetters):
        tries = 0

        async def put(self, record: Record, reason: Reason, detail: str) -> None:
            self.tries += 1
            if self.tries < 3:
                raise ConnectionError("NATS is down")
            await super().put(record, reason, detail)

    def unmappable(record: Record) -> Record:
        raise ValueError(f"no mapping for {record.key}")

    dead = Broken()
    source = MemorySource([notice("bad")])
    await run(Pipeline("t", source, MemorySink(), unmappable, dead_letters=dead, options=FAST))
    assert dead.tries == 3
    assert [k for k, _ in source.naks] == ["bad", "bad"]
    assert source.outcomes["bad"].verdict is Verdict.REJECT


async def test_a_source_whose_caller_waits_gets_the_rejection_instead_of_a_dead_letter() -> None:
    class Webhookish(MemorySource):
        dead_letters: ClassVar[bool] = False

    dead = MemoryDeadLetters()
    source = Webhookish([Record(key="r", kind=NOTICE, value={"title": 1})])
    sink = MemorySink(answer=lambda r: Outcome.reject("does not fit", reason=Reason.UNMAPPABLE))
    await run(Pipeline("t", source, sink, dead_letters=dead, options=FAST))
    assert dead.letters == []
    assert source.outcomes["r"].verdict is Verdict.REJECT
    assert source.outcomes["r"].detail == "does not fit"


async def test_a_filtered_record_is_acked_without_reaching_the_sink() -> None:
    source = MemorySource([notice("keep"), notice("drop")])
    sink = MemorySink()
    pipeline = Pipeline("t", source, sink, lambda r: None if r.key == "drop" else r, options=FAST)
    await run(pipeline)
    assert sink.keys == ["keep"]
    assert pipeline.stats.filtered == 1
    assert source.outcomes["drop"].ref == "filtered"


async def test_a_parallel_batch_delivers_every_record_exactly_once() -> None:
    records = [notice(f"k{i}") for i in range(2000)]
    source = MemorySource(records)
    sink = MemorySink()
    options = PipelineOptions(batch_size=64, concurrency=4)
    pipeline = Pipeline("t", source, sink, options=options)
    await run(pipeline)
    assert sorted(sink.keys) == sorted(r.key for r in records)
    assert sink.calls >= 2000 // 64
    assert pipeline.stats.delivered == 2000


async def test_stopping_drains_what_workers_hold_and_leaves_the_rest_at_the_origin() -> None:
    release = asyncio.Event()

    holding = asyncio.Event()

    class Slow(MemorySink):
        async def send(self, records):  # type: ignore[no-untyped-def]
            holding.set()
            await release.wait()
            return await super().send(records)

    source = MemorySource([notice(str(i)) for i in range(100)], finite=False)
    sink = Slow()
    stop = asyncio.Event()
    pipeline = Pipeline("t", source, sink, options=PipelineOptions(batch_size=10, concurrency=1))
    task = asyncio.create_task(pipeline.run(stop))
    await asyncio.wait_for(holding.wait(), 30)
    stop.set()
    release.set()
    await asyncio.wait_for(task, 30)
    assert 0 < len(sink.keys) < 100
    assert set(source.outcomes) == set(sink.keys)  # everything delivered was acked, no more


def test_derived_event_ids_are_stable_uuidv7s_that_differ_per_record() -> None:
    moment = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    first = derive_event_id("akto.civil", "public.outbox/1", moment)
    assert first == derive_event_id("akto.civil", "public.outbox/1", moment)
    assert first != derive_event_id("akto.civil", "public.outbox/2", moment)
    assert first != derive_event_id("akto.finance", "public.outbox/1", moment)
    assert first[14] == "7" and first[19] in "89ab"
    later = derive_event_id("akto.civil", "public.outbox/1", moment.replace(hour=9))
    assert later > first  # time-ordered like any UUIDv7


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"backoff_initial": 0}])
def test_pipeline_options_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PipelineOptions(**bad)  # type: ignore[arg-type]
