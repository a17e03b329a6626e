"""The recipient agent: fetches documents addressed to local participants and signs delivery.

Without it, a recipient's delivery receipt is signed when a person runs `govhub doc fetch`
(or `govhub doc inbox --deliver`). With it (`govhub serve` with GOVHUB_EXCHANGE_AGENT set to
the participant ids this machine receives for, `SERVICES["exchange-agent"]`), every
DocumentSent naming one of them is fetched, verified and stored under
`<home>/inbox/<participant>/<doc_id>-<name>` and the delivery receipt follows at once. It reads
manifests from the stream through its own durable consumer, so a recipient that was offline
for a day gets everything it missed when it comes back, in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web

from hub.collaborators import Bus, Parts, Signer, Trust
from hub.consumer import Delivery
from hub.errors import GovhubError, Retryable
from hub.exchange.fetch import Fetcher
from hub.exchange.model import SENT_SCHEMA, Document, Manifest, safe_file_name
from hub.home import Settings
from hub.intake import Intake
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.exchange.agent")

AGENT_ENV = "GOVHUB_EXCHANGE_AGENT"


def inbox_path(settings: Settings, participant: str, doc_id: str, file_name: str) -> Path:
    """Where the agent stores a participant's copy of a document."""
    return settings.home.root / "inbox" / participant / f"{doc_id}-{safe_file_name(file_name)}"


@dataclass(frozen=True)
class Delivered:
    """One delivery the agent made (or found already made)."""

    doc_id: str
    recipient: str
    path: Path
    receipt_event_id: str


class RecipientAgent:
    """Delivers documents for a fixed set of local participants."""

    name = "exchange-agent"

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        participants: Sequence[str] | None = None,
        *,
        concurrency: int = 16,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._signer = signer
        chosen = participants
        if chosen is None:
            chosen = [p for p in os.environ.get(AGENT_ENV, "").split(",") if p.strip()]
        self.participants = sorted({p.strip() for p in chosen})
        digest = hashlib.sha256(",".join(self.participants).encode()).hexdigest()[:12]
        # No backoff list, so ack_wait is 30 s: a batch of large documents takes longer than
        # the default first backoff (1 s) and would be redelivered while still being fetched.
        self._consumer = bus.consumer(
            HUB_STREAM, f"exchange_agent_{digest}", ["doc.*.*.sent.*"], max_deliver=20, backoff=()
        )
        self._limit = asyncio.Semaphore(concurrency)
        self._fetcher = Fetcher(trust, bus, signer, window=4)
        self._folders: set[str] = set()
        self.intake = Intake()

    def routes(self) -> Sequence[web.RouteDef]:
        """No HTTP routes."""
        return []

    def stop_intake(self) -> None:
        """Fetch no more documents; `run()` returns once the batch in hand is delivered."""
        self.intake.close()

    async def run(self) -> None:
        """Deliver new documents until cancelled or `stop_intake()` (idle if no participant
        is configured)."""
        if not self.participants:
            log.info("exchange.agent.idle", hint=f"set {AGENT_ENV} to participant ids")
            await self.intake.closed()
            return
        for participant in self.participants:
            self._signer.keystore.current(participant)
        try:
            while self.intake.open:
                await self._batch(timeout=1.0)
        except asyncio.CancelledError:
            # Only when stopped: after a failure `govhub serve` runs this again, and the
            # subscription keeps what it was already sent instead of stranding it (ack_wait).
            await self._consumer.stop()
            raise
        await self._consumer.stop()

    async def deliver_pending(self) -> list[Delivered]:
        """Deliver everything waiting now, then return (the CLI's one-shot mode)."""
        done: list[Delivered] = []
        try:
            while True:
                batch = await self._batch(timeout=0.5)
                if batch is None:
                    break
                done.extend(batch)
        finally:
            await self._consumer.stop()
        return done

    async def _batch(self, timeout: float) -> list[Delivered] | None:
        deliveries = await self._consumer.fetch_verified(64, timeout=timeout)
        if not deliveries:
            return None
        return await self._handle(deliveries)

    async def _handle(self, deliveries: list[Delivery]) -> list[Delivered]:
        docs: list[tuple[Delivery, Document, list[str]]] = []
        for delivery in deliveries:
            event = delivery.event
            assert event is not None
            if event.schema.name != SENT_SCHEMA:
                await delivery.ack()
                continue
            manifest = Manifest.from_record(event.record)
            mine = [p for p in manifest.recipients if p in self.participants]
            docs.append((delivery, Document(event.envelope, manifest, event.fields.time), mine))
        done = await self._already_done([d.doc_id for _, d, _ in docs])
        results = await asyncio.gather(
            *(self._handle_one(delivery, doc, mine, done) for delivery, doc, mine in docs)
        )
        return [item for found in results for item in found]

    async def _handle_one(
        self, delivery: Delivery, doc: Document, mine: list[str], done: set[tuple[str, str]]
    ) -> list[Delivered]:
        todo = [p for p in mine if (doc.doc_id, p) not in done]
        results: list[Delivered] = []
        retry = False
        outcomes = await asyncio.gather(
            *(self._deliver(doc, p) for p in todo), return_exceptions=True
        )
        for participant, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, Delivered):
                results.append(outcome)
            elif isinstance(outcome, Retryable):
                retry = True
                log.warning("exchange.agent.retry", doc_id=doc.doc_id, recipient=participant)
            elif isinstance(outcome, GovhubError):
                # Permanent: a corrupted store copy, a recall, a missing key. The sender sees
                # the recipient stay undelivered and the deadline timer takes over.
                log.error(
                    "exchange.agent.undeliverable",
                    doc_id=doc.doc_id,
                    recipient=participant,
                    error=str(outcome),
                )
            elif isinstance(outcome, BaseException):
                raise outcome
        if retry:
            await delivery.nak(delay=5.0)
        else:
            await delivery.ack()
        return results

    async def _deliver(self, doc: Document, participant: str) -> Delivered:
        target = inbox_path(self._settings, participant, doc.doc_id, doc.manifest.file_name)
        if participant not in self._folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(participant)
        async with self._limit:
            result = await self._fetcher.fetch(doc, participant, target, stored_by="agent")
        return Delivered(doc.doc_id, participant, target, result.receipt_event_id or "")

    async def _already_done(self, doc_ids: list[str]) -> set[tuple[str, str]]:
        """(doc, recipient) pairs the tracker knows are delivered or recalled: skip them.

        Best effort (one query per batch): it spares a second agent or a `doc inbox
        --deliver` from fetching again; a duplicate receipt would only be recorded anyway.
        """
        try:
            rows = await self._pool.fetch(
                "SELECT doc_id, recipient FROM doc_recipients WHERE doc_id = ANY($1)"
                " AND recipient = ANY($2) AND (delivered_at IS NOT NULL OR state = 'recalled')",
                doc_ids,
                self.participants,
            )
        except Exception:
            return set()
        return {(r["doc_id"], r["recipient"]) for r in rows}


def create(parts: Parts) -> RecipientAgent:
    """Factory named in ``hub.serve.SERVICES``."""
    return RecipientAgent(parts.pool, parts.settings, parts.trust, parts.bus, parts.signer)
