"""The document exchange's vocabulary: manifest, classifications, states and doc subjects.

Subjects (docs/exchange.md): every event about a document ends with its id and sits under the
participant that signs it, so permissions stay prefixes and a county's documents are
`doc.<county>.>`:

```
doc.<sender>.sent.<doc_id>          DocumentSent       the signed manifest
doc.<recipient>.delivered.<doc_id>  DeliveryReceipt    stored durably at the recipient
doc.<recipient>.accepted.<doc_id>   ProcessingReceipt  签收
doc.<recipient>.rejected.<doc_id>   ProcessingReceipt  退回, with a reason
doc.<sender>.recalled.<doc_id>      DocumentRecalled   撤回
doc.<sender>.reminder.<doc_id>      DeadlineReminder   催办
doc.<sender>.expired.<doc_id>       DocumentExpired    逾期
```
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.envelope import Envelope
from hub.errors import ConfigError, InputError
from hub.subjects import CHANNELS, check_participant_id, subject_for

SENT_SCHEMA = "gov.exchange.v1.DocumentSent"
DELIVERY_SCHEMA = "gov.exchange.v1.DeliveryReceipt"
PROCESSING_SCHEMA = "gov.exchange.v1.ProcessingReceipt"
RECALL_SCHEMA = "gov.exchange.v1.DocumentRecalled"
REMINDER_SCHEMA = "gov.exchange.v1.DeadlineReminder"
EXPIRY_SCHEMA = "gov.exchange.v1.DocumentExpired"

# Documents of up to this many chunks carry their chunk digests inside the signed manifest;
# larger ones keep the list in the store (events are bounded to 40 KiB so every audit leaf
# fits a tlog tile) and the manifest signs the list's digest instead.
INLINE_DIGESTS = 256
DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 768 * 1024


class Classification(enum.StrEnum):
    """密级: who may read a document; CONFIDENTIAL is encrypted end to end."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"

    @property
    def symbol(self) -> str:
        """The Avro enum symbol."""
        return self.name


class Urgency(enum.StrEnum):
    """紧急程度: normal, urgent (急件), extra-urgent (特急)."""

    NORMAL = "normal"
    URGENT = "urgent"
    EXTRA_URGENT = "extra-urgent"

    @property
    def symbol(self) -> str:
        """The Avro enum symbol."""
        return self.name


class State(enum.StrEnum):
    """A recipient's state for one document (names fixed in docs/protocol.md)."""

    SENT = "sent"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RECALLED = "recalled"

    @property
    def open(self) -> bool:
        """Whether the recipient still owes an answer (sent or delivered)."""
        return self in (State.SENT, State.DELIVERED)


class Kind(enum.StrEnum):
    """The subject token naming what an event about a document says."""

    SENT = "sent"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RECALLED = "recalled"
    REMINDER = "reminder"
    EXPIRED = "expired"


SCHEMA_OF_KIND = {
    Kind.SENT: SENT_SCHEMA,
    Kind.DELIVERED: DELIVERY_SCHEMA,
    Kind.ACCEPTED: PROCESSING_SCHEMA,
    Kind.REJECTED: PROCESSING_SCHEMA,
    Kind.RECALLED: RECALL_SCHEMA,
    Kind.REMINDER: REMINDER_SCHEMA,
    Kind.EXPIRED: EXPIRY_SCHEMA,
}

# Matched whole: `$` would let a final "\n" into a subject.
_DOC_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What the exchange stores and shows (PostgreSQL text and JSON cannot hold U+0000); a title
# may run over lines, names and store coordinates may not.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character a manifest field may not hold, as U+XXXX, or None.

    Receivers refuse manifests that hold one; senders ask the same question before sending.
    `multiline` fields (title, document number) may hold tab, line feed and carriage return.
    """
    found = (_TEXT_CONTROL if multiline else _CONTROL).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def check_doc_id(doc_id: str) -> str:
    """Refuse anything that is not a document id (a lowercase UUID) before it meets a subject."""
    if not isinstance(doc_id, str) or not _DOC_ID_RE.fullmatch(doc_id):
        raise InputError(f"{doc_id!r} is not a document id (a UUID such as 019a…-…)")
    return doc_id


def doc_subject(participant: str, kind: Kind, doc_id: str) -> str:
    """The subject of an event of this kind about a document, signed by `participant`."""
    return subject_for("doc", participant, kind.value, check_doc_id(doc_id))


@dataclass(frozen=True, slots=True)
class DocSubject:
    """A parsed `doc.<unit>.<dept>.<kind>.<doc_id>` subject."""

    participant: str
    kind: Kind
    doc_id: str


def parse_doc_subject(subject: str) -> DocSubject | None:
    """Parse a document subject; None if it is not one."""
    tokens = subject.split(".")
    if len(tokens) != 5 or tokens[0] != "doc" or tokens[0] not in CHANNELS:
        return None
    try:
        kind = Kind(tokens[3])
    except ValueError:
        return None
    if not _DOC_ID_RE.fullmatch(tokens[4]):
        return None
    return DocSubject(f"{tokens[1]}.{tokens[2]}", kind, tokens[4])


def chunk_list_digest(digests: Sequence[bytes]) -> bytes:
    """SHA-256 over the concatenated chunk digests: what the manifest signs for the list."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.digest()


# 255 bytes per file name, less `<doc id>-` (37) that the recipient agent puts before it and
# `.` + `.<doc id>.part` (43) that a fetch in progress puts around it.
MAX_NAME_BYTES = 160


def safe_file_name(name: str) -> str:
    """A file name from a manifest made safe to create on the recipient's disk.

    The name is chosen by the sender; without this a manifest naming `../../.bashrc` or a
    device name could make a recipient agent write outside its inbox folder.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = base.strip().lstrip(".")
    if not base:
        return "document"
    if len(base.encode()) <= MAX_NAME_BYTES:
        return base
    # Too long for a file system once the recipient agent's doc-id prefix and the fetch's
    # part-file suffix are added (255 bytes per name): cut the stem, keep the extension.
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = base, ""
    room = MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
    stem = stem.encode()[:room].decode(errors="ignore").rstrip()
    return f"{stem}.{ext}" if ext else stem


@dataclass(frozen=True)
class StoreRef:
    """Where a document's content is: JetStream domain, stream and subject prefix."""

    domain: str
    stream: str
    prefix: str


@dataclass(frozen=True)
class Encryption:
    """How a confidential document is encrypted (see hub/crypto.py)."""

    suite: str
    cipher: str
    wraps_sha256: bytes
    wraps_size: int


@dataclass(frozen=True)
class Manifest:
    """The DocumentSent record: everything a recipient needs to fetch and verify a document."""

    doc_id: str
    title: str
    sender: str
    recipients: tuple[str, ...]
    file_name: str
    media_type: str
    size: int
    sha256: bytes
    chunk_size: int
    chunk_count: int
    chunk_list_sha256: bytes
    store: StoreRef
    classification: Classification = Classification.PUBLIC
    urgency: Urgency = Urgency.NORMAL
    doc_number: str = ""
    deadline: datetime | None = None
    chunk_digests: tuple[bytes, ...] = ()
    index_parts: int = 0
    encryption: Encryption | None = None

    @property
    def confidential(self) -> bool:
        """Whether the content is encrypted end to end."""
        return self.classification is Classification.CONFIDENTIAL

    def chunk_length(self, index: int) -> int:
        """Plaintext bytes in chunk `index` (the last one may be shorter)."""
        if index < self.chunk_count - 1:
            return self.chunk_size
        return self.size - self.chunk_size * (self.chunk_count - 1)

    def to_record(self) -> dict[str, Any]:
        """The Avro record for gov.exchange.v1.DocumentSent."""
        enc = self.encryption
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "doc_number": self.doc_number,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "file_name": self.file_name,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
            "chunk_size": self.chunk_size,
            "chunk_count": self.chunk_count,
            "chunk_digests": list(self.chunk_digests),
            "chunk_list_sha256": self.chunk_list_sha256,
            "index_parts": self.index_parts,
            "classification": self.classification.symbol,
            "urgency": self.urgency.symbol,
            "deadline": self.deadline,
            "store_domain": self.store.domain,
            "store_stream": self.store.stream,
            "store_prefix": self.store.prefix,
            "encryption": None
            if enc is None
            else {
                "suite": enc.suite,
                "cipher": enc.cipher,
                "wraps_sha256": enc.wraps_sha256,
                "wraps_size": enc.wraps_size,
            },
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Manifest:
        """Build from a decoded DocumentSent record."""
        enc = record.get("encryption")
        return cls(
            doc_id=record["doc_id"],
            title=record["title"],
            doc_number=record.get("doc_number", ""),
            sender=record["sender"],
            recipients=tuple(record["recipients"]),
            file_name=record["file_name"],
            media_type=record["media_type"],
            size=int(record["size"]),
            sha256=bytes(record["sha256"]),
            chunk_size=int(record["chunk_size"]),
            chunk_count=int(record["chunk_count"]),
            chunk_digests=tuple(bytes(d) for d in record.get("chunk_digests", [])),
            chunk_list_sha256=bytes(record["chunk_list_sha256"]),
            index_parts=int(record.get("index_parts", 0)),
            classification=Classification[record["classification"]],
            urgency=Urgency[record.get("urgency", "NORMAL")],
            deadline=record.get("deadline"),
            store=StoreRef(
                record.get("store_domain", ""), record["store_stream"], record["store_prefix"]
            ),
            encryption=None
            if enc is None
            else Encryption(
                enc["suite"], enc["cipher"], bytes(enc["wraps_sha256"]), int(enc["wraps_size"])
            ),
        )

    def check(self) -> None:
        """Internal consistency a receiver relies on before touching the store.

        Everything here comes from the sender: InputError says what does not hold.
        """
        check_doc_id(self.doc_id)
        try:
            for p in (self.sender, *self.recipients):
                check_participant_id(p)
        except ConfigError as exc:
            raise InputError(f"document {self.doc_id}: {exc}") from None
        if not self.recipients:
            raise InputError(f"document {self.doc_id} has no recipients")
        texts = {
            "title": self.title, "document number": self.doc_number, "file name": self.file_name,
            "media type": self.media_type, "store domain": self.store.domain,
            "store stream": self.store.stream, "store prefix": self.store.prefix,
        }  # fmt: skip
        if self.encryption is not None:
            texts.update(suite=self.encryption.suite, cipher=self.encryption.cipher)
        for what, text in texts.items():
            if control_character(text, multiline=what in ("title", "document number")):
                raise InputError(f"document {self.doc_id}: its {what} holds a control character")
        digests = [self.sha256, self.chunk_list_sha256, *self.chunk_digests]
        if self.encryption is not None:
            digests.append(self.encryption.wraps_sha256)
        if any(len(d) != 32 for d in digests):
            raise InputError(f"document {self.doc_id}: a SHA-256 digest is not 32 bytes")
        if not 0 <= self.index_parts <= self.chunk_count:
            raise InputError(f"document {self.doc_id} claims an impossible number of index parts")
        if self.size < 0 or self.chunk_size <= 0 or self.chunk_size > MAX_CHUNK_SIZE:
            raise InputError(f"document {self.doc_id} has an impossible size or chunk size")
        expected = max(1, -(-self.size // self.chunk_size))
        if self.chunk_count != expected:
            raise InputError(
                f"document {self.doc_id} claims {self.chunk_count} chunks for {self.size} bytes"
            )
        if self.confidential != (self.encryption is not None):
            raise InputError(f"document {self.doc_id}: only confidential documents are encrypted")


@dataclass(frozen=True)
class Document:
    """A document as the exchange knows it: the signed DocumentSent event and its manifest."""

    envelope: Envelope
    manifest: Manifest
    sent_at: datetime
    recalled_at: datetime | None = None

    @property
    def doc_id(self) -> str:
        """The document id."""
        return self.manifest.doc_id

    @property
    def manifest_event_id(self) -> str:
        """The ce-id of the DocumentSent event, which every receipt names."""
        return self.envelope.event_id

    def parties(self) -> tuple[str, ...]:
        """Who may fetch it: the recipients and the sender."""
        return (*self.manifest.recipients, self.manifest.sender)
