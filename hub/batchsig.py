"""Batch signatures (govhub-sig-v2): one Ed25519 signature over the Merkle root of many events.

A sender that emits events in runs signs the RFC 9162 Merkle Tree Hash of the runs' *event
statements* once, and every event carries the signature, its index, the batch size and its
inclusion path (docs/protocol.md, section "Batch signatures"). Each event stays verifiable on
its own: a receiver rebuilds the root from the event and its path and checks the signature over
that root. Receivers remember roots they have verified, so a batch of n events costs one
Ed25519 verification and n short hash chains instead of n verifications (as X-Road's batch
signatures do with hash chains).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.errors import Reason, RejectedEvent
from hub.merkle import root_from_inclusion

SIG_V2 = "govhub-sig-v2"
STATEMENT_V2 = "govhub-event-v2"

H_SIG_V1 = "govhub-sig"
H_BATCH_SIG = "govhub-batch-sig"
H_BATCH_INDEX = "govhub-batch-index"
H_BATCH_SIZE = "govhub-batch-size"
H_BATCH_PATH = "govhub-batch-path"
BATCH_HEADERS = (H_BATCH_SIG, H_BATCH_INDEX, H_BATCH_SIZE, H_BATCH_PATH)

MAX_BATCH_EVENTS = 4096
"""Events one batch signature may cover: keeps every inclusion path within 12 hashes."""

UNSIGNABLE = "the subject or a signed header is not valid Unicode text"

_sha256 = hashlib.sha256
_DECIMAL = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True, slots=True)
class BatchProof:
    """Where an event sits in its signed batch: index, batch size, inclusion path."""

    index: int
    size: int
    path: tuple[bytes, ...]


def statement(
    subject: str, event_id: str, source: str, type_name: str, time_text: str, body: bytes
) -> bytes:
    """The event statement v2: what one leaf of a batch tree commits to."""
    digest = _sha256(body).hexdigest()
    return (
        f"{STATEMENT_V2}\n{subject}\n{event_id}\n{source}\n{type_name}\n{time_text}\n{digest}\n"
    ).encode()


def signing_input(source: str, size: int, root: bytes) -> bytes:
    """The exact bytes the Ed25519 signature of a v2 batch covers."""
    return f"{SIG_V2}\n{source}\n{size}\n{root.hex()}\n".encode()


def tree(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """The RFC 9162 root over leaf hashes and every leaf's inclusion path (concatenated).

    Levels are built bottom-up with an unpaired last node carried up unchanged, which yields
    exactly RFC 9162's tree (split at the largest power of two below n) and its audit paths.
    """
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        pairs = range(0, len(below) - 1, 2)
        above = [_sha256(b"\x01" + below[j] + below[j + 1]).digest() for j in pairs]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    paths = []
    inner = levels[:-1]
    for index in range(len(leaf_hashes)):
        parts = []
        for level in inner:
            sibling = index ^ 1
            if sibling < len(level):
                parts.append(level[sibling])
            index >>= 1
        paths.append(b"".join(parts))
    return levels[-1][0], paths


def read_proof(headers: Mapping[str, str]) -> tuple[bytes, BatchProof]:
    """The signature and batch position of a v2 event, checked for form (or RejectedEvent)."""
    missing = [name for name in BATCH_HEADERS if not headers.get(name)]
    if missing:
        raise RejectedEvent(
            Reason.MISSING_HEADER, f"the event lacks header(s) {', '.join(missing)}"
        )
    if H_SIG_V1 in headers:
        # Two signatures could be checked differently by different receivers; one is allowed.
        raise RejectedEvent(
            Reason.BAD_HEADER, f"an event carries {H_SIG_V1} or {H_BATCH_SIG}, not both"
        )
    index_text, size_text = headers[H_BATCH_INDEX], headers[H_BATCH_SIZE]
    # Plain decimal only: "+1" or " 1" would give one event two header spellings. At most four
    # digits (MAX_BATCH_EVENTS): int() refuses 4,300 digits and more with an error of its own.
    if not (_DECIMAL.fullmatch(index_text) and _DECIMAL.fullmatch(size_text)):
        raise RejectedEvent(Reason.BAD_HEADER, "govhub-batch-index and -size must be decimal")
    index, size = int(index_text), int(size_text)
    if not (2 <= size <= MAX_BATCH_EVENTS and index < size):
        raise RejectedEvent(
            Reason.BAD_HEADER,
            f"govhub-batch-index {index} of size {size} is outside 0 <= index < size <= "
            f"{MAX_BATCH_EVENTS} (size at least 2)",
        )
    try:
        signature = base64.b64decode(headers[H_BATCH_SIG], validate=True)
        raw_path = base64.b64decode(headers[H_BATCH_PATH], validate=True)
    except ValueError:  # binascii.Error, or plain ValueError for non-ASCII text
        raise RejectedEvent(
            Reason.BAD_HEADER, "govhub-batch-sig and -path must be base64"
        ) from None
    if len(signature) != 64:
        raise RejectedEvent(Reason.BAD_HEADER, "govhub-batch-sig must be a 64-byte signature")
    if len(raw_path) % 32:
        raise RejectedEvent(Reason.BAD_HEADER, "govhub-batch-path must hold 32-byte hashes")
    path = tuple(raw_path[i : i + 32] for i in range(0, len(raw_path), 32))
    return signature, BatchProof(index, size, path)


class RootCache:
    """Batch roots whose signature already verified, so a batch costs one Ed25519 check.

    Keyed by the exact public key, signature and signing input: a hit means precisely that
    this signature over these bytes verified with this key before.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._seen: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._limit = limit

    def check(self, public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
        """True if the signature verifies (from memory when it verified before)."""
        entry = (public_key.public_bytes_raw(), signature, message)
        if entry in self._seen:
            self._seen.move_to_end(entry)
            return True
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            return False
        self._seen[entry] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


ROOTS = RootCache()


def check_batch_signature(
    subject: str,
    body: bytes,
    event_id: str,
    source: str,
    type_name: str,
    time_text: str,
    signature: bytes,
    proof: BatchProof,
    public_key: Ed25519PublicKey,
    key_ref: str,
) -> None:
    """Verify a v2 event: its statement, path and the batch signature, or raise RejectedEvent."""
    try:
        signed = statement(subject, event_id, source, type_name, time_text, body)
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 statement, so nothing signed it
        raise RejectedEvent(Reason.BAD_HEADER, UNSIGNABLE) from None
    leaf = _sha256(b"\x00" + signed).digest()
    root = root_from_inclusion(leaf, proof.index, proof.size, proof.path)
    if root is None or not ROOTS.check(
        public_key, signature, signing_input(source, proof.size, root)
    ):
        raise RejectedEvent(
            Reason.BAD_SIGNATURE,
            f"the batch signature of event {event_id} does not verify with key {key_ref}",
        )
