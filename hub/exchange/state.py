"""The document state machine, applied to one batch of verified doc events at a time.

A `Batch` loads the documents and recipient rows its events name (one query each), checks
every event against its document and moves states in memory, then writes everything with a
handful of `executemany` calls, so a batch of 256 receipts costs a few round trips instead
of a dozen each. Checks, in order: the subject's kind matches the schema and names the same
document as the body; a document exists (else NotYetKnown); the manifest event id and digest
match; receipts are signed by a recipient with the key they name; notices by the sender.

Transitions (docs/protocol.md): sent → delivered → accepted | rejected; sent | delivered →
recalled | expired. A processing receipt is on time if the sender-side stream stored it
before the deadline; after `expired` it is kept with outcome `late`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hub.errors import InputError, NotYetKnown, Reason, RuleBroken
from hub.exchange.model import SCHEMA_OF_KIND, Kind, Manifest, State, parse_doc_subject
from hub.jsonout import to_jsonable
from hub.verifier import VerifiedEvent

REMINDER_OFFSETS = (timedelta(hours=24), timedelta(hours=1))


def reminder_times(sent_at: datetime, deadline: datetime) -> list[datetime]:
    """When to remind: 24 h and 1 h before the deadline, or halfway for a short window."""
    times = [deadline - off for off in REMINDER_OFFSETS if deadline - off > sent_at]
    return times or [sent_at + (deadline - sent_at) / 2]


@dataclass
class DocRow:
    """What the state machine needs of a document."""

    doc_id: str
    manifest_event_id: str
    sender: str
    sha256: str
    recipients: list[str]
    deadline: datetime | None
    recalled: bool
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecipientRow:
    """One recipient's state for one document."""

    doc_id: str
    recipient: str
    state: State
    state_at: datetime
    delivered_at: datetime | None = None
    processed_at: datetime | None = None
    reason: str | None = None
    new: bool = False
    dirty: bool = False

    def move(self, state: State, at: datetime) -> None:
        """Change state (and remember to write the row)."""
        self.state, self.state_at, self.dirty = state, at, True


@dataclass
class Batch:
    """Documents and recipients touched by one batch, changed in memory, written at once."""

    docs: dict[str, DocRow]
    recipients: dict[tuple[str, str], RecipientRow]
    known_events: set[str]
    new_docs: list[tuple[Any, ...]] = field(default_factory=list)
    timers: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    # Timers whose notice is on the bus (fired here or on another machine): never fire again.
    fired: list[tuple[Any, ...]] = field(default_factory=list)

    @classmethod
    async def load(cls, conn: asyncpg.Connection, events: list[VerifiedEvent]) -> Batch:
        """Lock and load every document the events name."""
        doc_ids = sorted({e.record.get("doc_id", "") for e in events})
        docs = {
            r["doc_id"]: DocRow(
                r["doc_id"],
                r["manifest_event_id"],
                r["sender"],
                r["sha256"],
                list(r["recipients"]),
                r["deadline"],
                r["recalled_at"] is not None,
            )
            for r in await conn.fetch(
                "SELECT doc_id, manifest_event_id, sender, sha256, recipients, deadline,"
                " recalled_at FROM doc_documents WHERE doc_id = ANY($1) ORDER BY doc_id"
                " FOR UPDATE",
                doc_ids,
            )
        }
        recipients = {
            (r["doc_id"], r["recipient"]): RecipientRow(
                r["doc_id"],
                r["recipient"],
                State(r["state"]),
                r["state_at"],
                r["delivered_at"],
                r["processed_at"],
                r["reason"],
            )
            for r in await conn.fetch(
                "SELECT * FROM doc_recipients WHERE doc_id = ANY($1)", doc_ids
            )
        }
        known = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM doc_events WHERE event_id = ANY($1)",
                [e.event_id for e in events],
            )
        }
        return cls(docs, recipients, known)

    def apply(self, event: VerifiedEvent, stored_at: datetime, seq: int) -> None:
        """Check one event against its document and change state, or raise RuleBroken."""
        parsed = parse_doc_subject(event.subject)
        if parsed is None:
            raise RuleBroken(Reason.RECEIPT_MISMATCH, f"{event.subject} is not a document subject")
        if SCHEMA_OF_KIND[parsed.kind] != event.schema.name:
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH,
                f"a {event.schema.name} does not belong on a '{parsed.kind}' subject",
            )
        record = event.record
        if record["doc_id"] != parsed.doc_id:
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH,
                f"the event names document {record['doc_id']} but its subject {parsed.doc_id}",
            )
        if event.event_id in self.known_events:
            return
        if parsed.kind is Kind.SENT:
            self._sent(event, stored_at, seq)
        else:
            outcome = self._followup(parsed.kind, event, stored_at)
            self.events.append(
                (
                    event.event_id,
                    parsed.doc_id,
                    parsed.kind.value,
                    event.fields.source,
                    event.subject,
                    event.fields.time,
                    stored_at,
                    seq,
                    outcome,
                    json.dumps(to_jsonable(record), ensure_ascii=False),
                    json.dumps(dict(event.envelope.headers)),
                    event.envelope.body,
                )
            )
        self.known_events.add(event.event_id)

    def _sent(self, event: VerifiedEvent, stored_at: datetime, seq: int) -> None:
        try:
            manifest = Manifest.from_record(event.record)
            manifest.check()
        except (InputError, KeyError, ValueError) as exc:
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH, f"the manifest is inconsistent: {exc}"
            ) from exc
        if manifest.sender != event.fields.source:
            raise RuleBroken(
                Reason.NOT_SENDER,
                f"the manifest names {manifest.sender} as sender, "
                f"but {event.fields.source} signed it",
            )
        existing = self.docs.get(manifest.doc_id)
        if existing is not None:
            if existing.manifest_event_id == event.event_id:
                return
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH,
                f"document {manifest.doc_id} was already announced by event "
                f"{existing.manifest_event_id}",
            )
        self.docs[manifest.doc_id] = DocRow(
            manifest.doc_id,
            event.event_id,
            manifest.sender,
            manifest.sha256.hex(),
            list(manifest.recipients),
            manifest.deadline,
            False,
        )
        self.new_docs.append(
            (
                manifest.doc_id,
                event.event_id,
                manifest.sender,
                event.sender.unit,
                manifest.title,
                manifest.doc_number,
                manifest.classification.value,
                manifest.urgency.value,
                manifest.file_name,
                manifest.media_type,
                manifest.size,
                manifest.sha256.hex(),
                manifest.deadline,
                event.fields.time,
                stored_at,
                event.subject,
                seq,
                list(manifest.recipients),
                json.dumps(dict(event.envelope.headers)),
                event.envelope.body,
            )
        )
        for r in manifest.recipients:
            self.recipients[(manifest.doc_id, r)] = RecipientRow(
                manifest.doc_id, r, State.SENT, stored_at, new=True
            )
        if manifest.deadline is not None:
            times = reminder_times(stored_at, manifest.deadline)
            self.timers += [(manifest.doc_id, "reminder", n, t) for n, t in enumerate(times, 1)]
            self.timers.append((manifest.doc_id, "expiry", 1, manifest.deadline))

    def _followup(self, kind: Kind, event: VerifiedEvent, stored_at: datetime) -> str:
        record = event.record
        source = event.fields.source
        doc = self.docs.get(record["doc_id"])
        if doc is None:
            raise NotYetKnown(
                Reason.UNKNOWN_DOCUMENT, f"no document {record['doc_id']} has been announced"
            )
        if record["manifest_event_id"] != doc.manifest_event_id:
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH,
                f"the event names manifest {record['manifest_event_id']}, "
                f"not {doc.manifest_event_id} of document {doc.doc_id}",
            )
        if "sha256" in record and bytes(record["sha256"]).hex() != doc.sha256:
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH, f"the event's digest does not match document {doc.doc_id}"
            )
        if kind in (Kind.DELIVERED, Kind.ACCEPTED, Kind.REJECTED):
            return self._receipt(kind, event, doc, stored_at)
        if source != doc.sender:
            raise RuleBroken(
                Reason.NOT_SENDER,
                f"only the sender {doc.sender} may {kind.value} document {doc.doc_id}; "
                f"{source} signed this",
            )
        if kind is Kind.RECALLED:
            for r in doc.recipients:
                row = self.recipients[(doc.doc_id, r)]
                if row.state.open:
                    row.move(State.RECALLED, stored_at)
            doc.recalled = True
            doc.changes.update(recalled_at=stored_at, recall_reason=record.get("reason", ""))
        elif kind is Kind.EXPIRED:
            for r in record["expired_recipients"]:
                found = self.recipients.get((doc.doc_id, r))
                if found is not None and found.state.open:
                    found.move(State.EXPIRED, stored_at)
            doc.changes.update(expired_at=stored_at)
            self.fired.append((doc.doc_id, "expiry", 1, stored_at))
        elif kind is Kind.REMINDER:
            self.fired.append((doc.doc_id, "reminder", int(record["reminder_number"]), stored_at))
        return "applied"

    def _receipt(self, kind: Kind, event: VerifiedEvent, doc: DocRow, stored_at: datetime) -> str:
        record = event.record
        source = event.fields.source
        if source not in doc.recipients:
            raise RuleBroken(
                Reason.NOT_RECIPIENT,
                f"{source} is not a recipient of document {doc.doc_id}; "
                "only recipients may sign its receipts",
            )
        if record["recipient"] != source:
            raise RuleBroken(Reason.RECEIPT_MISMATCH, "the receipt names another recipient")
        signing = f"{event.fields.key_participant}/{event.fields.key_id}"
        if record["recipient_key"] != signing:
            # The body names the key so the receipt binds it even when stored without headers.
            raise RuleBroken(
                Reason.RECEIPT_MISMATCH,
                f"the receipt names key {record['recipient_key']} but is signed with {signing}",
            )
        if kind is not Kind.DELIVERED:
            decision = record["decision"]
            if (decision == "ACCEPTED") != (kind is Kind.ACCEPTED):
                raise RuleBroken(
                    Reason.RECEIPT_MISMATCH, f"a {decision} receipt on a {kind} subject"
                )
            if decision == "REJECTED" and not record["reason"].strip():
                raise RuleBroken(Reason.RECEIPT_MISMATCH, "a rejection without a reason")
        row = self.recipients[(doc.doc_id, source)]
        if kind is Kind.DELIVERED:
            if row.delivered_at is None:
                row.delivered_at, row.dirty = stored_at, True
            if row.state is State.SENT:
                row.move(State.DELIVERED, stored_at)
                return "applied"
            return "recorded"
        on_time = doc.deadline is None or stored_at < doc.deadline
        if row.state.open or (row.state is State.EXPIRED and on_time):
            row.move(State(kind.value), stored_at)
            row.processed_at = stored_at
            row.reason = record["reason"] or None
            if row.delivered_at is None:
                row.delivered_at = stored_at
            return "applied"
        if row.state is State.EXPIRED:
            return "late"
        if row.state is State.RECALLED:
            return "after_recall"
        return "duplicate"

    async def write(self, conn: asyncpg.Connection) -> None:
        """Write everything the batch changed, in dependency order."""
        if self.new_docs:
            await conn.executemany(
                "INSERT INTO doc_documents (doc_id, manifest_event_id, sender, sender_unit,"
                " title, doc_number, classification, urgency, file_name, media_type, size,"
                " sha256, deadline, sent_at, stored_at, subject, stream_seq, recipients,"
                " headers, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,"
                "$16,$17,$18,$19,$20)",
                self.new_docs,
            )
        rows = list(self.recipients.values())
        fresh = [r for r in rows if r.new]
        if fresh:
            await conn.executemany(
                "INSERT INTO doc_recipients (doc_id, recipient, recipient_unit, state, state_at,"
                " delivered_at, processed_at, reason) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                [
                    (
                        r.doc_id,
                        r.recipient,
                        r.recipient.split(".", 1)[0],
                        r.state.value,
                        r.state_at,
                        r.delivered_at,
                        r.processed_at,
                        r.reason,
                    )
                    for r in fresh
                ],
            )
        changed = [r for r in rows if r.dirty and not r.new]
        if changed:
            await conn.executemany(
                "UPDATE doc_recipients SET state = $3, state_at = $4, delivered_at = $5,"
                " processed_at = $6, reason = $7 WHERE doc_id = $1 AND recipient = $2",
                [
                    (
                        r.doc_id,
                        r.recipient,
                        r.state.value,
                        r.state_at,
                        r.delivered_at,
                        r.processed_at,
                        r.reason,
                    )
                    for r in changed
                ],
            )
        if self.timers:
            await conn.executemany(
                "INSERT INTO doc_timers (doc_id, kind, number, due_at) VALUES ($1,$2,$3,$4)"
                " ON CONFLICT DO NOTHING",
                self.timers,
            )
        if self.fired:
            await conn.executemany(
                "UPDATE doc_timers SET fired_at = coalesce(fired_at, $4)"
                " WHERE doc_id = $1 AND kind = $2 AND number = $3",
                self.fired,
            )
        if self.events:
            await conn.executemany(
                "INSERT INTO doc_events (event_id, doc_id, kind, source, subject, ce_time,"
                " stored_at, stream_seq, outcome, record, headers, body)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING",
                self.events,
            )
        for doc in self.docs.values():
            if doc.changes:
                await conn.execute(
                    "UPDATE doc_documents SET recalled_at = coalesce($2, recalled_at),"
                    " recall_reason = coalesce($3, recall_reason),"
                    " expired_at = coalesce($4, expired_at) WHERE doc_id = $1",
                    doc.doc_id,
                    doc.changes.get("recalled_at"),
                    doc.changes.get("recall_reason"),
                    doc.changes.get("expired_at"),
                )
