"""Reading document state: one document's status, a participant's inbox, and the 收发文 ledger.

Everything here reads the tables the tracker materialises from signed events; the signed
manifests and receipts are kept whole in them, so `verified_document` re-checks the sender's
signature with the registry instead of trusting the table.

Ledger scope follows the registry roles: the office of the hub unit (`pref.office`), the hub
operator and auditors see every document in the region (the federation brings each county's
`doc.<county>.>` to the hub); another unit's office sees its unit's documents in and out;
any other department sees the documents it sent or received.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from hub.codec import SchemaCache
from hub.collaborators import Trust
from hub.envelope import Envelope
from hub.errors import RegistryError, RejectedEvent, UnknownDocument
from hub.exchange.model import Document, Manifest, check_doc_id
from hub.timetext import rfc3339

WIDE_ROLES = ("operator", "auditor")


async def load_document(
    db: asyncpg.Connection | asyncpg.Pool, schemas: SchemaCache, doc_id: str
) -> Document | None:
    """A document from the tracker's table (its signature is not re-checked here)."""
    row = await db.fetchrow("SELECT * FROM doc_documents WHERE doc_id = $1", doc_id)
    if row is None:
        return None
    env = Envelope(row["subject"], json.loads(row["headers"]), bytes(row["body"]))
    _, record = schemas.decode(env.body)
    manifest = Manifest.from_record(record)
    return Document(env, manifest, row["sent_at"], row["recalled_at"])


async def verified_document(pool: asyncpg.Pool, trust: Trust, doc_id: str) -> Document:
    """A known document whose manifest signature verifies against the registry now."""
    check_doc_id(doc_id)
    doc = await load_document(pool, trust.schemas, doc_id)
    if doc is None:
        raise UnknownDocument(
            f"no document {doc_id} has been announced on the bus",
            hint="Check the id with `govhub doc inbox --as ID` or `govhub doc ledger`.",
        )
    # The table is the hub's copy; the recipient trusts only the sender's signature.
    try:
        trust.verifier.verify(doc.envelope)
    except RejectedEvent as exc:
        raise UnknownDocument(
            f"the stored manifest of document {doc_id} does not verify: {exc}"
        ) from exc
    return doc


def _receipt(row: Any) -> dict[str, Any]:
    record = json.loads(row["record"])
    item: dict[str, Any] = {
        "kind": row["kind"],
        "event_id": row["event_id"],
        "signed_by": json.loads(row["headers"]).get("govhub-key", ""),
        "time": rfc3339(row["ce_time"]),
        "stored_at": rfc3339(row["stored_at"]),
        "outcome": row["outcome"],
    }
    for name in ("decision", "reason", "stored_by", "encryption_key_id", "reminder_number"):
        if record.get(name) not in (None, ""):
            item[name] = record[name]
    for name in ("pending_recipients", "expired_recipients", "recipients"):
        if name in record:
            item["recipients"] = record[name]
    return item


async def document_status(pool: asyncpg.Pool, trust: Trust, doc_id: str) -> dict[str, Any]:
    """Every recipient's state with its receipts, and the sender's notices."""
    doc = await verified_document(pool, trust, doc_id)
    row = await pool.fetchrow("SELECT * FROM doc_documents WHERE doc_id = $1", doc_id)
    recipients = await pool.fetch(
        "SELECT * FROM doc_recipients WHERE doc_id = $1 ORDER BY recipient", doc_id
    )
    events = await pool.fetch(
        "SELECT * FROM doc_events WHERE doc_id = $1 ORDER BY stream_seq", doc_id
    )
    by_source: dict[str, list[dict[str, Any]]] = {}
    notices = []
    for event in events:
        if event["kind"] in ("delivered", "accepted", "rejected"):
            by_source.setdefault(event["source"], []).append(_receipt(event))
        else:
            notices.append(_receipt(event))
    counts: dict[str, int] = {}
    for r in recipients:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    m = doc.manifest
    return {
        **_summary(row),
        "manifest_event_id": doc.manifest_event_id,
        "file_name": m.file_name,
        "media_type": m.media_type,
        "size": m.size,
        "sha256": m.sha256.hex(),
        "chunks": m.chunk_count,
        "store": {"domain": m.store.domain, "stream": m.store.stream},
        "encryption": None
        if m.encryption is None
        else {"suite": m.encryption.suite, "cipher": m.encryption.cipher},
        "recall_reason": row["recall_reason"],
        "expired_at": rfc3339(row["expired_at"]),
        "deadline_clock": "sender",
        "states": counts,
        "recipients": [
            {
                "recipient": r["recipient"],
                "state": r["state"],
                "state_at": rfc3339(r["state_at"]),
                "delivered_at": rfc3339(r["delivered_at"]),
                "processed_at": rfc3339(r["processed_at"]),
                "reason": r["reason"],
                "receipts": by_source.get(r["recipient"], []),
            }
            for r in recipients
        ],
        "notices": notices,
    }


def _summary(row: Any) -> dict[str, Any]:
    return {
        "doc_id": row["doc_id"],
        "doc_number": row["doc_number"],
        "title": row["title"],
        "sender": row["sender"],
        "sender_unit": row["sender_unit"],
        "classification": row["classification"],
        "urgency": row["urgency"],
        "sent_at": rfc3339(row["sent_at"]),
        "deadline": rfc3339(row["deadline"]),
        "recalled_at": rfc3339(row["recalled_at"]),
    }


async def inbox(
    pool: asyncpg.Pool, trust: Trust, participant: str, *, limit: int = 200
) -> list[dict[str, Any]]:
    """Documents addressed to a participant, newest first, with its own state."""
    _check_known(trust, participant)
    rows = await pool.fetch(
        "SELECT d.*, r.state, r.state_at, r.delivered_at, r.processed_at, r.reason"
        " FROM doc_recipients r JOIN doc_documents d USING (doc_id)"
        " WHERE r.recipient = $1 ORDER BY d.sent_at DESC LIMIT $2",
        participant,
        limit,
    )
    return [
        {
            **_summary(row),
            "size": row["size"],
            "file_name": row["file_name"],
            "state": row["state"],
            "state_at": rfc3339(row["state_at"]),
            "reason": row["reason"],
        }
        for row in rows
    ]


def ledger_scope(trust: Trust, participant: str) -> tuple[str, str | None]:
    """("all", None), ("unit", unit) or ("own", None) for a participant, from its role."""
    p = _check_known(trust, participant)
    if p.role in WIDE_ROLES or (p.role == "office" and p.unit == trust.scenario.hub_unit):
        return "all", None
    if p.role == "office":
        return "unit", p.unit
    return "own", None


async def ledger(
    pool: asyncpg.Pool, trust: Trust, participant: str, *, limit: int = 500
) -> dict[str, Any]:
    """The 收发文 register as a participant may see it: documents out, in, and overseen."""
    scope, unit = ledger_scope(trust, participant)
    choices: dict[str, tuple[str, list[Any]]] = {
        "all": ("TRUE", []),
        "unit": (
            "(d.sender_unit = $2 OR EXISTS (SELECT 1 FROM doc_recipients x"
            " WHERE x.doc_id = d.doc_id AND x.recipient_unit = $2))",
            [unit],
        ),
        "own": ("(d.sender = $2 OR $2 = ANY(d.recipients))", [participant]),
    }
    where, params = choices[scope]
    rows = await pool.fetch(
        "SELECT d.*, (SELECT json_object_agg(s.state, s.n) FROM (SELECT state, count(*) AS n"
        " FROM doc_recipients WHERE doc_id = d.doc_id GROUP BY state) s) AS states"
        f" FROM doc_documents d WHERE {where} ORDER BY d.sent_at DESC LIMIT $1",
        limit,
        *params,
    )
    me = trust.participants.get(participant)
    assert me is not None
    entries = []
    totals = {"out": 0, "in": 0, "register": 0}
    for row in rows:
        if row["sender"] == participant or (scope == "unit" and row["sender_unit"] == me.unit):
            direction = "out"
        elif participant in row["recipients"] or (
            scope == "unit" and any(r.split(".", 1)[0] == me.unit for r in row["recipients"])
        ):
            direction = "in"
        else:
            direction = "register"
        totals[direction] += 1
        entries.append(
            {
                **_summary(row),
                "direction": direction,
                "recipients": list(row["recipients"]),
                "states": json.loads(row["states"]) if row["states"] else {},
            }
        )
    return {
        "participant": participant,
        "scope": scope,
        "unit": unit,
        "totals": totals,
        "entries": entries,
    }


def _check_known(trust: Trust, participant: str) -> Any:
    p = trust.participants.get(participant)
    if p is None:
        raise RegistryError(f"{participant} is not a registered participant")
    return p
