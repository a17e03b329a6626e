"""The approval tracker: case state in PostgreSQL from verified approval events, as a projection.

It reads `evt.*.*.approval.>` from the hub stream through one durable consumer (`approval`),
verifies every event like any receiver, checks it against its case (hub/approval/projection.py)
and applies it in a transaction. Events that break a case rule are quarantined with a typed
reason and recorded in `apr_refused`, never dropped. Several processes may share the work
(`govhub serve` and the `approval` commands, which catch up before they answer): each holds a
PostgreSQL advisory lock while it fetches and applies a batch, so events apply in stream order.

A county department's opinion reaches the hub through the county's stream, sourced by the hub;
its time is when the county stream stored it (read back by a direct get in the county's
JetStream domain), so an outage of the uplink is not charged to the reviewer. When the county
cannot answer (a rebuild long after, its stream aged out), the hub's storage time counts: a
later time, never an earlier one than the streams can show.

`rebuild` empties the tables and deletes the consumer: the next catch-up rebuilds the same state
from the stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import nats.errors
import nats.js.errors
import structlog

from hub.approval.casetypes import Config, load_config
from hub.approval.model import APPROVAL_FILTER, Kind, parse_case_subject
from hub.approval.projection import Batch
from hub.bus import jetstream
from hub.collaborators import Bus, Trust
from hub.consumer import Delivery
from hub.envelope import H_ID
from hub.errors import NotYetKnown, RuleBroken
from hub.federation.plan import county_stream
from hub.home import Settings
from hub.metrics import Counter
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.approval.tracker")

DURABLE = "approval"
# Any constant works; it only has to be the same for every approval tracker on a database.
_LOCK = 0x60_76_68_75_62_00_0A_01
UNKNOWN_RETRIES = 3
BATCH = 256
# Only a reviewer's own acts are timed by its unit's stream (docs/approval.md, "Clock rules").
_TIMED_AT_ORIGIN = (Kind.OPINION, Kind.MATERIAL_REQUESTED)

APPLIED = Counter("govhub_approval_events_total", "Approval events applied, by kind.", ("kind",))
REFUSED = Counter(
    "govhub_approval_refused_total", "Approval events quarantined, by reason.", ("reason",)
)


class ApprovalTracker:
    """Materialises case state from the hub stream (the projection)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        config: Config | None = None,
    ) -> None:
        self._pool = pool
        self._trust = trust
        self._bus = bus
        self.config = config or load_config(settings.home)
        self._consumer = bus.consumer(
            HUB_STREAM,
            DURABLE,
            [APPROVAL_FILTER],
            max_deliver=UNKNOWN_RETRIES + 3,
            # As the exchange tracker: no backoff list, so an event that overtook its case is
            # redelivered after the short delay its NAK asks for.
            backoff=(),
            max_ack_pending=4 * BATCH,
        )

    async def catch_up(self) -> int:
        """Apply every pending approval event; returns how many were handled."""
        total = 0
        # Without lingering: a catch-up takes what the stream holds now and returns at once
        # when nothing is pending (events NAK'ed for a retry come in a later catch-up).
        while handled := await self.step(timeout=1.0, linger=False):
            total += handled
        return total

    async def stop(self) -> None:
        """Release the consumer (idempotent)."""
        await self._consumer.stop()

    async def step(self, timeout: float, *, linger: bool = True) -> int:
        """Fetch and apply one batch under the advisory lock; returns events handled."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
            try:
                batch = await self._consumer.fetch(BATCH, timeout=timeout, linger=linger)
                if not batch:
                    return 0
                await self._apply_batch(conn, batch)
                return len(batch)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)

    async def _apply_batch(self, conn: asyncpg.Connection, batch: list[Delivery]) -> None:
        good = [d for d in batch if d.event is not None]
        origins = await self._origin_times(good)
        refused: list[tuple[Delivery, RuleBroken]] = []
        retry: list[Delivery] = []
        done: list[Delivery] = []
        failed: list[tuple[Delivery, Exception]] = []
        async with conn.transaction():
            state = Batch(
                self.config.clock,
                self._trust.scenario.operator,
                lambda p: self._trust.participants.get(p) is not None,
            )
            await state.load(conn, [d.event for d in good if d.event is not None])
            for delivery in good:
                assert delivery.event is not None
                try:
                    state.apply(
                        delivery.event, delivery.stored_at, delivery.seq, origins.get(delivery.seq)
                    )
                    done.append(delivery)
                except NotYetKnown as exc:
                    if delivery.delivered < UNKNOWN_RETRIES:
                        retry.append(delivery)
                    else:
                        refused.append((delivery, exc))
                except RuleBroken as exc:
                    refused.append((delivery, exc))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    # A verified event the state machine cannot read must not block every
                    # later one: it is retried, then quarantined as poison.
                    failed.append((delivery, exc))
            await state.write(conn)
            if refused:
                await conn.executemany(
                    "INSERT INTO apr_refused (stream_seq, event_id, case_id, source, subject,"
                    " stored_at, reason, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
                    " ON CONFLICT DO NOTHING",
                    [
                        (
                            d.seq,
                            d.envelope.event_id,
                            p.case_id if (p := parse_case_subject(d.envelope.subject)) else None,
                            d.event.fields.source if d.event else "",
                            d.envelope.subject,
                            d.stored_at,
                            exc.reason.value,
                            str(exc),
                        )
                        for d, exc in refused
                    ],
                )
        for delivery in batch:
            if delivery.rejection is not None:
                await self._consumer.quarantine(
                    delivery, delivery.rejection.reason, str(delivery.rejection)
                )
        for delivery, refusal in refused:
            log.warning(
                "approval.event.refused",
                event_id=delivery.envelope.event_id,
                reason=refusal.reason.value,
            )
            REFUSED.inc(refusal.reason.value)
            await self._consumer.quarantine(delivery, refusal.reason, str(refusal))
        for delivery in retry:
            await delivery.nak(delay=1.0)
        for delivery, error in failed:
            log.error(
                "approval.event.unreadable",
                event_id=delivery.envelope.event_id,
                error=f"{type(error).__name__}: {error}",
            )
            await self._consumer.failed(delivery, error)
        for delivery in done:
            await delivery.ack()
            APPLIED.inc(delivery.envelope.subject.split(".")[4])

    async def _origin_times(
        self, deliveries: Sequence[Delivery]
    ) -> dict[int, tuple[datetime, str]]:
        """When the county stream of each sourced reviewer act stored it, by hub sequence."""
        federation = self._bus.federation
        if federation is None:
            return {}
        domains = {county_stream(n.unit): n.domain for n in federation.plan.counties}
        found: dict[int, tuple[datetime, str]] = {}
        for d in deliveries:
            parsed = parse_case_subject(d.envelope.subject)
            if d.origin is None or parsed is None or parsed.kind not in _TIMED_AT_ORIGIN:
                continue
            stream, seq = d.origin
            domain = domains.get(stream)
            if domain is None:
                continue
            try:
                msg = await jetstream(self._bus.nc, domain=domain).get_msg(
                    stream, seq=seq, direct=True
                )
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                log.warning("approval.origin.unreadable", stream=stream, seq=seq, error=str(exc))
                continue
            # The origin message must be this very event: a county stream rebuilt under the
            # same name could hold another message at that sequence.
            if (msg.headers or {}).get(H_ID) != d.envelope.event_id or msg.time is None:
                continue
            found[d.seq] = (min(msg.time, d.stored_at), stream)
        return found


async def catch_up(
    pool: asyncpg.Pool,
    settings: Settings,
    trust: Trust,
    bus: Bus,
    config: Config | None = None,
) -> int:
    """Bring the projection up to date with the hub stream (for commands and the demo)."""
    tracker = ApprovalTracker(pool, settings, trust, bus, config)
    try:
        return await tracker.catch_up()
    finally:
        await tracker.stop()


async def rebuild(pool: asyncpg.Pool, bus: Bus) -> None:
    """Forget the projection: empty its tables and delete its consumer (catch up rebuilds)."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        try:
            await conn.execute(
                "TRUNCATE apr_events, apr_refused, apr_material, apr_assignments, apr_cases"
            )
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await jetstream(bus.nc).delete_consumer(HUB_STREAM, DURABLE)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
