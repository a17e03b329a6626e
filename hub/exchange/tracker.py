"""The exchange tracker: document state in PostgreSQL from verified doc events, and deadlines.

It reads `doc.>` from the hub stream through one durable consumer (`exchange_tracker`),
verifies every event like any receiver, checks that each receipt fits the document it names
(known document, signed by a recipient, same digest and manifest event id, signed with the
key it names) and applies it in a transaction. Events that do not fit are quarantined with a
typed reason, never dropped. Several processes may share the work (`govhub serve` and the
`doc` commands, which catch up before they answer): each holds a PostgreSQL advisory lock
while it fetches and applies a batch, so events are applied in stream order.

Deadlines run on the sender's clock: timers fire on the machine that holds the sender's key
(`govhub serve`, or any `doc` command run there) and are signed by the sender. A processing
receipt counts as on time if the sender-side stream stored it before the deadline; the
recipient's own timestamps are not trusted for this, since a late recipient could backdate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web

from hub.collaborators import Bus, Parts, Signer, Trust
from hub.consumer import Delivery
from hub.errors import KeyStoreError, NotYetKnown, RegistryError, RuleBroken, Unpublishable
from hub.exchange import receipts
from hub.exchange.ledger import load_document
from hub.exchange.state import Batch
from hub.intake import Intake
from hub.metrics import Counter
from hub.topology import HUB_STREAM
from hub.waits import wait_event

log = structlog.get_logger("hub.exchange.tracker")

DURABLE = "exchange_tracker"
# Any constant works; it only has to be the same for every tracker on a database.
_LOCK = 0x60_76_68_75_62_00_00_04
# Another process may schedule a timer this one was not woken for; re-read at least this often.
TIMER_RECHECK_S = 30.0
ACK_WAIT_S = 30.0
"""Seconds before the events a tracker fetched and never answered (it died) are redelivered."""
UNKNOWN_RETRIES = 3

APPLIED = Counter("govhub_exchange_events_total", "Document events applied, by kind.", ("kind",))


class ExchangeTracker:
    """`SERVICES["exchange"]`: materialise document state and run deadline timers."""

    name = "exchange"

    def __init__(self, pool: asyncpg.Pool, trust: Trust, bus: Bus, signer: Signer) -> None:
        self._pool = pool
        self._trust = trust
        self._signer = signer
        self._consumer = bus.consumer(
            HUB_STREAM,
            DURABLE,
            ["doc.>"],
            max_deliver=UNKNOWN_RETRIES + 3,
            # No backoff list: with one, the server spaces redeliveries by it even when a
            # NAK asks for a shorter delay, and a receipt that overtook its manifest would
            # wait minutes. Plain ack_wait covers a tracker that died mid-batch.
            backoff=(),
            ack_wait=ACK_WAIT_S,
        )
        self._wake = asyncio.Event()
        self.intake = Intake()

    def routes(self) -> Sequence[web.RouteDef]:
        """No HTTP routes: status is read through the CLI."""
        return []

    def stop_intake(self) -> None:
        """Fetch no more events and fire no more timers; `run()` returns once the batch in
        hand is applied."""
        self.intake.close()
        self._wake.set()

    async def run(self) -> None:
        """Follow doc events and fire timers until cancelled or `stop_intake()`."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._follow())
                tg.create_task(self._timers())
        except asyncio.CancelledError:
            # Only when stopped: after a failure `govhub serve` runs this again, and the
            # subscription keeps what it was already sent (a redelivered manifest, say)
            # instead of stranding it for ack_wait while its receipts run out of retries.
            await self._consumer.stop()
            raise
        await self._consumer.stop()

    async def _follow(self) -> None:
        while self.intake.open:
            applied = await self._step(timeout=1.0)
            if applied:
                self._wake.set()

    async def _timers(self) -> None:
        while self.intake.open:
            await self.fire_due()
            self._wake.clear()
            nxt = await self._next_due()
            wait = TIMER_RECHECK_S
            if nxt is not None:
                wait = min(wait, max(0.05, (nxt - datetime.now(UTC)).total_seconds()))
            if self.intake.open:  # stop_intake() during fire_due set the wake that was cleared
                await wait_event(self._wake, wait)

    async def catch_up(self, *, fire_timers: bool = True) -> int:
        """Apply every pending doc event (and due timers of local senders); returns the count."""
        total = 0
        for _ in range(2):
            while applied := await self._step(timeout=0.3):
                total += applied
            if not fire_timers or not await self.fire_due():
                break
        return total

    async def stop(self) -> None:
        """Release the consumer (idempotent)."""
        await self._consumer.stop()

    async def _step(self, timeout: float) -> int:
        """Fetch and apply one batch under the advisory lock; returns events handled."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
            try:
                batch = await self._consumer.fetch(256, timeout=timeout)
                if not batch:
                    return 0
                try:
                    await self._apply_batch(conn, batch)
                except Exception:
                    # Redeliver at once rather than after ack_wait (30 s), so the tracker
                    # resumes where it stopped as soon as an outage ends; what was applied
                    # already is recognised by its event id and not applied twice.
                    await _release(batch)
                    raise
                return len(batch)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)

    async def _apply_batch(self, conn: asyncpg.Connection, batch: list[Delivery]) -> None:
        good = [d for d in batch if d.event is not None]
        refused: list[tuple[Delivery, RuleBroken]] = []
        retry: list[Delivery] = []
        done: list[Delivery] = []
        failed: list[tuple[Delivery, Exception]] = []
        async with conn.transaction():
            state = await Batch.load(conn, [d.event for d in good if d.event is not None])
            for delivery in good:
                assert delivery.event is not None
                try:
                    state.apply(delivery.event, delivery.stored_at, delivery.seq)
                    done.append(delivery)
                except NotYetKnown as exc:
                    if delivery.delivered < UNKNOWN_RETRIES:
                        retry.append(delivery)
                    else:
                        refused.append((delivery, exc))
                except RuleBroken as exc:
                    refused.append((delivery, exc))
                except (KeyError, TypeError, ValueError) as exc:
                    # A verified event the state machine cannot read must not block every
                    # later one: it is retried, then quarantined as poison.
                    failed.append((delivery, exc))
            await state.write(conn)
        for delivery in batch:
            if delivery.rejection is not None:
                await self._consumer.quarantine(
                    delivery, delivery.rejection.reason, str(delivery.rejection)
                )
        for delivery, refusal in refused:
            log.warning(
                "exchange.event.refused",
                event_id=delivery.envelope.event_id,
                reason=refusal.reason.value,
            )
            await self._consumer.quarantine(delivery, refusal.reason, str(refusal))
        for delivery in retry:
            await delivery.nak(delay=_unknown_delay(delivery.delivered))
        for delivery, error in failed:
            log.error("exchange.event.unreadable", event_id=delivery.envelope.event_id)
            await self._consumer.failed(delivery, error)
        for delivery in done:
            await delivery.ack()
            APPLIED.inc(delivery.envelope.subject.split(".")[3])

    async def fire_due(self, now: datetime | None = None) -> int:
        """Fire the due timers of documents whose senders' keys this home holds."""
        now = now or datetime.now(UTC)
        local = self._local_senders()
        if not local:
            return 0
        fired = 0
        async with self._pool.acquire() as conn, conn.transaction():
            due = await conn.fetch(
                "SELECT t.doc_id, t.kind, t.number FROM doc_timers t"
                " JOIN doc_documents d USING (doc_id)"
                " WHERE t.fired_at IS NULL AND t.due_at <= $1 AND d.sender = ANY($2)"
                " ORDER BY t.due_at LIMIT 200 FOR UPDATE OF t SKIP LOCKED",
                now,
                local,
            )
            for timer in due:
                doc = await load_document(conn, self._trust.schemas, timer["doc_id"])
                pending = [
                    r["recipient"]
                    for r in await conn.fetch(
                        "SELECT recipient FROM doc_recipients WHERE doc_id = $1"
                        " AND state IN ('sent', 'delivered') ORDER BY recipient",
                        timer["doc_id"],
                    )
                ]
                if pending and doc is not None:
                    try:
                        if timer["kind"] == "reminder":
                            env = receipts.reminder_notice(
                                self._trust, self._signer, doc, pending, timer["number"], now
                            )
                        else:
                            env = receipts.expiry_notice(
                                self._trust, self._signer, doc, pending, now
                            )
                    except (RegistryError, KeyStoreError) as exc:
                        # A sender revoked since it sent, or whose key left this machine, can
                        # no longer sign its notices; the timer is spent, the others go on.
                        log.warning("exchange.timer.unsigned", doc_id=doc.doc_id, error=str(exc))
                    else:
                        # Signed and published as the sender, through its own link in a
                        # federation: the sender's clock and the sender's stream.
                        publisher = await self._signer.publisher_for(doc.manifest.sender)
                        try:
                            await publisher.publish(env)
                        except Unpublishable as exc:
                            # Receivers would refuse it (the sender's key closed since, ...):
                            # like an unsigned one, the timer is spent and the others go on.
                            log.warning(
                                "exchange.timer.refused", doc_id=doc.doc_id, reason=exc.reason
                            )
                        else:
                            fired += 1
                            log.info("exchange.timer.fired", doc_id=doc.doc_id, kind=timer["kind"])
                await conn.execute(
                    "UPDATE doc_timers SET fired_at = $4"
                    " WHERE doc_id = $1 AND kind = $2 AND number = $3",
                    timer["doc_id"],
                    timer["kind"],
                    timer["number"],
                    now,
                )
        return fired

    async def _next_due(self) -> datetime | None:
        value: datetime | None = await self._pool.fetchval(
            "SELECT min(t.due_at) FROM doc_timers t JOIN doc_documents d USING (doc_id)"
            " WHERE t.fired_at IS NULL AND d.sender = ANY($1)",
            self._local_senders(),
        )
        return value

    def _local_senders(self) -> list[str]:
        try:
            return self._signer.keystore.participants()
        except Exception:  # no passphrase on this machine: it holds no sender's key
            return []


async def _release(batch: Sequence[Delivery]) -> None:
    """Ask for redelivery of a batch that was not applied (best effort: NATS may be away)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(*(d.nak() for d in batch), return_exceptions=True), 2.0
        )


def _unknown_delay(delivered: int) -> float:
    """How long a receipt whose document is not known yet waits before its next try.

    First a moment: across federated streams a receipt can overtake its manifest. Then longer
    than the ack wait, because the manifest may be held by a tracker that died before it
    applied it (a killed `govhub serve`), and only comes back once that wait runs out.
    """
    return 1.0 if delivered <= 1 else 1.5 * ACK_WAIT_S


def create(parts: Parts) -> ExchangeTracker:
    """Factory named in ``hub.serve.SERVICES``."""
    return ExchangeTracker(parts.pool, parts.trust, parts.bus, parts.signer)
