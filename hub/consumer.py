"""Durable pull consumption where every message is verified before anyone sees it.

A `Delivery` carries either a `VerifiedEvent` or the `RejectedEvent` that refused it. Refused
messages are copied to the quarantine stream with their typed reason before they are acked,
so nothing is silently dropped; a message whose handling keeps failing is quarantined as
`poison` once it has been delivered `max_deliver` times.

Failures of nats-py (its own exceptions, and the builtin TimeoutError it raises when the server
does not answer) never leave this module: every public method raises them as ServerUnavailable
(an outage, retryable) or ServerError, naming what it was doing (hub.outage.nats_failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub import pull
from hub.bus import Publisher, jetstream, quarantine_envelope
from hub.envelope import Envelope
from hub.errors import Reason, RejectedEvent
from hub.outage import nats_failure
from hub.subjects import check_filter
from hub.verifier import VerifiedEvent, Verifier

log = structlog.get_logger("hub.consumer")

ACK_WAIT_S = 30.0
"""Seconds before JetStream redelivers what a consumer without a backoff list did not ack."""
DEFAULT_BACKOFF = (ACK_WAIT_S, 60.0, 120.0, 600.0)
"""Redelivery steps of a consumer that names none. With a backoff list JetStream takes its
first step as the ack wait, so the first step is the ack wait itself: a shorter one (it was
1 s) redelivers a batch still being verified or acked on a loaded machine, or held across a
hub restart, and the reader gets those events twice."""


@dataclass(slots=True)
class Delivery:
    """One message handed out by a consumer, with its verdict and ack controls."""

    msg: Msg
    envelope: Envelope
    event: VerifiedEvent | None
    rejection: RejectedEvent | None
    stream: str
    seq: int
    delivered: int
    stored_at: datetime
    origin: tuple[str, int] | None

    async def ack(self) -> None:
        """Acknowledge: the consumer is done with this message for good."""
        try:
            await self.msg.ack()
        except nats.errors.Error as exc:
            raise nats_failure(exc, f"acknowledge message {self.seq} of {self.stream}") from exc

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery after `delay` seconds (the consumer's backoff if None)."""
        try:
            await self.msg.nak(delay=delay)
        except nats.errors.Error as exc:
            raise nats_failure(exc, f"hand back message {self.seq} of {self.stream}") from exc


def parse_source_header(value: str | None) -> tuple[str, int] | None:
    """Origin stream and sequence from a `Nats-Stream-Source` header of a sourced message."""
    if not value:
        return None
    parts = value.split(" ")
    try:
        return parts[0].split(":", 1)[0], int(parts[1])
    except (IndexError, ValueError):
        return None


class Consumer:
    """A pull consumer on one stream that verifies every message against the registry."""

    def __init__(
        self,
        nc: NatsClient,
        verifier: Verifier,
        publisher: Publisher,
        *,
        stream: str,
        durable: str | None,
        subjects: Sequence[str] = (),
        deliver_new: bool = False,
        max_deliver: int = 10,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        ack_wait: float = ACK_WAIT_S,
        max_ack_pending: int = 20_000,
        quarantine: bool = True,
        domain: str | None = None,
    ) -> None:
        # `domain`: the JetStream domain holding the stream, when it is not the connected
        # node's own (a county participant reading the hub's stream uses `pref`).
        # `ack_wait` applies without a backoff list (with one, its first step is the wait).
        self._nc = nc
        self._js = jetstream(nc, domain=domain)
        self._verifier = verifier
        self._publisher = publisher
        self.stream = stream
        self.durable = durable
        for subject in subjects:
            check_filter(subject)
        self._subjects = list(subjects)
        self._deliver_new = deliver_new
        self.max_deliver = max_deliver
        self._backoff = list(backoff)[: max(max_deliver - 1, 1)]
        self._ack_wait = ack_wait
        self._max_ack_pending = max_ack_pending
        self._quarantine = quarantine
        self._start_seq: int | None = None
        self._sub: Any = None

    async def start(self) -> None:
        """Create (or bind to) the consumer; idempotent."""
        if self._sub is not None:
            return
        policy = DeliverPolicy.NEW if self._deliver_new else DeliverPolicy.ALL
        if self._start_seq is not None:
            policy = DeliverPolicy.BY_START_SEQUENCE
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=policy,
            opt_start_seq=self._start_seq,
            max_deliver=self.max_deliver,
            backoff=self._backoff,
            ack_wait=self._backoff[0] if self._backoff else self._ack_wait,
            max_ack_pending=self._max_ack_pending,
            max_waiting=64,
        )
        if len(self._subjects) > 1:
            config.filter_subjects = self._subjects
        if self.durable is None:
            config.inactive_threshold = 60.0
        subject = self._subjects[0] if len(self._subjects) == 1 else ""
        try:
            self._sub = await self._js.pull_subscribe(
                subject, durable=self.durable, stream=self.stream, config=config
            )
        except (nats.errors.Error, TimeoutError) as exc:
            # Creating a consumer is a JetStream API call: right after a stream leader is
            # lost it can time out, a retryable outage rather than a nats-py exception.
            raise nats_failure(exc, f"create {self._name()}") from exc

    def _name(self) -> str:
        who = f"consumer {self.durable}" if self.durable else "an ephemeral consumer"
        return f"{who} on stream {self.stream}"

    async def rewind(self, applied: int) -> int:
        """Re-create this durable consumer to deliver again, in stream order, from the first
        message it never had acknowledged (at the latest from sequence ``applied + 1``).

        For a single writer that keeps its position in PostgreSQL and applies in stream order
        (the directory): what a previous holder fetched and never acked (it was killed, or
        lost NATS) would otherwise come back only after the ack wait, behind newer messages
        the writer has applied by then, and be skipped as already applied. Returns the
        sequence delivery starts from.
        """
        assert self.durable is not None, "only a durable consumer has a position to rewind"
        floor: int | None = None
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await self._js.consumer_info(self.stream, self.durable)
                floor = int(info.ack_floor.stream_seq)
            await self.stop()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.delete_consumer(self.stream, self.durable)
        except (nats.errors.Error, TimeoutError) as exc:
            raise nats_failure(exc, f"rewind {self._name()}") from exc
        self._start_seq = applied + 1 if floor is None else min(floor, applied) + 1
        await self.start()
        return self._start_seq

    async def fetch(
        self, batch: int = 256, timeout: float = 1.0, *, linger: bool = True
    ) -> list[Delivery]:
        """Up to `batch` deliveries; [] if none arrive within `timeout` seconds.

        `linger=False` returns what the server holds now without waiting for new messages.
        """
        if self._sub is None:
            await self.start()
        # pull.fetch returns [] when nothing arrived in time and raises govhub errors only.
        msgs = await pull.fetch(self._sub, batch, timeout, linger=linger)
        return [self._deliver(m) for m in msgs]

    def _deliver(self, msg: Msg) -> Delivery:
        meta = msg.metadata
        headers = dict(msg.headers or {})
        env = Envelope(msg.subject, headers, msg.data)
        stored_at = meta.timestamp
        event: VerifiedEvent | None = None
        rejection: RejectedEvent | None = None
        try:
            event = self._verifier.verify(env, stored_at)
        except RejectedEvent as exc:
            rejection = exc
        return Delivery(
            msg=msg,
            envelope=env,
            event=event,
            rejection=rejection,
            stream=meta.stream,
            seq=meta.sequence.stream,
            delivered=meta.num_delivered,
            stored_at=stored_at,
            origin=parse_source_header(headers.get("Nats-Stream-Source")),
        )

    async def quarantine(self, delivery: Delivery, reason: Reason, detail: str) -> None:
        """Copy a delivery to the quarantine stream with its reason, then ack it."""
        if self._quarantine:
            copy = quarantine_envelope(
                delivery.envelope, reason, detail, stream=delivery.stream, seq=delivery.seq
            )
            await self._publisher.publish(copy)
        log.info(
            "consumer.quarantined",
            stream=delivery.stream,
            seq=delivery.seq,
            event_id=delivery.envelope.event_id,
            reason=reason.value,
        )
        await delivery.ack()

    async def fetch_verified(self, batch: int = 256, timeout: float = 1.0) -> list[Delivery]:
        """Like fetch, but refused messages are quarantined and acked, not returned."""
        good = []
        for delivery in await self.fetch(batch, timeout):
            if delivery.rejection is not None:
                await self.quarantine(delivery, delivery.rejection.reason, str(delivery.rejection))
            else:
                good.append(delivery)
        return good

    async def failed(self, delivery: Delivery, error: BaseException) -> None:
        """Handling failed: retry with backoff, or quarantine as poison on the last delivery."""
        if delivery.delivered >= self.max_deliver:
            await self.quarantine(
                delivery,
                Reason.POISON,
                f"handling failed {delivery.delivered} times; last error: {error}",
            )
        else:
            index = min(delivery.delivered - 1, len(self._backoff) - 1)
            await delivery.nak(delay=self._backoff[index] if self._backoff else None)

    async def pending(self) -> int:
        """Messages the consumer has not yet been delivered."""
        if self._sub is None:
            await self.start()
        try:
            info = await self._sub.consumer_info()
        except (nats.errors.Error, TimeoutError) as exc:
            raise nats_failure(exc, f"count the pending events of {self._name()}") from exc
        return int(info.num_pending or 0)

    async def stop(self, *, delete: bool = False) -> None:
        """Unsubscribe (idempotent); `delete` also removes a durable consumer."""
        if self._sub is None:
            return
        sub, self._sub = self._sub, None
        with contextlib.suppress(Exception):
            await pull.hand_back(sub)  # redelivered now to whoever fetches next
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if delete and self.durable:
            try:
                with contextlib.suppress(nats.js.errors.NotFoundError, asyncio.TimeoutError):
                    await self._js.delete_consumer(self.stream, self.durable)
            except nats.errors.Error as exc:
                raise nats_failure(exc, f"delete {self._name()}") from exc
