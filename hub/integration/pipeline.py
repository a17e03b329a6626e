"""The adapter runtime: records flow Source → mapping → Sink, with concurrency, batching, ack/nak,
backoff and dead-lettering decided here and nowhere else.

```
source.deliveries() ─► bounded queue ─► N workers: take a batch, map each, sink.send(batch)
mapping raised        ─► dead letter (unmappable), ack
Outcome DONE          ─► ack
Outcome REJECT        ─► dead letter (sink_refused or the sink's reason), ack
Outcome RETRY         ─► nak(backoff); poison dead letter after max_attempts
Outcome UNAVAILABLE   ─► nak, the worker pauses with backoff (never counted)
```

Retry counts live here, not in the source, and only RETRY counts: a department database or NATS
being down for a day must never turn good records into poison. Dead letters go to the
QUARANTINE stream (hub.integration.deadletter) with the record's key and the reason; if even that is
unreachable the record is nak'd and stays at its origin, so nothing is lost. A source whose
caller waits for the answer (a webhook) gets the rejection through `ack` instead.

Shutdown stops intake first, lets workers finish what they hold for a grace period, then
cancels; whatever was not acked is handed out again by its source next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from hub.errors import GovhubError, Reason, Retryable
from hub.integration.connector import Delivery, Outcome, Record, Sink, Source, Verdict
from hub.metrics import Counter, Gauge
from hub.waits import wait_event

log = structlog.get_logger("hub.integration.pipeline")

Transform = Callable[[Record], Record | None]

RECORDS = Counter(
    "govhub_adapter_records_total",
    "Records an adapter handled, by outcome (received, delivered, dead_lettered, rejected, "
    "retried, filtered).",
    ("adapter", "outcome"),
)
BATCHES = Counter("govhub_adapter_batches_total", "Batches sent to the sink.", ("adapter",))
SEND_SECONDS = Counter(
    "govhub_adapter_send_seconds_total", "Time spent in sink.send.", ("adapter",)
)
UP = Gauge(
    "govhub_adapter_up", "1 while the adapter runs with source and sink reachable.", ("adapter",)
)
INFLIGHT = Gauge("govhub_adapter_inflight", "Records taken but not yet settled.", ("adapter",))
LAST_SUCCESS = Gauge(
    "govhub_adapter_last_success_timestamp_seconds",
    "Unix time of the last delivered record.",
    ("adapter",),
)


class DeadLetters(Protocol):
    """Where records that can never be delivered are kept, with their key and reason."""

    async def put(self, record: Record, reason: Reason, detail: str) -> None:
        """Store a dead letter durably; raises if it could not be stored."""


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """Runtime tuning of one pipeline (the `[adapters.pipeline]` table of an adapter file)."""

    batch_size: int = 256
    concurrency: int = 2
    max_attempts: int = 8
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    grace: float = 10.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("backoff_initial must be positive and at most backoff_max")


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter: about initial·2^(attempt-1), capped, never synchronised."""
    base = min(maximum, initial * 2.0 ** max(attempt - 1, 0))
    return base * random.uniform(0.5, 1.0)


@dataclass
class PipelineStats:
    """What a pipeline has done so far; read by health checks and the progress display."""

    state: str = "starting"
    received: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    retried: int = 0
    filtered: int = 0
    inflight: int = 0
    last_error: str = ""
    last_success: float | None = None
    started: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        """The stats as a JSON document."""
        return {
            "state": self.state,
            "received": self.received,
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "rejected": self.rejected,
            "retried": self.retried,
            "filtered": self.filtered,
            "inflight": self.inflight,
            "last_error": self.last_error,
            "seconds": round(time.monotonic() - self.started, 2),
        }


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, Retryable | OSError | TimeoutError)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return (
        text
        if str(exc) and type(exc).__module__.startswith("hub")
        else f"{type(exc).__name__}: {text}"
    )


def mapping_error(exc: BaseException) -> str:
    """Why a mapping refused a record, in words a department developer acts on."""
    if isinstance(exc, KeyError) and exc.args:
        return f"the record has no field {exc.args[0]!r}"
    if isinstance(exc, ValueError | GovhubError) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def identity(record: Record) -> Record:
    """The mapping that changes nothing."""
    return record


class Pipeline:
    """One adapter at run time: a source, a mapping and a sink, settled by the rules above."""

    def __init__(
        self,
        name: str,
        source: Source,
        sink: Sink,
        transform: Transform = identity,
        *,
        dead_letters: DeadLetters | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.sink = sink
        self._transform = transform
        self._dead_letters = dead_letters
        self.options = options or PipelineOptions()
        self.stats = PipelineStats()
        self._attempts: dict[str, int] = {}
        self._unavailable = 0
        self._stop = asyncio.Event()
        self.on_state: Callable[[Pipeline], None] | None = None
        """Called after the state (or the error it carries) changes: progress lines, alerts."""

    def _state(self, state: str, error: str = "") -> None:
        changed = state != self.stats.state or bool(error and error != self.stats.last_error)
        self.stats.state = state
        if error:
            self.stats.last_error = error
        UP.set(1.0 if state == "running" else 0.0, self.name)
        if changed and self.on_state is not None:
            self.on_state(self)

    def _count(self, outcome: str, amount: int = 1) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + amount)
        RECORDS.inc(self.name, outcome, amount=amount)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or the source ends); then drain, stop source and sink."""
        if stop is not None:
            self._stop = stop
        self._state("starting")
        try:
            if not await self._start(self.sink.start, "sink"):
                return
            if not await self._start(self.source.start, "source"):
                return
            self._state("running")
            await self._flow()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._state("failed", _describe(exc))
                log.error("pipeline.failed", adapter=self.name, error=_describe(exc))
            raise
        finally:
            with contextlib.suppress(Exception):
                await self.source.stop()
            with contextlib.suppress(Exception):
                await self.sink.stop()
            if self.stats.state != "failed":
                self._state("stopped")
            INFLIGHT.set(0, self.name)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True if the pipeline should go on."""
        return not await wait_event(self._stop, seconds)

    async def _start(self, start: Callable[[], Any], side: str) -> bool:
        """Start one side, retrying with backoff while its system is unreachable."""
        failures = 0
        while not self._stop.is_set():
            try:
                await start()
                return True
            except Exception as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                self._state("degraded", f"{side} unavailable: {_describe(exc)}")
                log.warning(
                    "pipeline.start.retry", adapter=self.name, side=side, error=_describe(exc)
                )
                await self._sleep(self._backoff(failures))
        return False

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.options.backoff_initial, self.options.backoff_max)

    async def _flow(self) -> None:
        opts = self.options
        queue: asyncio.Queue[Delivery | None] = asyncio.Queue(opts.batch_size * opts.concurrency)
        reader = asyncio.create_task(self._read(queue), name=f"{self.name}.read")
        workers = [
            asyncio.create_task(self._work(queue), name=f"{self.name}.work{i}")
            for i in range(opts.concurrency)
        ]
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                [reader, stopper, *workers], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
            # Stop intake, then let the workers finish what they already hold.
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            for _ in workers:
                await queue.put(None)
            _, late = await asyncio.wait(workers, timeout=opts.grace)
            for task in late:
                task.cancel()
            for result in await asyncio.gather(*workers, return_exceptions=True):
                if isinstance(result, Exception):
                    raise result
        finally:
            for task in (reader, stopper, *workers):
                task.cancel()
            await asyncio.gather(reader, stopper, *workers, return_exceptions=True)

    async def _read(self, queue: asyncio.Queue[Delivery | None]) -> None:
        """Feed the queue from the source, restarting it with backoff when its system fails."""
        failures = 0
        while True:
            try:
                stream: AsyncIterator[Delivery] = self.source.deliveries()
                try:
                    async for delivery in stream:
                        failures = 0
                        self._count("received")
                        await queue.put(delivery)
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
                return
            except Exception as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                self._state("degraded", f"source unavailable: {_describe(exc)}")
                log.warning("pipeline.source.retry", adapter=self.name, error=_describe(exc))
            while not await self._restart_source(failures):
                failures += 1

    async def _restart_source(self, failures: int) -> bool:
        await asyncio.sleep(self._backoff(failures))
        with contextlib.suppress(Exception):
            await self.source.stop()
        try:
            await self.source.start()
        except Exception as exc:
            if not _retryable(exc):
                raise
            self._state("degraded", f"source unavailable: {_describe(exc)}")
            return False
        self._state("running")
        return True

    async def _work(self, queue: asyncio.Queue[Delivery | None]) -> None:
        size = self.options.batch_size
        while True:
            first = await queue.get()
            if first is None:
                return
            batch, last = [first], False
            while len(batch) < size and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    last = True
                    break
                batch.append(item)
            self.stats.inflight += len(batch)
            INFLIGHT.set(self.stats.inflight, self.name)
            try:
                paused = await self.handle(batch)
            finally:
                self.stats.inflight -= len(batch)
                INFLIGHT.set(self.stats.inflight, self.name)
            if last:
                return
            if paused:
                await self._sleep(self._backoff(self._unavailable))

    async def handle(self, batch: Sequence[Delivery]) -> bool:
        """Map, send and settle one batch; True if the sink was unavailable (pause intake)."""
        pending: list[tuple[Delivery, Record]] = []
        settle: list[Any] = []
        for delivery in batch:
            try:
                mapped = self._transform(delivery.record)
            except Exception as exc:
                # A mapping is a pure function of the record: running it again cannot help.
                settle.append(self._reject(delivery, Reason.UNMAPPABLE, mapping_error(exc)))
                continue
            if mapped is None:
                self._count("filtered")
                settle.append(self._ack(delivery, Outcome.done(ref="filtered")))
                continue
            pending.append((delivery, mapped))
        outcomes = await self._send([mapped for _, mapped in pending]) if pending else []
        unavailable = ""
        for (delivery, _), outcome in zip(pending, outcomes, strict=True):
            if outcome.verdict is Verdict.DONE:
                self._count("delivered")
                settle.append(self._ack(delivery, outcome))
            elif outcome.verdict is Verdict.REJECT:
                reason = outcome.reason or Reason.SINK_REFUSED
                settle.append(self._reject(delivery, reason, outcome.detail))
            elif outcome.verdict is Verdict.RETRY:
                settle.append(self._retry(delivery, outcome))
            else:
                unavailable = outcome.detail
                settle.append(self._nak(delivery, self._backoff(self._unavailable + 1)))
        await asyncio.gather(*settle)
        if unavailable:
            self._unavailable += 1
            self._state("degraded", f"sink unavailable: {unavailable}")
            log.warning("pipeline.sink.unavailable", adapter=self.name, error=unavailable)
            return True
        if any(o.verdict is Verdict.DONE for o in outcomes):
            self._unavailable = 0
            self.stats.last_success = time.time()
            LAST_SUCCESS.set(self.stats.last_success, self.name)
            if self.stats.state == "degraded":
                self._state("running")
        return False

    async def _send(self, records: list[Record]) -> Sequence[Outcome]:
        BATCHES.inc(self.name)
        started = time.perf_counter()
        try:
            outcomes = await self.sink.send(records)
        except Exception as exc:
            # A sink should answer with outcomes; an exception is a bug or a lost connection,
            # so every record is retried and counted, and the error is logged for a person.
            log.error("pipeline.sink.error", adapter=self.name, error=_describe(exc))
            kind = Outcome.unavailable if _retryable(exc) else Outcome.retry
            return [kind(f"the sink failed: {_describe(exc)}") for _ in records]
        finally:
            SEND_SECONDS.inc(self.name, amount=time.perf_counter() - started)
        if len(outcomes) != len(records):
            detail = f"the sink answered {len(outcomes)} outcomes for {len(records)} records"
            log.error("pipeline.sink.error", adapter=self.name, error=detail)
            return [Outcome.retry(detail) for _ in records]
        return outcomes

    async def _ack(self, delivery: Delivery, outcome: Outcome) -> None:
        self._attempts.pop(delivery.record.key, None)
        try:
            await delivery.ack(outcome)
        except Exception as exc:
            # The record reached its target; its source hands it out again later and the
            # derived event id (or the sink's idempotency key) makes that harmless.
            log.warning(
                "pipeline.ack.failed",
                adapter=self.name,
                key=delivery.record.key,
                error=_describe(exc),
            )

    async def _nak(self, delivery: Delivery, delay: float) -> None:
        try:
            await delivery.nak(delay)
        except Exception as exc:
            log.warning(
                "pipeline.nak.failed",
                adapter=self.name,
                key=delivery.record.key,
                error=_describe(exc),
            )

    async def _retry(self, delivery: Delivery, outcome: Outcome) -> None:
        key = delivery.record.key
        attempt = self._attempts.get(key, 0) + 1
        if attempt >= self.options.max_attempts:
            detail = f"gave up after {attempt} attempts; last error: {outcome.detail}"
            await self._reject(delivery, Reason.POISON, detail)
            return
        self._attempts[key] = attempt
        self._count("retried")
        self.stats.last_error = outcome.detail
        log.info("pipeline.retry", adapter=self.name, key=key, attempt=attempt)
        await self._nak(delivery, max(self._backoff(attempt), outcome.retry_after or 0.0))

    async def _reject(self, delivery: Delivery, reason: Reason, detail: str) -> None:
        record = delivery.record
        kept = getattr(self.source, "dead_letters", True)
        if self._dead_letters is not None and kept:
            try:
                await self._dead_letters.put(record, reason, detail)
            except Exception as exc:
                # Without a durable dead letter the record must stay at its origin.
                log.warning(
                    "pipeline.deadletter.failed",
                    adapter=self.name,
                    key=record.key,
                    error=_describe(exc),
                )
                await self._nak(delivery, self._backoff(self._unavailable + 1))
                return
        # A source that answers its caller (a webhook) has told the caller why: "rejected".
        self._count("dead_lettered" if kept else "rejected")
        self.stats.last_error = f"{record.key}: {detail}"
        log.warning(
            "pipeline.dead_lettered", adapter=self.name, key=record.key, reason=reason.value
        )
        await self._ack(delivery, Outcome.reject(detail, reason=reason))
