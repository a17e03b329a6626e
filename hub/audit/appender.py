"""The audit appender: every message of the hub stream, verified, becomes one leaf of the log.

One writer at a time: the appender takes a PostgreSQL advisory lock on its own connection and
writes only through that connection, so a second ``govhub serve`` waits as a standby and takes
over when the first one's session ends (crash, kill, network loss). Messages are verified as any
receiver verifies them (``Consumer.fetch``); each batch is committed in one transaction (leaves,
tiles, state, sequences), then refused messages are copied to the quarantine stream, then
everything is acked. A batch that does not commit is never acked: JetStream keeps it, and the
appender retries with backoff, reconnecting and re-reading the committed state first. Whatever
is redelivered after a crash collapses onto its existing leaf (idempotency key, hub/audit/leaf.py).

`stop_intake()` (hub/intake.py) lets the appender stop without that redelivery: it fetches no
new batch, commits and acks the batches it holds (the one committing and the one read ahead),
releases the lock and returns; a standby stops waiting at once. After an outage that follows
the stop it returns without retrying: what it held is redelivered, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import asyncpg.exceptions
import nats.errors
import nats.js.errors
import structlog

from hub import health
from hub.audit import leaf as leafmod
from hub.audit import store
from hub.audit.config import AuditConfig
from hub.audit.leaf import LeafRecord
from hub.audit.sequences import SequenceTracker
from hub.audit.store import StaleState, TreeState
from hub.collaborators import Bus
from hub.consumer import Consumer, Delivery
from hub.errors import AuditError, PublishError, Reason, ServerError
from hub.intake import Intake
from hub.metrics import Counter, Gauge
from hub.outage import Backoff, describe
from hub.topology import HUB_STREAM
from hub.waits import poll

log = structlog.get_logger("hub.audit.appender")

DURABLE = "audit_appender"
PART = "appender"
"""How the appender names itself in `/healthz` causes."""
ACK_WAIT = 5.0
"""Seconds before JetStream redelivers a message the appender fetched but never acked."""
BACKOFF = (0.2, 10.0)
"""First and longest wait (seconds, jittered) before the appender retries after an outage."""
TOP_UP_WAIT = 0.005
"""Seconds the top-up after a commit may take to collect what the server already holds."""

LEAVES = Counter(
    "govhub_audit_leaves_total", "Leaves appended to the audit log, by verdict.", ("verdict",)
)
DUPLICATES = Counter(
    "govhub_audit_duplicates_total", "Messages already in the audit log (redelivered, re-sourced)."
)
GAPS = Counter("govhub_audit_gaps_total", "Sequence gaps detected, by origin stream.", ("stream",))
RETRIES = Counter("govhub_audit_retries_total", "Audit batches retried after a database failure.")
TREE_SIZE = Gauge("govhub_audit_tree_size", "Leaves in the audit log.")
WRITER = Gauge("govhub_audit_writer", "1 while this process holds the audit writer lock.")

# Failures after which the appender reconnects and retries: the database went away or refused.
DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection lost mid-operation
    asyncpg.PostgresError,
    AuditError,
)


def to_record(delivery: Delivery) -> LeafRecord:
    """The leaf of one delivery with the appender's verdict."""
    if delivery.rejection is not None:
        return leafmod.build(
            delivery, "quarantined", delivery.rejection.reason.value, str(delivery.rejection)
        )
    refused = leafmod.admissible(delivery)
    if refused is not None:
        return leafmod.build(delivery, "quarantined", refused[0].value, refused[1])
    return leafmod.build(delivery, "accepted")


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a read-ahead task and wait for it (its deliveries will be redelivered)."""
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)


class Appender:
    """Consumes the hub stream into the audit tree while it holds the writer lock."""

    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        config: AuditConfig,
        *,
        dsn: str,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        """``dsn`` opens the writer's own connection (it holds the lock); ``on_commit(size)``
        is called after each committed batch (the checkpointer's cue)."""
        self._bus, self._pool, self._config, self._dsn = bus, pool, config, dsn
        self._on_commit = on_commit
        self._consumer: Consumer | None = None
        self._held: list[Delivery] = []
        self._state: TreeState | None = None
        self._tracker = SequenceTracker()
        self._retry = Backoff(*BACKOFF)
        self.leading = asyncio.Event()
        self.intake = Intake()

    @property
    def size(self) -> int | None:
        """Leaves committed, as this writer knows it (None before it first led)."""
        return None if self._state is None else self._state.size

    def consumer(self) -> Consumer:
        """The durable consumer over every subject of the hub stream (created once)."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(
                HUB_STREAM,
                DURABLE,
                max_deliver=-1,  # the log must never give up on a message
                backoff=(ACK_WAIT,),
                max_ack_pending=max(4 * self._config.batch_size, 1000),
            )
        return self._consumer

    def stop_intake(self) -> None:
        """Fetch no new batch; `run()` returns once the batches in hand are committed and acked
        (a standby returns at once)."""
        self.intake.close()

    async def run(self) -> None:
        """Wait for the writer lock, then append until cancelled or `stop_intake()`; recover
        from any outage."""
        try:
            while self.intake.open:
                try:
                    conn = await asyncpg.connect(self._dsn, timeout=10)
                except DB_ERRORS as exc:
                    await self._backoff("connect", exc)
                    continue
                try:
                    if not await store.try_lock(conn):
                        log.info("audit.appender.standby")
                        health.resume(PART)  # a standby that waits for the lock is healthy
                        # A standby holds nothing, so a stop ends its wait at once instead of
                        # keeping it until another process's writer session ends.
                        if not await self.intake.unless_closed(store.lock(conn)):
                            break
                    await self._lead(conn)
                except DB_ERRORS as exc:
                    await self._backoff("database", exc)
                finally:
                    self._step_down()
                    # Ending the session releases the lock, so a standby elsewhere takes over
                    # now; terminate if the server does not answer the close in time.
                    try:
                        await asyncio.wait_for(conn.close(), 2.0)
                    except Exception:
                        conn.terminate()
        finally:
            if self._consumer is not None:
                await self._consumer.stop()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        self._state = await store.load_state(conn)
        self._tracker = await store.load_tracker(conn)
        WRITER.set(1)
        TREE_SIZE.set(self._state.size)
        self.leading.set()
        health.resume(PART)
        log.info("audit.appender.writer", size=self._state.size)
        if self._on_commit is not None:
            self._on_commit(self._state.size)
        # The next batch is fetched, verified and turned into leaves while the current one
        # commits: the commit mostly waits for PostgreSQL's disk sync. A batch read ahead and
        # dropped (outage, step-down) is unacked, so JetStream redelivers it after ACK_WAIT.
        # After `stop_intake()` no new fetch starts, but a read-ahead already under way is
        # awaited (it lingers at most flush_interval) and committed: dropping it would leave
        # its messages unacked, redelivered after ACK_WAIT.
        ahead: asyncio.Task[tuple[list[Delivery], list[LeafRecord]]] | None = None
        records: list[LeafRecord] | None = None
        try:
            while True:
                try:
                    if not self._held:
                        task, ahead = ahead, None
                        if task is None and not self.intake.open:
                            return  # nothing in hand: the drain is done
                        self._held, records = await (task or self._prepare())
                        health.resume(PART)
                        if (
                            self.intake.open
                            and task is not None
                            and 0 < len(self._held) < self._config.batch_size
                        ):
                            # What arrived while the last batch committed joins this one, so
                            # batches grow with the load instead of staying as small as the
                            # trickle that was there when the read-ahead started.
                            more, extra = await self._prepare(TOP_UP_WAIT, len(self._held))
                            self._held, records = self._held + more, records + extra
                        if not self._held:
                            continue
                    if self.intake.open:
                        ahead = asyncio.create_task(self._prepare())
                    await self.commit(conn, self._held, records)
                    self._held, records = [], None
                    self._retry.reset()
                except (ServerError, PublishError, nats.errors.Error) as exc:
                    # ServerError: the bus layer raises failures of nats-py as govhub errors.
                    # NATS is away: whatever was committed but not acked is redelivered later
                    # and collapses onto its leaf, so dropping the held batch loses nothing.
                    # The subscription is made again, which also re-creates a deleted consumer.
                    self._held, records = [], None
                    await _cancel(ahead)
                    ahead = None
                    await self.consumer().stop()
                    await self._backoff("nats", exc)
        finally:
            if ahead is not None and ahead.done() and not ahead.cancelled():
                if ahead.exception() is None:
                    self._held += ahead.result()[0]  # retried with the held batch, in order
            else:
                await _cancel(ahead)

    async def _prepare(
        self, timeout: float | None = None, have: int = 0
    ) -> tuple[list[Delivery], list[LeafRecord]]:
        """Fetch (and verify) up to a batch beyond the ``have`` held, and build their leaves.

        With a ``timeout`` (the top-up) only what the server already holds is taken.
        """
        wait = self._config.flush_interval if timeout is None else timeout
        deliveries = await self._fetch(wait, self._config.batch_size - have, timeout is None)
        return deliveries, [to_record(d) for d in deliveries]

    async def _fetch(
        self, timeout: float, count: int | None = None, linger: bool = True
    ) -> list[Delivery]:
        try:
            return await self.consumer().fetch(
                count or self._config.batch_size, timeout=timeout, linger=linger
            )
        except TimeoutError:
            # nats-py raises a bare TimeoutError (not its own) when a short fetch deadline runs
            # out between its two pull requests; it means "nothing yet", like an empty batch.
            return []

    def _step_down(self) -> None:
        self.leading.clear()
        WRITER.set(0)

    async def _backoff(self, what: str, exc: BaseException) -> None:
        delay = self._retry.next()
        RETRIES.inc()
        health.pause(PART, describe(exc))
        log.warning(
            "audit.appender.retry",
            cause=what,
            error=describe(exc),
            held=len(self._held),
            retry_in=round(delay, 2),
        )
        # A stop ends the wait: retrying after it would outlast the grace period for nothing,
        # and what is held is redelivered to the next writer.
        await self.intake.unless_closed(health.retry_after(delay))

    async def commit(
        self,
        conn: asyncpg.Connection,
        deliveries: list[Delivery],
        records: list[LeafRecord] | None = None,
    ) -> int:
        """Append one batch, copy refused messages to quarantine, ack; return leaves added.

        ``records`` are the deliveries' leaves when already built (``to_record``).
        """
        assert self._state is not None
        if records is None:
            records = [to_record(d) for d in deliveries]
        try:
            state, tracker, outcome = await store.append_batch(
                conn, self._state, self._tracker, records
            )
        except StaleState:
            # Someone else wrote, or our last commit succeeded without us hearing back.
            self._state = await store.load_state(conn)
            self._tracker = await store.load_tracker(conn)
            state, tracker, outcome = await store.append_batch(
                conn, self._state, self._tracker, records
            )
        self._state, self._tracker = state, tracker
        TREE_SIZE.set(state.size)
        DUPLICATES.inc(amount=outcome.duplicates)
        for gap in outcome.new_gaps:
            GAPS.inc(gap.stream)
            log.warning(
                "audit.gap.detected",
                stream=gap.stream,
                first_seq=gap.first,
                last_seq=gap.last,
                after_leaf=gap.after_leaf,
            )
        consumer = self.consumer()
        for delivery, given, final in zip(deliveries, records, outcome.final, strict=True):
            record = final or given
            if final is not None:
                LEAVES.inc(final.verdict)
            if record.verdict == "quarantined" and record.reason is not None:
                await consumer.quarantine(delivery, Reason(record.reason), record.detail or "")
            else:
                await delivery.ack()
        if self._on_commit is not None:
            self._on_commit(state.size)
        return outcome.appended

    async def catch_up(self, *, timeout: float = 120.0) -> int:
        """Append until the hub stream holds nothing unlogged; return the tree size.

        For the demo and tests, which run without ``govhub serve``. If a serve process already
        holds the writer lock, this waits for it to log everything instead.
        """
        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            if not await store.try_lock(conn):
                return await self._wait_for_writer(deadline)
            self._state = await store.load_state(conn)
            self._tracker = await store.load_tracker(conn)
            await self.consumer().start()
            js = self._bus.nc.jetstream()
            while time.monotonic() < deadline:
                batch = await self._fetch(0.2)
                if batch:
                    await self.commit(conn, batch)
                    continue
                info = await js.consumer_info(HUB_STREAM, DURABLE)
                if not info.num_pending and not info.num_ack_pending:
                    return self._state.size
            raise AuditError(f"the audit log did not catch up within {timeout:g} s")
        finally:
            await conn.close()
            if self._consumer is not None:
                await self._consumer.stop()

    async def _wait_for_writer(self, deadline: float) -> int:
        js = self._bus.nc.jetstream()

        async def caught_up() -> bool:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await js.consumer_info(HUB_STREAM, DURABLE)
                return not info.num_pending and not info.num_ack_pending
            return False

        # A bounded wait on another process; there is no event to wait on.
        if not await poll(caught_up, timeout=deadline - time.monotonic(), every=0.2):
            raise AuditError("the audit writer in another process did not catch up in time")
        return int(await self._pool.fetchval("SELECT size FROM audit_state"))
