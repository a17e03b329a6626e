"""Signed receipts and notices about a document, built as events on the signer's own subjects.

Every receipt binds three things so it cannot be replayed for another document or version:
the document digest (`sha256` of the manifest), the manifest's event id, and the key of the
recipient that signs it (`recipient_key`, also checked against the `govhub-key` header by the
tracker). Notices from the sender (recall, reminder, expiry) name the manifest event id too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.collaborators import Signer, Trust
from hub.envelope import Envelope, seal
from hub.errors import DocumentClosed, InputError, NotRecipient, RegistryError
from hub.exchange.ledger import verified_document
from hub.exchange.model import (
    DELIVERY_SCHEMA,
    EXPIRY_SCHEMA,
    PROCESSING_SCHEMA,
    RECALL_SCHEMA,
    REMINDER_SCHEMA,
    Document,
    Kind,
    State,
    doc_subject,
)

MAX_REASON = 1000


def _sign(
    trust: Trust,
    signer: Signer,
    participant: str,
    schema_name: str,
    kind: Kind,
    doc_id: str,
    record: dict[str, Any],
) -> Envelope:
    """Seal as `participant` on its own doc subject, naming the signing key in the body."""
    sender = trust.participants.get(participant)
    if sender is None:
        raise RegistryError(f"{participant} is not a registered participant")
    if sender.status != "active":
        raise RegistryError(f"{participant} is revoked and can no longer sign receipts")
    key = signer.keystore.current(participant)
    if "recipient_key" in record:
        record["recipient_key"] = f"{participant}/{key.key_id}"
    schema = trust.schemas.by_name(schema_name)
    return seal(key, doc_subject(participant, kind, doc_id), schema.name, schema.encode(record))


def delivery_receipt(
    trust: Trust,
    signer: Signer,
    doc: Document,
    recipient: str,
    *,
    encryption_key_id: str | None,
    stored_at: datetime,
    stored_by: str,
) -> Envelope:
    """送达回执: the recipient's side stored the verified document durably."""
    m = doc.manifest
    record = {
        "doc_id": m.doc_id,
        "manifest_event_id": doc.manifest_event_id,
        "sender": m.sender,
        "sha256": m.sha256,
        "size": m.size,
        "recipient": recipient,
        "recipient_key": "",
        "encryption_key_id": encryption_key_id,
        "stored_at": stored_at,
        "stored_by": stored_by,
    }
    return _sign(trust, signer, recipient, DELIVERY_SCHEMA, Kind.DELIVERED, m.doc_id, record)


def processing_receipt(
    trust: Trust,
    signer: Signer,
    doc: Document,
    recipient: str,
    *,
    accept: bool,
    reason: str = "",
    delivery_receipt_id: str | None = None,
) -> Envelope:
    """办理回执: accepted (签收) or rejected (退回); a rejection must say why."""
    reason = reason.strip()
    if not accept and not reason:
        raise InputError("a rejection needs a reason (--reject REASON)")
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is limited to {MAX_REASON} characters")
    m = doc.manifest
    record = {
        "doc_id": m.doc_id,
        "manifest_event_id": doc.manifest_event_id,
        "sender": m.sender,
        "sha256": m.sha256,
        "recipient": recipient,
        "recipient_key": "",
        "decision": "ACCEPTED" if accept else "REJECTED",
        "reason": reason,
        "delivery_receipt_id": delivery_receipt_id,
        "decided_at": datetime.now(UTC),
    }
    kind = Kind.ACCEPTED if accept else Kind.REJECTED
    return _sign(trust, signer, recipient, PROCESSING_SCHEMA, kind, m.doc_id, record)


def recall_notice(
    trust: Trust, signer: Signer, doc: Document, recipients: Sequence[str], reason: str
) -> Envelope:
    """撤回: the sender withdraws the document from recipients that have not answered."""
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is limited to {MAX_REASON} characters")
    m = doc.manifest
    record = {
        "doc_id": m.doc_id,
        "manifest_event_id": doc.manifest_event_id,
        "sha256": m.sha256,
        "recipients": list(recipients),
        "reason": reason.strip(),
    }
    return _sign(trust, signer, m.sender, RECALL_SCHEMA, Kind.RECALLED, m.doc_id, record)


def reminder_notice(
    trust: Trust,
    signer: Signer,
    doc: Document,
    pending: Sequence[str],
    number: int,
    fired_at: datetime,
) -> Envelope:
    """催办: the sender's timer reminds recipients that still owe an answer."""
    m = doc.manifest
    assert m.deadline is not None
    record = {
        "doc_id": m.doc_id,
        "manifest_event_id": doc.manifest_event_id,
        "deadline": m.deadline,
        "pending_recipients": list(pending),
        "reminder_number": number,
        "fired_at": fired_at,
    }
    return _sign(trust, signer, m.sender, REMINDER_SCHEMA, Kind.REMINDER, m.doc_id, record)


def expiry_notice(
    trust: Trust, signer: Signer, doc: Document, expired: Sequence[str], fired_at: datetime
) -> Envelope:
    """逾期: the deadline passed on the sender's clock without these recipients answering."""
    m = doc.manifest
    assert m.deadline is not None
    record = {
        "doc_id": m.doc_id,
        "manifest_event_id": doc.manifest_event_id,
        "deadline": m.deadline,
        "expired_recipients": list(expired),
        "fired_at": fired_at,
    }
    return _sign(trust, signer, m.sender, EXPIRY_SCHEMA, Kind.EXPIRED, m.doc_id, record)


async def answer(
    pool: asyncpg.Pool,
    trust: Trust,
    signer: Signer,
    doc_id: str,
    recipient: str,
    *,
    accept: bool,
    reason: str = "",
) -> tuple[Envelope, bool]:
    """Sign and publish a processing receipt after checking the recipient may give it.

    Returns the receipt and whether it is late (the deadline passed on the sender's clock);
    a late answer is still signed and kept as evidence, but the state stays `expired`.
    """
    doc = await verified_document(pool, trust, doc_id)
    if recipient not in doc.manifest.recipients:
        raise NotRecipient(
            f"{recipient} is not a recipient of document {doc_id}; only recipients sign receipts"
        )
    row = await pool.fetchrow(
        "SELECT state, state_at FROM doc_recipients WHERE doc_id = $1 AND recipient = $2",
        doc_id,
        recipient,
    )
    state = State(row["state"])
    if state is State.SENT:
        raise DocumentClosed(
            f"{recipient} has not received document {doc_id} yet; fetch it first "
            f"(govhub doc fetch {doc_id} --as {recipient} --out PATH)"
        )
    if state in (State.ACCEPTED, State.REJECTED, State.RECALLED):
        raise DocumentClosed(f"document {doc_id} is already {state.value} for {recipient}")
    delivered = await pool.fetchval(
        "SELECT event_id FROM doc_events WHERE doc_id = $1 AND source = $2"
        " AND kind = 'delivered' ORDER BY stream_seq DESC LIMIT 1",
        doc_id,
        recipient,
    )
    env = processing_receipt(
        trust, signer, doc, recipient, accept=accept, reason=reason, delivery_receipt_id=delivered
    )
    await (await signer.publisher_for(recipient)).publish(env)
    return env, state is State.EXPIRED


async def recall(
    pool: asyncpg.Pool, trust: Trust, signer: Signer, doc_id: str, sender: str, reason: str = ""
) -> tuple[Envelope, list[str]]:
    """Withdraw a document from every recipient that has not accepted or rejected it."""
    doc = await verified_document(pool, trust, doc_id)
    if sender != doc.manifest.sender:
        raise NotRecipient(f"only its sender {doc.manifest.sender} may recall document {doc_id}")
    if doc.recalled_at is not None:
        raise DocumentClosed(f"document {doc_id} was already recalled")
    rows = await pool.fetch(
        "SELECT recipient FROM doc_recipients WHERE doc_id = $1"
        " AND state IN ('sent', 'delivered') ORDER BY recipient",
        doc_id,
    )
    pending = [r["recipient"] for r in rows]
    if not pending:
        raise DocumentClosed(
            f"every recipient has already answered document {doc_id}; "
            "a document can only be recalled before it is accepted"
        )
    env = recall_notice(trust, signer, doc, pending, reason)
    await (await signer.publisher_for(sender)).publish(env)
    return env, pending
