"""The wire contract v1 envelope: CloudEvents binary-mode headers, signing input, sign and check.

One JetStream message is one event: the body is the Avro single-object encoding of the payload,
the headers are CloudEvents 1.0 attributes plus `govhub-key` and `govhub-sig`. docs/protocol.md
is the normative description; this module is its implementation and must not drift from it.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.batchsig import (
    H_BATCH_SIG,
    UNSIGNABLE,
    BatchProof,
    check_batch_signature,
    read_proof,
)
from hub.errors import Reason, RejectedEvent
from hub.suites import INTL, Suite, for_public_key, of_signature

SIG_V1 = "govhub-sig-v1"
CONTENT_TYPE = "application/avro"

H_SPECVERSION = "ce-specversion"
H_ID = "ce-id"
H_SOURCE = "ce-source"
H_TYPE = "ce-type"
H_TIME = "ce-time"
H_CONTENT_TYPE = "content-type"
H_KEY = "govhub-key"
H_SIG = "govhub-sig"
H_MSG_ID = "Nats-Msg-Id"

REQUIRED_HEADERS = (H_SPECVERSION, H_ID, H_SOURCE, H_TYPE, H_TIME, H_CONTENT_TYPE, H_KEY, H_SIG)
# govhub-sig-v2 events carry the batch headers (checked by hub.batchsig.read_proof) instead.
REQUIRED_HEADERS_V2 = tuple(name for name in REQUIRED_HEADERS if name != H_SIG)

# Events are small records; documents go through the object store. The bound keeps a whole
# event (base64 body plus headers) inside one C2SP tlog-tiles entry (at most 65,535 bytes),
# so every audit-log leaf is servable by standard tile clients. Checked before any crypto.
MAX_BODY_BYTES = 40 * 1024


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort roughly by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def format_time(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with microseconds and a `Z`, as `ce-time` carries it."""
    moment = moment or datetime.now(UTC)
    # isoformat with fixed microseconds is the strftime pattern "%Y-%m-%dT%H:%M:%S.%f" for
    # years 1000-9999, at a fraction of the cost (it is called for every logged event).
    if moment.tzinfo is UTC:
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# RFC 3339 `date-time` with seconds and an explicit offset, as written on the wire. The same
# rule as the offline verifier (hub/audit/verify.py), so a receiver and an auditor never
# disagree about whether a `ce-time` is valid.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 date-time (seconds and a time zone required) into UTC."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time with seconds and a time zone")
    base, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds; finer digits are dropped
    try:
        moment = datetime.fromisoformat(base + fraction + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date-time") from None
    return moment.astimezone(UTC)


def key_id(public_key: bytes) -> str:
    """The key id of a raw public key: first 8 bytes of SHA-256 over a 32-byte Ed25519 key,
    or of SM3 over a 65-byte uncompressed SM2 point (v1-sm2), in lowercase hex."""
    return for_public_key(public_key).key_id(public_key)


def signing_input(
    subject: str,
    event_id: str,
    source: str,
    type_name: str,
    time_text: str,
    body: bytes,
    suite: Suite = INTL,
) -> bytes:
    """The exact bytes a signature covers: govhub-sig-v1, or govhub-sig-v1-sm2 with SM3."""
    digest = suite.hash(body).hex()
    return (
        f"{suite.sig_v1}\n{subject}\n{event_id}\n{source}\n{type_name}\n{time_text}\n{digest}\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as it travels: subject, headers and body bytes."""

    subject: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        """The `ce-id` header (empty if absent)."""
        return self.headers.get(H_ID, "")

    @property
    def source(self) -> str:
        """The `ce-source` header (empty if absent)."""
        return self.headers.get(H_SOURCE, "")

    @property
    def type_name(self) -> str:
        """The `ce-type` header (empty if absent)."""
        return self.headers.get(H_TYPE, "")

    @property
    def time_text(self) -> str:
        """The `ce-time` header (empty if absent)."""
        return self.headers.get(H_TIME, "")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A participant's signing key (Ed25519 or SM2) together with the identity it signs as."""

    participant: str
    private_key: Any = field(repr=False)
    public_bytes: bytes
    key_id: str
    suite: Suite = INTL

    @classmethod
    def from_private(cls, participant: str, private_key: Any, suite: Suite = INTL) -> SigningKey:
        """Wrap a private key of a suite, deriving its public bytes and key id."""
        raw = suite.public_bytes(private_key)
        return cls(participant, private_key, raw, suite.key_id(raw), suite)

    def sign(self, message: bytes) -> bytes:
        """Sign with the key's suite (Ed25519, or SM2/SM3 DER)."""
        return self.suite.sign(self.private_key, message)


def seal(
    key: SigningKey,
    subject: str,
    type_name: str,
    body: bytes,
    *,
    event_id: str | None = None,
    time_text: str | None = None,
) -> Envelope:
    """Build the headers of a new event and sign it; the body is already encoded."""
    event_id = event_id or new_event_id()
    time_text = time_text or format_time()
    signature = key.sign(
        signing_input(subject, event_id, key.participant, type_name, time_text, body, key.suite)
    )
    headers = {
        H_SPECVERSION: "1.0",
        H_ID: event_id,
        H_SOURCE: key.participant,
        H_TYPE: type_name,
        H_TIME: time_text,
        H_CONTENT_TYPE: CONTENT_TYPE,
        H_KEY: f"{key.participant}/{key.key_id}",
        H_SIG: base64.b64encode(signature).decode(),
        H_MSG_ID: event_id,
    }
    return Envelope(subject, headers, body)


@dataclass(frozen=True, slots=True)
class SignedFields:
    """The header fields of an envelope, checked for presence and form."""

    event_id: str
    source: str
    type_name: str
    time: datetime
    time_text: str
    key_participant: str
    key_id: str
    signature: bytes
    batch: BatchProof | None = None
    """Set for a govhub-sig-v2 event: its place in the signed batch (hub/batchsig.py)."""
    suite: Suite = INTL
    """The suite the signature's form belongs to (hub/suites.py): what signed the event."""


def check_size(body: bytes) -> None:
    """Refuse a body over MAX_BODY_BYTES, in the one sentence senders and receivers both show."""
    if len(body) > MAX_BODY_BYTES:
        raise RejectedEvent(
            Reason.OVERSIZED,
            f"the event body is {len(body):,} bytes encoded; events are limited to "
            f"{MAX_BODY_BYTES:,} bytes ({MAX_BODY_BYTES // 1024} KiB): send large content as a "
            "document (`govhub doc send`)",
        )


def read_fields(env: Envelope) -> SignedFields:
    """Check that every wire-contract header is present and well formed."""
    headers = env.headers
    # A v2 event carries the batch signature headers instead of govhub-sig (docs/protocol.md).
    # Presence decides, as in the offline verifier, so the two never judge an event apart.
    batched = H_BATCH_SIG in headers
    required = REQUIRED_HEADERS_V2 if batched else REQUIRED_HEADERS
    missing = [name for name in required if not headers.get(name)]
    if missing:
        raise RejectedEvent(
            Reason.MISSING_HEADER, f"the event lacks header(s) {', '.join(missing)}"
        )
    check_size(env.body)
    # A line end inside a signed field would let two different events share one signing
    # input (the offline verifier refuses them too); NUL anywhere cannot be stored in the
    # PostgreSQL text and JSON columns every receiver writes what it accepts into.
    signed_text = (env.subject, headers[H_ID], headers[H_SOURCE], headers[H_TYPE], headers[H_KEY])
    if any(_CONTROL.search(text) for text in signed_text):
        raise RejectedEvent(
            Reason.BAD_HEADER, "the subject and signed headers must hold no control characters"
        )
    if any("\x00" in name or "\x00" in value for name, value in headers.items()):
        raise RejectedEvent(Reason.BAD_HEADER, "a header holds a NUL character")
    if headers[H_SPECVERSION] != "1.0":
        raise RejectedEvent(Reason.BAD_HEADER, "ce-specversion must be 1.0")
    if headers[H_CONTENT_TYPE] != CONTENT_TYPE:
        raise RejectedEvent(Reason.BAD_HEADER, f"content-type must be {CONTENT_TYPE}")
    msg_id = headers.get(H_MSG_ID)
    if msg_id is not None and msg_id != headers[H_ID]:
        # Nats-Msg-Id is what JetStream deduplicates on; if it differed from ce-id a sender
        # could slip the same event id past deduplication twice.
        raise RejectedEvent(Reason.BAD_HEADER, "Nats-Msg-Id must equal ce-id")
    try:
        moment = parse_time(headers[H_TIME])
    except ValueError as exc:
        raise RejectedEvent(Reason.BAD_HEADER, f"ce-time: {exc}") from None
    key_owner, _, kid = headers[H_KEY].partition("/")
    if not kid or len(kid) != 16:
        raise RejectedEvent(
            Reason.BAD_HEADER, "govhub-key must be <participant-id>/<16 hex digits>"
        )
    batch: BatchProof | None = None
    suite: Suite = INTL
    if batched:
        signature, batch = read_proof(headers)
    else:
        try:
            signature = base64.b64decode(headers[H_SIG], validate=True)
        except ValueError:  # binascii.Error, or plain ValueError for non-ASCII text
            raise RejectedEvent(Reason.BAD_HEADER, "govhub-sig is not standard base64") from None
        found = of_signature(signature)
        if found is None:
            raise RejectedEvent(
                Reason.BAD_HEADER,
                "govhub-sig must be a 64-byte Ed25519 signature or a DER-encoded SM2 signature",
            )
        suite = found
    return SignedFields(
        event_id=headers[H_ID],
        source=headers[H_SOURCE],
        type_name=headers[H_TYPE],
        time=moment,
        time_text=headers[H_TIME],
        key_participant=key_owner,
        key_id=kid,
        signature=signature,
        batch=batch,
        suite=suite,
    )


def check_signature(env: Envelope, fields: SignedFields, public_key: Any) -> None:
    """Verify the signature (v1 or v1-sm2, or v2 over the batch root), or raise RejectedEvent.

    `public_key` is the parsed key of `fields.suite`; the verifier has already checked that the
    sender's registered key belongs to that suite (Reason.SUITE_MISMATCH otherwise)."""
    if fields.batch is not None:
        check_batch_signature(
            env.subject,
            env.body,
            fields.event_id,
            fields.source,
            fields.type_name,
            fields.time_text,
            fields.signature,
            fields.batch,
            public_key,
            f"{fields.key_participant}/{fields.key_id}",
        )
        return
    try:
        message = signing_input(
            env.subject,
            fields.event_id,
            fields.source,
            fields.type_name,
            fields.time_text,
            env.body,
            fields.suite,
        )
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 signing input, so nothing signed it
        raise RejectedEvent(Reason.BAD_HEADER, UNSIGNABLE) from None
    if not fields.suite.verify(public_key, fields.signature, message):
        raise RejectedEvent(
            Reason.BAD_SIGNATURE,
            f"the signature of event {fields.event_id} does not verify with key "
            f"{fields.key_participant}/{fields.key_id}",
        )
