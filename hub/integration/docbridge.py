"""The hub's ends of a document pipeline: send files through the exchange, receive them from it.

`DocumentSink` sends each record's file with `hub.exchange.send.Sender` as a signed official
document (claim check in the sender's store, then the DocumentSent manifest); the exchange
keeps a resume state per file path, so a file handed out again after a crash is resumed as the
same document, not sent twice. `DocumentSource` is the recipient side: every verified
DocumentSent naming the participant is fetched and verified into the instance's staging folder
and handed to the department sink (an inbox folder); the signed delivery receipt is sent only
when the sink has stored the file (the record's `ack`), so the sender's 送达 means the document
is where the office reads it. Run either this or the exchange agent for a participant.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog

from hub.collaborators import Bus, Signer, Trust
from hub.consumer import Consumer
from hub.consumer import Delivery as BusDelivery
from hub.errors import (
    ExchangeError,
    FileChanged,
    GovhubError,
    InputError,
    RegistryError,
    Retryable,
    Unpublishable,
)
from hub.exchange.fetch import Fetcher
from hub.exchange.model import (
    DEFAULT_CHUNK_SIZE,
    SENT_SCHEMA,
    Classification,
    Document,
    Manifest,
    StoreRef,
    Urgency,
)
from hub.exchange.receipts import delivery_receipt
from hub.exchange.send import Sender, SendRequest
from hub.home import Settings
from hub.integration.connector import Check, Outcome, Record, Verdict
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.integration.docbridge")

DOCUMENT = "document"
"""The `kind` of a record that is a document to send (see adapters/office.py)."""


class DocumentSink:
    """Sends records as official documents of `participant` through the exchange."""

    def __init__(
        self, settings: Settings, trust: Trust, bus: Bus, signer: Signer, participant: str
    ) -> None:
        self._trust = trust
        self._signer = signer
        self.participant = participant
        self._sender = Sender(settings, trust, bus, signer)

    async def start(self) -> None:
        """Fail fast when this machine cannot sign as the participant."""
        if self._trust.participants.get(self.participant) is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        self._signer.keystore.current(self.participant)

    async def stop(self) -> None:
        """Nothing to release."""

    async def check(self) -> Check:
        """Whether this machine can send documents as the participant."""
        await self.start()
        return Check(f"sends documents as {self.participant} through the exchange")

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """Send each document (concurrently); DONE carries the document id."""
        return list(await asyncio.gather(*(self._one(r) for r in records)))

    async def _one(self, record: Record) -> Outcome:
        value = record.value
        if record.content is None:
            return Outcome.reject("the record has no file to send")
        try:
            request = SendRequest(
                sender=self.participant,
                recipients=tuple(value["recipients"]),
                path=record.content,
                title=str(value["title"]),
                doc_number=str(value.get("doc_number") or ""),
                urgency=Urgency(value.get("urgency") or "normal"),
                classification=Classification(value.get("classification") or "internal"),
                deadline=value.get("deadline"),
            )
            result = await self._sender.send(request)
        except Unpublishable as exc:
            # Receivers would refuse its announcement: kept with their reason, not retried.
            return Outcome.reject(str(exc), reason=exc.reason)
        except (RegistryError, InputError, KeyError, ValueError) as exc:
            return Outcome.reject(str(exc))
        except FileChanged as exc:
            return Outcome.retry(str(exc))
        except GovhubError as exc:
            if isinstance(exc, Retryable):
                return Outcome.unavailable(str(exc))
            return Outcome.retry(str(exc))
        return Outcome.done(event_id=result.manifest_event_id, ref=f"doc {result.doc_id}")


class DocumentDelivery:
    """A fetched document waiting for the department sink."""

    def __init__(
        self, source: DocumentSource, delivery: BusDelivery, doc: Document | None, record: Record
    ) -> None:
        self._source = source
        self._delivery = delivery
        self._doc = doc
        self._record = record

    @property
    def record(self) -> Record:
        """The manifest as a record; `content` is the verified file in staging."""
        return self._record

    async def ack(self, outcome: Outcome) -> None:
        """Sign the delivery receipt once the sink stored the file, then settle the event."""
        if outcome.verdict is Verdict.DONE and self._doc is not None:
            await self._source.send_receipt(
                self._doc, self._record.headers.get("encryption_key_id") or None
            )
            log.info(
                "docbridge.receipt.sent",
                doc_id=self._doc.doc_id,
                recipient=self._source.participant,
            )
        await self._delivery.ack()
        if self._record.content is not None:
            self._record.content.unlink(missing_ok=True)

    async def nak(self, delay: float) -> None:
        """Fetch and hand out again after `delay` seconds."""
        await self._delivery.nak(delay=delay)


class DocumentSource:
    """Documents addressed to `participant`, fetched and verified, in the order they were sent."""

    dead_letters: ClassVar[bool] = True

    def __init__(
        self,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        participant: str,
        durable: str,
        staging: Path,
    ) -> None:
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self.participant = participant
        self.durable = durable
        self._staging = staging / "staging"
        self._consumer: Consumer | None = None
        self._fetcher = Fetcher(trust, bus, signer, window=4)

    async def send_receipt(self, doc: Document, encryption_key_id: str | None) -> None:
        """Sign and publish the delivery receipt of a document the department sink stored."""
        env = delivery_receipt(
            self._trust,
            self._signer,
            doc,
            self.participant,
            encryption_key_id=encryption_key_id,
            stored_at=datetime.now(UTC),
            stored_by=f"adapter:{self.durable}",
        )
        await (await self._signer.publisher_for(self.participant)).publish(env)

    async def start(self) -> None:
        """Bind the durable consumer of DocumentSent events; idempotent."""
        if self._consumer is not None:
            return
        if self._trust.participants.get(self.participant) is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        self._signer.keystore.current(self.participant)
        self._staging.mkdir(parents=True, exist_ok=True)
        consumer = self._bus.consumer(
            HUB_STREAM, self.durable, ["doc.*.*.sent.*"], max_deliver=-1, backoff=(300.0,)
        )
        await consumer.start()
        self._consumer = consumer

    async def stop(self) -> None:
        """Unsubscribe; the durable cursor stays."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def check(self) -> Check:
        """Whether the participant is registered and this machine holds its keys."""
        if self._trust.participants.get(self.participant) is None:
            raise RegistryError(f"{self.participant} is not a registered participant")
        self._signer.keystore.current(self.participant)
        return Check(f"receives documents addressed to {self.participant}")

    async def deliveries(self) -> AsyncIterator[DocumentDelivery]:
        """Each document for the participant, fetched and verified into staging."""
        await self.start()
        while self._consumer is not None:
            for delivery in await self._consumer.fetch_verified(16, timeout=1.0):
                handed = await self._prepare(delivery)
                if handed is not None:
                    yield handed

    async def _prepare(self, delivery: BusDelivery) -> DocumentDelivery | None:
        event = delivery.event
        assert event is not None
        if event.schema.name != SENT_SCHEMA:
            await delivery.ack()
            return None
        manifest = Manifest.from_record(event.record)
        if self.participant not in manifest.recipients:
            await delivery.ack()  # not addressed to us: nothing to do, nothing to keep
            return None
        doc = Document(event.envelope, manifest, event.fields.time)
        value = describe(manifest)
        headers = {"source": manifest.sender}
        content: Path | None = self._staging / f"{manifest.doc_id}.part-of-inbox"
        assert content is not None
        try:
            result = await self._fetcher.fetch(doc, self.participant, content, receipt=False)
        except ExchangeError as exc:
            if isinstance(exc, Retryable):
                await delivery.nak(delay=5.0)
                return None
            # The mapping refuses a record carrying this, so it is dead-lettered with the
            # document id and why: the office sees it in quarantine, the sender as undelivered.
            value["fetch_error"] = str(exc)
            content = None
        else:
            headers["encryption_key_id"] = result.encryption_key_id or ""
        record = Record(
            key=manifest.doc_id,
            id=event.event_id,
            value=value,
            kind=SENT_SCHEMA,
            time=event.fields.time,
            subject=event.subject,
            headers=headers,
            content=content,
            envelope=event.envelope,
        )
        return DocumentDelivery(self, delivery, doc, record)


def describe(manifest: Manifest) -> dict[str, Any]:
    """The manifest as a JSON-friendly summary (what an inbox sidecar shows)."""
    return {
        "doc_id": manifest.doc_id,
        "title": manifest.title,
        "doc_number": manifest.doc_number,
        "sender": manifest.sender,
        "recipients": list(manifest.recipients),
        "file_name": manifest.file_name,
        "media_type": manifest.media_type,
        "size": manifest.size,
        "sha256": manifest.sha256.hex(),
        "classification": manifest.classification.value,
        "urgency": manifest.urgency.value,
        "deadline": manifest.deadline,
    }


SAMPLE_DOC_ID = "01900000-0000-7000-8000-000000000000"


def received_sample(sent: Record, sender: str) -> Record:
    """What `DocumentSource` would hand a from_hub mapping for the document `sent` describes.

    `sent` is what a to_hub mapping makes of a file (the DocumentSink's input); `govhub adapter
    check` maps the result to show a from_hub instance's sample in the shape it really gets.
    """
    value = sent.value
    manifest = Manifest(
        doc_id=SAMPLE_DOC_ID,
        title=str(value["title"]),
        sender=sender,
        recipients=tuple(str(r) for r in value["recipients"]),
        file_name=str(value["file_name"]),
        media_type=mimetypes.guess_type(str(value["file_name"]))[0] or "application/octet-stream",
        size=int(value["size"]),
        sha256=bytes.fromhex(str(value["sha256"])),
        chunk_size=DEFAULT_CHUNK_SIZE,
        chunk_count=1,
        chunk_list_sha256=b"",
        store=StoreRef("", "", ""),
        classification=Classification(value.get("classification") or "internal"),
        urgency=Urgency(value.get("urgency") or "normal"),
        doc_number=str(value.get("doc_number") or ""),
        deadline=value.get("deadline"),
    )
    return Record(
        key=SAMPLE_DOC_ID,
        id=SAMPLE_DOC_ID,
        value=describe(manifest),
        kind=SENT_SCHEMA,
        time=sent.time,
        headers={"source": sender},
    )
