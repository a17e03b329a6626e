"""Leaf bytes v1: one delivered message and its verdict as the canonical JSON the log commits to.

docs/protocol.md ("Audit log leaves") is the normative description; ``hub.audit.verify`` reads
these bytes offline. A leaf is UTF-8 JSON, keys sorted, no spaces, non-ASCII kept::

    {"v":1, "subject", "headers" (all NATS headers as received), "body" (standard base64),
     "verdict": "accepted"|"quarantined", "reason", "detail", "stream", "stream_seq",
     "origin": null|{"stream","seq"}, "received_at"}

Every leaf must fit one tlog-tiles entry (65,535 bytes). Accepted bodies are capped at 40 KiB so
an honest event always fits; a message that would not (a quarantined oversized body, or huge
extra headers) is logged quarantined with its body, then its headers, replaced by their SHA-256
in ``detail``.

Idempotency key: an accepted event is keyed by its ``ce-id``; anything quarantined by ``q:`` and
the content digest (subject, headers other than the transport's ``Nats-*`` ones, body), so a
forgery that reuses a real event's id never displaces it, and redelivered or re-sourced copies of
one message (which differ only in ``Nats-*`` headers) collapse to one leaf.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hub.audit.tiles import MAX_ENTRY_SIZE
from hub.consumer import Delivery
from hub.envelope import H_ID, H_SOURCE, H_TIME, H_TYPE, format_time, parse_time
from hub.errors import Reason

LEAF_VERSION = 1
MAX_DETAIL = 500


# One encoder for every leaf: json.dumps with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Serialise exactly as leaf bytes v1 require."""
    return _ENCODER.encode(obj).encode()


def content_digest(subject: str, headers: dict[str, str], body: bytes) -> bytes:
    """SHA-256 over subject, non-transport headers (sorted) and body: one message's identity."""
    text = "".join(
        [subject]
        + [f"\n{name}: {headers[name]}" for name in sorted(headers) if name[:5].lower() != "nats-"]
    )
    return hashlib.sha256(text.encode() + b"\n\n" + body).digest()


def column_text(text: str) -> str:
    """A leaf's value as its search column holds it: PostgreSQL text cannot hold U+0000.

    The leaf bytes keep the value exactly; receivers refuse NUL, so only quarantined leaves
    differ. ``audit verify --full`` compares columns through this function too.
    """
    return text.replace("\x00", "\ufffd")


def quarantine_key(digest: bytes) -> str:
    """The idempotency key of a quarantined message."""
    return "q:" + digest.hex()


@dataclass(frozen=True, slots=True)
class LeafRecord:
    """A leaf ready to store: its bytes plus the columns the search index keeps."""

    key: str
    digest: bytes
    leaf: bytes
    event_id: str
    source: str
    type: str
    subject: str
    verdict: str
    reason: str | None
    detail: str | None
    event_time: datetime
    received_at: datetime
    stream: str
    stream_seq: int
    origin: tuple[str, int] | None


def admissible(delivery: Delivery) -> tuple[Reason, str] | None:
    """Why an event the receiver checks accepted still cannot be logged as accepted, if so.

    The log must stay checkable offline: header names repeated in another letter case would
    make the standalone verifier refuse the leaf. (A ce-time outside strict RFC 3339 is already
    refused by every receiver, with the verifier's rule.)
    """
    headers = delivery.envelope.headers
    if len({name.lower() for name in headers}) != len(headers):
        return Reason.BAD_HEADER, "header names repeat in different letter case"
    return None


def build(
    delivery: Delivery,
    verdict: str,
    reason: str | None = None,
    detail: str | None = None,
) -> LeafRecord:
    """Build the leaf of one delivery with the verdict the appender reached."""
    env = delivery.envelope
    headers = dict(env.headers)
    digest = content_digest(env.subject, headers, env.body)
    detail = _text(detail[:MAX_DETAIL]) if detail is not None else None
    subject, body = env.subject, env.body
    obj: dict[str, Any] = {
        "v": LEAF_VERSION,
        "subject": subject,
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "verdict": verdict,
        "reason": reason,
        "detail": detail,
        "stream": delivery.stream,
        "stream_seq": delivery.seq,
        "origin": None
        if delivery.origin is None
        else {"stream": delivery.origin[0], "seq": delivery.origin[1]},
        "received_at": format_time(delivery.stored_at),
    }
    leaf = canonical_json(obj)
    if len(leaf) > MAX_ENTRY_SIZE:
        leaf, obj = _shrink(obj, headers, body)
    accepted = obj["verdict"] == "accepted"
    return LeafRecord(
        key=env.event_id if accepted else quarantine_key(digest),
        digest=digest,
        leaf=leaf,
        event_id=column_text(headers.get(H_ID, "")),
        source=column_text(headers.get(H_SOURCE, "")),
        type=column_text(headers.get(H_TYPE, "")),
        subject=column_text(obj["subject"]),
        verdict=obj["verdict"],
        reason=obj["reason"],
        detail=obj["detail"],
        event_time=(
            delivery.event.fields.time
            if delivery.event is not None
            else _event_time(headers.get(H_TIME, ""), delivery.stored_at)
        ),
        received_at=delivery.stored_at,
        stream=delivery.stream,
        stream_seq=delivery.seq,
        origin=delivery.origin,
    )


def requalify(record: LeafRecord, reason: Reason, detail: str) -> LeafRecord:
    """The same message logged as quarantined instead (keyed by its content digest)."""
    obj = json.loads(record.leaf)
    obj.update(verdict="quarantined", reason=reason.value, detail=_text(detail[:MAX_DETAIL]))
    return replace(
        record,
        key=quarantine_key(record.digest),
        leaf=canonical_json(obj),
        verdict="quarantined",
        reason=reason.value,
        detail=obj["detail"],
    )


def _text(detail: str) -> str:
    """A detail as UTF-8 can carry it: an error message may quote a file name that the
    operating system decoded with lone surrogates, and a leaf that cannot be encoded would
    stop the appender on it."""
    return detail.encode("utf-8", "replace").decode()


def _shrink(
    obj: dict[str, Any], headers: dict[str, str], body: bytes
) -> tuple[bytes, dict[str, Any]]:
    """Make an over-long leaf fit a tile entry, keeping SHA-256 commitments to what was cut."""
    notes = [f"body of {len(body)} bytes with SHA-256 {hashlib.sha256(body).hexdigest()}"]
    obj = {**obj, "verdict": "quarantined", "body": ""}
    if obj["reason"] is None:
        obj["reason"] = Reason.OVERSIZED.value
    leaf = canonical_json({**obj, "detail": ""})
    if len(leaf) > MAX_ENTRY_SIZE - 1000:
        digest = hashlib.sha256(canonical_json(headers)).hexdigest()
        notes.append(f"headers with SHA-256 {digest}")
        obj["headers"] = {}
        obj["subject"] = obj["subject"][:200]
    kept = (obj["detail"] or "")[:200]
    obj["detail"] = (
        f"{kept}; " * bool(kept) + "omitted to fit a 65535-byte leaf: " + ", ".join(notes)
    )
    return canonical_json(obj), obj


def _event_time(text: str, fallback: datetime) -> datetime:
    """The sender's ce-time when it parses, else the time the hub stored the message."""
    try:
        return parse_time(text)
    except ValueError:
        return fallback
