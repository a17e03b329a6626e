"""The materialized directory: `dir.>` events of the hub stream into PostgreSQL and the KV copy.

One writer at a time, like the audit appender: the materializer holds a PostgreSQL advisory
lock while it consumes, so events apply in stream order (a grant after its request) even
when several `govhub serve` processes run. A batch is verified by the `Consumer`, applied in
one transaction together with the last applied stream sequence, then written to the KV
bucket, and only then acked; a batch that fails is held and retried, never skipped, and a
redelivered event collapses onto the sequence already applied. Each writer starts by rewinding
the consumer to the first event never acknowledged (`Consumer.rewind`), so what a killed writer
had fetched is read again in order rather than redelivered behind newer events and skipped.

`stop_intake()` (hub/intake.py) stops a writer without leaving anything for the next one to
read again: it fetches no new batch, commits and acks the batch in hand (a fetch under way
ends within its one-second timeout), releases the lock and returns; a standby stops waiting at
once. After an outage that follows the stop it returns without retrying, as after a crash.

`catch_up()` is the same code path for commands and the demo, which usually run without
`govhub serve`: it applies everything the stream holds, or, when a serve process holds the
lock, waits until that process has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import asyncpg.exceptions
import nats.errors
import nats.js.errors
import structlog

from hub import health
from hub.bus import jetstream, provision
from hub.collaborators import Bus, Trust
from hub.consumer import Consumer, Delivery
from hub.directory.apply import BatchApplier, Step
from hub.directory.deadlines import DeadlinePolicy, load_policy
from hub.directory.events import DIRECTORY_FILTER
from hub.directory.rows import EntryRow
from hub.errors import DirectoryError, PublishError, Reason, ServerError
from hub.home import Settings
from hub.intake import Intake
from hub.metrics import Counter, Gauge
from hub.outage import Backoff, describe
from hub.topology import DIRECTORY_BUCKET, HUB_STREAM
from hub.waits import poll

log = structlog.get_logger("hub.directory.materializer")

DURABLE = "directory"
ENTRY_KEY_PREFIX = "entry."
ACK_WAIT = 10.0
BATCH = 500
BACKOFF = (0.2, 5.0)
"""First and longest wait (seconds, jittered) before the materializer retries after an outage."""
PART = "materializer"
_LOCK = 0x60_76_68_75_62_00_07_01  # advisory lock of the directory writer (any constant works)

DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection lost mid-operation
    asyncpg.PostgresError,
)

APPLIED = Counter(
    "govhub_directory_events_total", "Directory events materialized, by outcome.", ("outcome",)
)
LAST_SEQ = Gauge("govhub_directory_last_seq", "Hub stream sequence the directory has applied.")


def entry_key(code: str) -> str:
    """The KV key of one entry."""
    return ENTRY_KEY_PREFIX + code


def kv_document(row: EntryRow) -> dict[str, Any]:
    """What the KV copy holds for one entry (also what `dir show` reads offline)."""
    return {
        "code": row.code,
        "provider": row.provider,
        "status": row.status,
        "version": row.version,
        "entry": row.record,
        "event_id": row.event_id,
        "published_at": row.published_at.isoformat(),
        "modified_at": row.modified_at.isoformat(),
        "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
        "withdraw_reason": row.withdraw_reason,
    }


class Materializer:
    """Consumes `dir.>` into the directory tables and the KV copy."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pg_dsn: str,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        *,
        policy: DeadlinePolicy | None = None,
    ) -> None:
        self._pool = pool
        self._pg_dsn = pg_dsn
        self._trust = trust
        self._bus = bus
        self.policy = policy or load_policy(settings.home)
        self._consumer: Consumer | None = None
        self._kv: Any = None
        self._held: list[Delivery] = []
        self.intake = Intake()

    def stop_intake(self) -> None:
        """Fetch no new batch; `run()` returns once the batch in hand is committed and acked
        (a standby returns at once)."""
        self.intake.close()

    def consumer(self) -> Consumer:
        """The durable, verifying consumer of the directory subjects (created once)."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(
                HUB_STREAM,
                DURABLE,
                [DIRECTORY_FILTER],
                max_deliver=-1,  # the directory must never skip an event: order matters
                backoff=(ACK_WAIT,),
                max_ack_pending=4 * BATCH,
            )
        return self._consumer

    async def _bucket(self) -> Any:
        if self._kv is None:
            await provision(self._bus.nc, [], [DIRECTORY_BUCKET])
            self._kv = await jetstream(self._bus.nc).key_value(DIRECTORY_BUCKET)
        return self._kv

    async def commit(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> list[Step]:
        """Apply one batch in one transaction, then update the KV copy, quarantine, ack."""
        async with conn.transaction():
            last = int(
                await conn.fetchval("SELECT last_seq FROM directory_state WHERE id FOR UPDATE")
            )
            fresh = [d for d in deliveries if d.seq > last]
            applier = BatchApplier(conn, self.policy, self._trust.scenario.operator)
            await applier.load(fresh)
            steps = [await applier.apply(d) for d in fresh]
            await applier.write()
            if steps:
                await conn.executemany(
                    "INSERT INTO directory_events (seq, event_id, subject, outcome, reason, detail)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING",
                    [
                        (
                            s.delivery.seq,
                            s.delivery.envelope.event_id,
                            s.delivery.envelope.subject,
                            s.outcome,
                            s.reason.value if s.reason else None,
                            s.detail,
                        )
                        for s in steps
                    ],
                )
                last = max(last, max(d.seq for d in fresh))
                await conn.execute("UPDATE directory_state SET last_seq = $1 WHERE id", last)
        # Entries of redelivered events are rewritten too: their KV write may be what failed.
        codes = set(applier.dirty_entries)
        fresh_ids = {id(d) for d in fresh}
        for d in deliveries:
            if id(d) not in fresh_ids and d.event is not None and isinstance(d.event.record, dict):
                code = d.event.record.get("code")
                if code:
                    codes.add(str(code))
        await self._write_kv(conn, applier.dirty_entries, codes)
        consumer = self.consumer()
        refused = {id(s.delivery): s for s in steps if s.outcome == "refused"}
        for d in deliveries:
            step = refused.get(id(d))
            if step is not None and step.reason is not None:
                await consumer.quarantine(d, step.reason, step.detail or "")
            else:
                await d.ack()
        for s in steps:
            APPLIED.inc(s.outcome)
            if s.outcome == "refused":
                log.info(
                    "directory.event.refused",
                    event_id=s.delivery.envelope.event_id,
                    subject=s.delivery.envelope.subject,
                    reason=s.reason.value if s.reason else None,
                )
        LAST_SEQ.set(last)
        return steps

    async def _write_kv(
        self, conn: asyncpg.Connection, rows: dict[str, EntryRow], codes: set[str]
    ) -> None:
        missing = sorted(codes - set(rows))
        docs = {code: kv_document(row) for code, row in rows.items()}
        if missing:
            docs.update(await stored_documents(conn, missing))
        if not docs:
            return
        kv = await self._bucket()
        items = list(docs.items())
        for start in range(0, len(items), 256):
            await asyncio.gather(
                *(
                    kv.put(entry_key(code), json.dumps(doc, ensure_ascii=False).encode())
                    for code, doc in items[start : start + 256]
                )
            )

    async def catch_up(self, *, timeout: float = 120.0) -> int:
        """Apply every directory event the hub stream holds; returns the last applied sequence.

        If a `govhub serve` process holds the writer lock, wait for it to apply them instead.
        """
        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self._pg_dsn, timeout=10)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
                return await self._wait_for_writer(deadline)
            await self._rewind(conn)
            consumer = self.consumer()
            js = jetstream(self._bus.nc)
            while time.monotonic() < deadline:
                batch = await consumer.fetch(BATCH, timeout=0.2)
                if batch:
                    await self.commit(conn, batch)
                    continue
                info = await js.consumer_info(HUB_STREAM, DURABLE)
                if not info.num_pending and not info.num_ack_pending:
                    return int(await conn.fetchval("SELECT last_seq FROM directory_state"))
            raise DirectoryError(f"the directory did not catch up within {timeout:g} s")
        finally:
            await conn.close()
            await self.stop()

    async def _wait_for_writer(self, deadline: float) -> int:
        js = jetstream(self._bus.nc)

        async def caught_up() -> bool:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await js.consumer_info(HUB_STREAM, DURABLE)
                return not info.num_pending and not info.num_ack_pending
            return False

        # A bounded wait on another process; there is no event to wait on.
        if not await poll(caught_up, timeout=deadline - time.monotonic(), every=0.2):
            raise DirectoryError("the directory writer in another process did not catch up in time")
        return int(await self._pool.fetchval("SELECT last_seq FROM directory_state"))

    async def run(self) -> None:
        """Hold the writer lock and materialize until cancelled or `stop_intake()`; recover
        from outages."""
        retry = Backoff(*BACKOFF)
        try:
            while self.intake.open:
                try:
                    conn = await asyncpg.connect(self._pg_dsn, timeout=10)
                except DB_ERRORS as exc:
                    await self._backoff("connect", exc, retry)
                    continue
                try:
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
                        log.info("directory.materializer.standby")
                        health.resume(PART)  # a standby that waits for the lock is healthy
                        # A standby holds nothing, so a stop ends its wait at once instead of
                        # keeping it until another process's writer session ends.
                        lock = conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
                        if not await self.intake.unless_closed(lock):
                            break
                    log.info("directory.materializer.writer")
                    await self._lead(conn, retry)
                except DB_ERRORS as exc:
                    await self._backoff("database", exc, retry)
                finally:
                    # Ending the session releases the lock, so a standby elsewhere takes over
                    # now; terminate if the server does not answer the close in time.
                    try:
                        await asyncio.wait_for(conn.close(), 2.0)
                    except Exception:
                        conn.terminate()
        finally:
            await self.stop()

    async def _lead(self, conn: asyncpg.Connection, retry: Backoff) -> None:
        rewind = True
        while True:
            try:
                if rewind:
                    await self._rewind(conn)
                    rewind = False
                if not self._held:
                    if not self.intake.open:
                        return  # nothing in hand: the drain is done
                    self._held = await self.consumer().fetch(BATCH, timeout=1.0)
                    health.resume(PART)
                    if not self._held:
                        continue
                await self.commit(conn, self._held)
                self._held = []
                retry.reset()
            except (ServerError, PublishError, nats.errors.Error) as exc:
                # ServerError: the bus layer raises failures of nats-py as govhub errors.
                # NATS is away (the KV write or an ack failed): the held batch is read again
                # after the rewind and collapses onto the sequence already applied (its KV
                # entries rewritten), so dropping it here loses nothing.
                self._held = []
                rewind = True
                await self._backoff("nats", exc, retry)
                if not self.intake.open:
                    return  # the next writer rewinds and reads what was dropped, in order

    async def _rewind(self, conn: asyncpg.Connection) -> None:
        """Start reading, in stream order, after what this writer (PostgreSQL) has applied and
        the consumer has had acknowledged; see `Consumer.rewind`."""
        applied = int(await conn.fetchval("SELECT last_seq FROM directory_state"))
        start = await self.consumer().rewind(applied)
        self._held = []  # read again from `start`, in order
        log.info("directory.materializer.position", applied=applied, start=start)

    async def _backoff(self, what: str, exc: BaseException, retry: Backoff) -> None:
        delay = retry.next()
        health.pause(PART, describe(exc))
        log.warning(
            "directory.materializer.retry",
            cause=what,
            error=describe(exc),
            retry_in=round(delay, 2),
        )
        # A stop ends the wait: retrying after it would outlast the grace period for nothing.
        await self.intake.unless_closed(health.retry_after(delay))

    async def stop(self) -> None:
        """Release the consumer subscription (idempotent)."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


async def stored_documents(conn: Any, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """KV documents of stored entries, read back from PostgreSQL."""
    rows = await conn.fetch(
        "SELECT code, provider, status, version, entry, event_id, seq, published_at,"
        " modified_at, withdrawn_at, withdraw_reason FROM directory_entries"
        " WHERE code = ANY($1::text[])",
        list(codes),
    )
    out = {}
    for r in rows:
        row = EntryRow(
            **{k: v for k, v in r.items() if k != "entry"}, record=json.loads(r["entry"])
        )
        out[row.code] = kv_document(row)
    return out


async def catch_up(
    pool: asyncpg.Pool,
    pg_dsn: str,
    settings: Settings,
    trust: Trust,
    bus: Bus,
    *,
    timeout: float = 120.0,
) -> int:
    """Bring the directory up to date with the hub stream (for commands and the demo)."""
    return await Materializer(pool, pg_dsn, settings, trust, bus).catch_up(timeout=timeout)


async def event_outcome(
    pool: asyncpg.Pool, event_id: str
) -> tuple[str, Reason | None, str | None] | None:
    """What the materializer did with an event: (outcome, reason, detail), or None if unseen."""
    row = await pool.fetchrow(
        "SELECT outcome, reason, detail FROM directory_events WHERE event_id = $1"
        " ORDER BY seq LIMIT 1",
        event_id,
    )
    if row is None:
        return None
    reason = Reason(row["reason"]) if row["reason"] else None
    return row["outcome"], reason, row["detail"]
