"""The hub's ends of an adapter pipeline: a Sink that signs and publishes, a Source that verifies.

`EventSink` turns mapped records into events of one participant: encoded with the schema the
record names, sealed with the participant's key, published, and DONE only once JetStream has
acknowledged it. The event id is derived from the record's origin
(hub.integration.connector.derive_event_id), so a record handed out twice is stored once.
`EventSource` is a durable, verifying consumer on the hub stream: a department sink only ever
sees events whose signature checked out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog

from hub.bus import PubAck, Publisher
from hub.collaborators import Bus, Signer, Trust
from hub.consumer import Consumer
from hub.consumer import Delivery as BusDelivery
from hub.envelope import Envelope, seal
from hub.errors import (
    ConfigError,
    InputError,
    KeyStoreError,
    PublishError,
    Reason,
    RegistryError,
    Retryable,
    SchemaError,
    ServerUnavailable,
    StreamFull,
    Unpublishable,
)
from hub.integration.connector import Check, Outcome, Record, derive_event_id
from hub.subjects import check_subject, default_subject, may_publish
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.integration.bridge")

SIGNER_REASONS = frozenset(
    {
        Reason.UNKNOWN_PARTICIPANT,
        Reason.UNKNOWN_KEY,
        Reason.KEY_NOT_VALID,
        Reason.PARTICIPANT_REVOKED,
    }
)
"""Refusals that are about the signing participant and its key rather than the record."""


class EventSink:
    """Signs records as events of `participant` and publishes them (hub side of `to_hub`)."""

    def __init__(
        self,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        participant: str,
        *,
        ack_timeout: float = 5.0,
        attempts: int = 3,
    ) -> None:
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self.participant = participant
        self._options: dict[str, Any] = {"ack_timeout": ack_timeout, "attempts": attempts}
        # Replaced in start() by one on the participant's own link in a federation. Either
        # way it refuses, before sending, what the receivers would refuse.
        self._publisher = Publisher(bus.nc, guard=trust.verifier.check_outgoing, **self._options)
        self._linked = False

    def _check_signer(self) -> str:
        """Check the participant may sign here; returns its key id."""
        sender = self._trust.participants.get(self.participant)
        if sender is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        if sender.status != "active":
            raise RegistryError(f"{self.participant} is revoked and can no longer publish")
        return self._signer.keystore.current(self.participant).key_id

    async def start(self) -> None:
        """Fail fast when this machine cannot sign as the participant; in a federation,
        publish through its own link so its server permissions apply and its county's
        stream acknowledges while the uplink is down."""
        self._check_signer()
        if not self._linked:
            link = await self._bus.link(self.participant)
            if link is not None:
                await self._publisher.close()
                self._publisher = link.new_publisher(**self._options)
            self._linked = True

    async def stop(self) -> None:
        """Stop waiting for acknowledgements (idempotent)."""
        await self._publisher.close()

    async def check(self) -> Check:
        """Whether this machine can sign as the participant and NATS answers."""
        kid = self._check_signer()
        if not self._bus.nc.is_connected:
            return Check(f"signs as {self.participant}/{kid}; NATS is not connected")
        return Check(f"signs as {self.participant}/{kid}, publishes to {self._bus.url}")

    def event_id(self, record: Record) -> str:
        """The event id a record becomes: its own, or derived from its origin key and time."""
        return record.id or derive_event_id(
            self.participant, record.key, record.time or datetime.now(UTC)
        )

    def _subject(self, record: Record, type_name: str, allowed: dict[str, str]) -> str:
        """The record's subject, checked once per batch and subject (as Signer.seal checks it)."""
        subject = record.subject or default_subject(self.participant, type_name)
        if subject not in allowed:
            check_subject(subject)
            if not may_publish(self.participant, subject):
                raise ConfigError(
                    f"{self.participant} may not publish on {subject}; its subjects are "
                    f"<channel>.{self.participant}.>"
                )
            allowed[subject] = subject
        return subject

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """Seal and publish each record; DONE carries the event id and stream position.

        The checks `Signer.seal` makes per event (sender registered and active, key, subject
        owned) are made once per batch here: at thousands of rows a second they showed.
        """
        try:
            self._check_signer()
            key = self._signer.keystore.current(self.participant)
        except (RegistryError, KeyStoreError) as exc:
            return [Outcome.retry(str(exc)) for _ in records]
        outcomes: list[Outcome | None] = [None] * len(records)
        sealed = []
        subjects: dict[str, str] = {}
        for index, record in enumerate(records):
            event_id = self.event_id(record)
            try:
                schema = self._trust.schemas.by_name(record.kind)
                subject = self._subject(record, schema.name, subjects)
                body = schema.encode(record.value)
            except (InputError, SchemaError, ConfigError) as exc:
                outcomes[index] = Outcome.reject(
                    str(exc), reason=Reason.UNMAPPABLE, event_id=event_id
                )
                continue
            sealed.append((index, seal(key, subject, schema.name, body, event_id=event_id)))
        for index, outcome in await self._publish(sealed):
            outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def _publish(self, sealed: list[tuple[int, Envelope]]) -> list[tuple[int, Outcome]]:
        """Publish sealed events; an outcome for each, by the index of its record.

        An event a receiver would quarantine comes back as Unpublishable: for a reason of the
        record (too large, an unregistered schema, ...) a REJECT, so the record is
        dead-lettered at its origin (a webhook caller is told why) instead of acknowledged;
        for a reason of the signer (SIGNER_REASONS) a RETRY. The rest are published.
        """
        envs = [env for _, env in sealed]
        results: list[PubAck | BaseException]
        try:
            # One atomic batch per unit: one server sync for the whole batch, not one per event.
            results = list(await self._publisher.publish_each(envs))
        except (PublishError, ServerUnavailable) as exc:
            if isinstance(exc, Retryable | StreamFull):
                results = [exc] * len(envs)
            else:
                # Something in the batch was refused: one by one, so only that one fails.
                results = list(
                    await asyncio.gather(
                        *(self._publisher.publish(env) for env in envs), return_exceptions=True
                    )
                )
        return [
            (index, _outcome(env.event_id, result))
            for (index, env), result in zip(sealed, results, strict=True)
        ]


def _outcome(event_id: str, result: PubAck | BaseException) -> Outcome:
    if isinstance(result, PubAck):
        return Outcome.done(event_id=event_id, ref=f"{result.stream}#{result.seq}")
    if isinstance(result, Unpublishable):
        if result.reason in SIGNER_REASONS:
            # The signer is at fault, not the record: it waits, as when the participant's
            # key is missing here, until an operator restores a valid key.
            return Outcome.retry(str(result))
        return Outcome.reject(str(result), reason=result.reason, event_id=event_id)
    if isinstance(result, Retryable | StreamFull):
        # Not the record's fault: NATS is away or the stream refuses new data until an
        # operator acts. Either way the record waits at its origin.
        return Outcome.unavailable(str(result))
    if isinstance(result, PublishError):
        return Outcome.retry(str(result))
    if isinstance(result, asyncio.CancelledError):
        raise result
    return Outcome.retry(f"{type(result).__name__}: {result}")


class EventDelivery:
    """A verified hub event handed to a department sink."""

    def __init__(self, delivery: BusDelivery) -> None:
        assert delivery.event is not None
        event = delivery.event
        self._delivery = delivery
        self._record = Record(
            key=event.event_id,
            id=event.event_id,
            kind=event.schema.name,
            value=event.record,
            time=event.fields.time,
            subject=event.subject,
            headers={"source": event.fields.source, "stream_seq": str(delivery.seq)},
            envelope=delivery.envelope,
        )

    @property
    def record(self) -> Record:
        """The event as a record: key and id are the event id, value the decoded payload."""
        return self._record

    async def ack(self, outcome: Outcome) -> None:
        """Done with the event (delivered, or dead-lettered by the runtime)."""
        await self._delivery.ack()

    async def nak(self, delay: float) -> None:
        """Redeliver after `delay` seconds."""
        await self._delivery.nak(delay=delay)


class EventSource:
    """Verified events on some subjects, read with a durable cursor (hub side of `from_hub`)."""

    dead_letters: ClassVar[bool] = True

    def __init__(
        self,
        trust: Trust,
        bus: Bus,
        participant: str,
        subjects: Sequence[str],
        durable: str,
        *,
        batch: int = 256,
        ack_wait: float = 60.0,
    ) -> None:
        self._trust = trust
        self._bus = bus
        self.participant = participant
        self._subjects = list(subjects)
        self._durable = durable
        self._batch = batch
        self._ack_wait = ack_wait
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        """Bind the durable consumer (created on first use, resumed afterwards)."""
        if self._consumer is not None:
            return
        if self._trust.participants.get(self.participant) is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        # Redelivery timing belongs to the pipeline (it naks with its own backoff), so the
        # consumer only needs an ack wait longer than any batch and no delivery limit.
        consumer = self._bus.consumer(
            HUB_STREAM,
            self._durable,
            self._subjects,
            max_deliver=-1,
            backoff=(self._ack_wait,),
        )
        await consumer.start()
        self._consumer = consumer

    async def stop(self) -> None:
        """Unsubscribe; the durable cursor stays for the next run."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def check(self) -> Check:
        """Whether the stream exists and the participant is registered."""
        if self._trust.participants.get(self.participant) is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        info = await self._bus.nc.jetstream().stream_info(HUB_STREAM)
        return Check(
            f"reads {', '.join(self._subjects)} from {HUB_STREAM} "
            f"({info.state.messages} events) as {self.participant}"
        )

    async def deliveries(self) -> AsyncIterator[EventDelivery]:
        """Verified events; refused ones are quarantined by the consumer and never yielded."""
        await self.start()
        while self._consumer is not None:
            for delivery in await self._consumer.fetch_verified(self._batch, timeout=1.0):
                yield EventDelivery(delivery)
