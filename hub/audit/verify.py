"""Standalone offline verifier of govhub audit evidence bundles (stdlib + ``cryptography`` only;
``tongsuopy`` too when the evidence holds SM2 signatures of the gm suite).

``python -m hub.audit.verify BUNDLE [--trust TRUST.json] [--json]`` exits 0 when everything
verifies, 1 naming the first item that fails, 2 when an input is unreadable or malformed.

Evidence bundle v1, one JSON object (times RFC 3339 or null = unbounded; bytes standard base64)::

    format            "govhub-audit-bundle-v1"
    origin            the checkpoint origin line
    log_keys          [{vkey: "<name>+<hex id>+<b64(0x01||key)>", not_before, not_after}]
    log_keys_sm2      gm suite (optional): [{vkey: "<name>+<hex id>+<b64(0xff||"govhub-sm2-sm3"||
                        65-byte point)>", not_before, not_after}]; when present every checkpoint
                        must also carry a valid SM2 signature by one of them (docs/protocol.md)
    witnesses         {keys: ["<name>+<hex id>+<b64(0x04||key)>", ...], k: int}    (optional)
    participant_keys  [{participant, key_id: hex16, public_key: raw 32 bytes (Ed25519) or the
                        65-byte SM2 point, algorithm: "ed25519" (default) or "sm2",
                        not_before (required), not_after, revoked_at}]
    checkpoints       [signed checkpoint note, ...] ascending; entries are proven against the last
    consistency       [{old_size, new_size, proof: [hash, ...]}] one per consecutive pair
    entries           [{leaf_index, leaf: leaf bytes v1, inclusion: [hash, ...]}]
    entries_range     {start, end}  (optional) claims every leaf in [start, end) is in the bundle

A trust file (``--trust``) holds just the three key sections and replaces the bundle's keys
entirely: an auditor must not rely on keys chosen by the party audited (the report warns when
no trust file is used). A log key's window must not end before it begins. Beyond signatures and
proofs, every checkpoint must meet the witness policy (each one in a bundle is a published
one), a log key must have been valid when it signed (after the latest ``received_at`` the
checkpoint covers, before its earliest witness cosignature), and each "accepted" entry's sender
signature (wire contract v1, or a v2 batch signature through the event's inclusion path) is
re-checked from the leaf alone; quarantined entries are listed, not failed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub import merkle
from hub.audit import note

BUNDLE_FORMAT = "govhub-audit-bundle-v1"
CLOCK_SKEW = 300
"""Seconds a witness timestamp may lie in the future before it counts as forged."""
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_BATCH_NUMBER = re.compile(r"[0-9]{1,4}")
_LEAF_FIELDS: dict[str, tuple[type, ...]] = {
    "subject": (str,), "headers": (dict,), "body": (str,), "verdict": (str,),
    "reason": (str, type(None)), "detail": (str, type(None)), "stream": (str,),
    "stream_seq": (int,), "origin": (dict, type(None)), "received_at": (str,),
}  # fmt: skip


class BundleError(Exception):
    """The bundle or trust file is unreadable or malformed (exit status 2)."""


class VerificationError(Exception):
    """The evidence fails a check; the message names the first failing item (exit status 1)."""


@dataclass(frozen=True)
class LogKey:
    """A log verifier key and its validity window in POSIX seconds (±inf when open)."""

    verifier: note.Verifier
    not_before: float
    not_after: float


@dataclass(frozen=True)
class ParticipantKey:
    """A registered sender key; times in POSIX seconds (inf when unset)."""

    public_key: Any
    not_before: float
    not_after: float
    revoked_at: float
    algorithm: str = "ed25519"

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check a signature with the key's algorithm; InvalidSignature when it fails."""
        if self.algorithm == "ed25519":
            self.public_key.verify(signature, message)
            return
        # SM2 over SM3 with the default signer ID 1234567812345678 (wire contract v1-sm2).
        from tongsuopy.crypto import exceptions, hashes
        from tongsuopy.crypto.asymciphers import ec

        try:
            self.public_key.verify(signature, message, ec.ECDSA(hashes.SM3()))
        except (exceptions.InvalidSignature, ValueError):
            raise InvalidSignature from None


def _sm3(data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _sm2_public(raw: bytes, where: str) -> Any:
    try:
        from tongsuopy.crypto.asymciphers import ec
    except ImportError:  # pragma: no cover - tongsuopy is a govhub dependency
        raise BundleError(f"{where} is an SM2 key: checking it needs tongsuopy") from None
    if len(raw) != 65 or raw[0] != 4:
        raise BundleError(f"{where}.public_key is not a 65-byte uncompressed SM2 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), raw)


@dataclass(frozen=True)
class Trust:
    """The keys an audit relies on and where they came from (``trust file`` or ``bundle``)."""

    log_keys: list[LogKey]
    witnesses: list[note.Verifier]
    k: int
    participant_keys: dict[tuple[str, str], ParticipantKey]
    source: str
    sm2_log_keys: list[LogKey] = field(default_factory=list)
    """gm suite: keys of which one must also have signed every checkpoint with SM2."""


@dataclass
class Report:
    """What a successful verification established."""

    origin: str
    tree_size: int
    root_hash: str
    checkpoints: int
    entries: int
    accepted_verified: int
    quarantined: list[dict[str, Any]]
    witnesses: list[str]
    witness_policy_k: int
    trust_source: str
    warnings: list[str] = field(default_factory=list)
    sm2_checkpoint_signatures: bool = False
    """gm suite: every checkpoint's second, SM2 signature was checked too."""


def _get(obj: Any, key: str, kind: type, where: str, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise BundleError(f"{where} must be a JSON object")
    value = obj.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python; a JSON true must not pass as a size or index.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleError(f"{where}.{key} is missing or has the wrong type")
    return value


def _time(text: Any, where: str, default: float | None = None) -> float:
    if text is None and default is not None:
        return default
    if isinstance(text, str) and _RFC3339.fullmatch(text):
        try:
            return datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError):
            pass
    raise BundleError(f"{where} is not an RFC 3339 date-time with seconds and a time zone")


def _b64(text: Any, where: str) -> bytes:
    if isinstance(text, str):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise BundleError(f"{where} is not valid base64")


def _hashes(obj: Any, key: str, where: str) -> list[bytes]:
    return [_b64(h, f"{where}.{key}[{i}]") for i, h in enumerate(_get(obj, key, list, where))]


def _known(obj: Any, fields: str, where: str) -> None:
    # A misspelt "revoked_at" must not silently mean "never revoked".
    extra = sorted(set(obj) - set(fields.split())) if isinstance(obj, dict) else []
    if extra:
        raise BundleError(f"{where} has an unknown field {extra[0]!r}")


def _log_keys(items: list[Any], where: str, alg: int, kind: str) -> list[LogKey]:
    """The log keys of one list (``log_keys`` or ``log_keys_sm2``), each with its window."""
    keys = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        _known(item, "vkey not_before not_after", at)
        v = note.Verifier.from_vkey(_get(item, "vkey", str, at))
        if v.alg != alg:
            raise BundleError(f"{at} is not {kind}")
        start = _time(item.get("not_before"), f"{at}.not_before", -math.inf)
        end = _time(item.get("not_after"), f"{at}.not_after", math.inf)
        # A window that ends before it begins holds no moment: such a key can vouch for
        # nothing, and accepting it silently would hide a broken rotation.
        if end <= start:
            raise BundleError(f"{at} has a validity window that ends before it begins")
        keys.append(LogKey(v, start, end))
    return keys


def load_trust(obj: Any, source: str) -> Trust:
    """Read ``log_keys``, ``witnesses`` and ``participant_keys`` from a bundle or trust file."""
    if source != "bundle":
        _known(obj, "log_keys log_keys_sm2 witnesses participant_keys", source)
    try:
        log_keys = _log_keys(
            _get(obj, "log_keys", list, source),
            f"{source}.log_keys",
            note.ALG_ED25519,
            "an Ed25519 note key (type 0x01)",
        )
        sm2_log_keys = _log_keys(
            _get(obj, "log_keys_sm2", list, source, optional=True) or [],
            f"{source}.log_keys_sm2",
            note.ALG_SM2,
            "an SM2 note key (type 0xff govhub-sm2-sm3)",
        )
        policy = _get(obj, "witnesses", dict, source, optional=True) or {"keys": [], "k": 0}
        _known(policy, "keys k", f"{source}.witnesses")
        keys = _get(policy, "keys", list, f"{source}.witnesses")
        witnesses = [note.Verifier.from_vkey(v if isinstance(v, str) else "") for v in keys]
        if any(w.alg != note.ALG_COSIGNATURE_V1 for w in witnesses):
            raise BundleError(f"{source}.witnesses.keys must be cosignature keys (type 0x04)")
        k = _get(policy, "k", int, f"{source}.witnesses")
        if not 0 <= k <= len(witnesses):
            raise BundleError(f"{source}.witnesses.k must be between 0 and the number of keys")
        participants = {}
        for i, item in enumerate(_get(obj, "participant_keys", list, source, True) or []):
            where = f"{source}.participant_keys[{i}]"
            _known(
                item,
                "participant key_id public_key algorithm not_before not_after revoked_at",
                where,
            )
            raw = _b64(_get(item, "public_key", str, where), f"{where}.public_key")
            key_id = _get(item, "key_id", str, where)
            algorithm = item.get("algorithm", "ed25519")
            if algorithm == "sm2":
                if len(raw) != 65 or _sm3(raw)[:8].hex() != key_id:
                    raise BundleError(f"{where}.key_id does not match its 65-byte SM2 key")
                public: Any = _sm2_public(raw, where)
            elif algorithm == "ed25519":
                if len(raw) != 32 or hashlib.sha256(raw).digest()[:8].hex() != key_id:
                    raise BundleError(f"{where}.key_id does not match its 32-byte public key")
                public = Ed25519PublicKey.from_public_bytes(raw)
            else:
                raise BundleError(f"{where}.algorithm must be ed25519 or sm2")
            name = _get(item, "participant", str, where)
            if (name, key_id) in participants:
                raise BundleError(f"{where} lists key {name}/{key_id} a second time")
            participants[name, key_id] = ParticipantKey(
                public,
                _time(item.get("not_before"), f"{where}.not_before"),
                _time(item.get("not_after"), f"{where}.not_after", math.inf),
                _time(item.get("revoked_at"), f"{where}.revoked_at", math.inf),
                algorithm,
            )  # fmt: skip
    except ValueError as exc:  # a NoteError from a key string, or a key cryptography refuses
        raise BundleError(f"{source}: {exc}") from exc
    return Trust(log_keys, witnesses, k, participants, source, sm2_log_keys)


def sender_signing_input(
    subject: str, headers: dict[str, str], body: bytes, algorithm: str = "ed25519"
) -> bytes:
    """Return the v1 signing input: ``govhub-sig-v1`` and six more lines ending in the body's
    SHA-256, or for an SM2 key (v1-sm2) ``govhub-sig-v1-sm2`` with the body's SM3."""
    fields = [headers["ce-id"], headers["ce-source"], headers["ce-type"], headers["ce-time"]]
    if algorithm == "sm2":
        lines = ["govhub-sig-v1-sm2", subject, *fields, _sm3(body).hex()]
    else:
        lines = ["govhub-sig-v1", subject, *fields, hashlib.sha256(body).hexdigest()]
    return "".join(line + "\n" for line in lines).encode()


def batch_signing_input(
    subject: str, headers: dict[str, str], body: bytes
) -> tuple[bytes, bytes] | None:
    """Return the govhub-sig-v2 signing input and signature of a batch-signed event.

    The event statement (``govhub-event-v2`` and six more lines) is a leaf of the batch's
    RFC 9162 tree; its inclusion path leads to the root the sender signed. None when the
    batch headers are malformed or the path does not fit its index and size.
    """
    index, size = headers["govhub-batch-index"], headers["govhub-batch-size"]
    # Four ASCII digits at most, as receivers require (and int() refuses 4,300 digits and more).
    if not (_BATCH_NUMBER.fullmatch(index) and _BATCH_NUMBER.fullmatch(size)):
        return None
    try:
        signature = base64.b64decode(headers["govhub-batch-sig"], validate=True)
        path = base64.b64decode(headers["govhub-batch-path"], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(path) % 32 or len(signature) != 64 or not 2 <= int(size) <= 4096:
        return None
    fields = [headers["ce-id"], headers["ce-source"], headers["ce-type"], headers["ce-time"]]
    lines = ["govhub-event-v2", subject, *fields, hashlib.sha256(body).hexdigest()]
    statement = "".join(line + "\n" for line in lines).encode()
    hashes = [path[i : i + 32] for i in range(0, len(path), 32)]
    root = merkle.root_from_inclusion(merkle.leaf_hash(statement), int(index), int(size), hashes)
    if root is None:
        return None
    text = f"govhub-sig-v2\n{headers['ce-source']}\n{int(size)}\n{root.hex()}\n"
    return text.encode(), signature


def parse_leaf(raw: bytes) -> dict[str, Any]:
    """Read leaf bytes v1, checking every field's type; VerificationError says what is wrong."""
    try:
        text = raw.decode("utf-8")
        leaf = json.loads(text)
        if "\\u" in text:  # an escaped lone surrogate is JSON but not Unicode text
            json.dumps(leaf, ensure_ascii=False).encode()
    except (UnicodeError, ValueError, RecursionError):  # RecursionError: absurd nesting
        raise VerificationError("leaf is not UTF-8 JSON") from None
    if not isinstance(leaf, dict) or leaf.get("v") != 1:
        raise VerificationError("leaf is not a version 1 govhub leaf")
    for name, kinds in _LEAF_FIELDS.items():
        # Present even when null: a leaf without "reason" is not one the appender wrote.
        if name not in leaf or not isinstance(leaf[name], kinds):
            raise VerificationError(f"leaf field {name!r} is missing or has the wrong type")
    if leaf["verdict"] not in ("accepted", "quarantined"):
        raise VerificationError(f"leaf verdict {leaf['verdict']!r} is unknown")
    if not all(isinstance(v, str) for v in leaf["headers"].values()):
        raise VerificationError("leaf headers must all be strings")
    return leaf


def _check_sender(leaf: dict[str, Any], trust: Trust) -> None:
    """Re-check an accepted event's sender signature from the leaf alone."""
    headers = {k.lower(): v for k, v in leaf["headers"].items()}
    if len(headers) != len(leaf["headers"]):
        raise VerificationError("leaf headers repeat a name in different letter case")
    batched = "govhub-batch-sig" in headers
    if batched and "govhub-sig" in headers:
        raise VerificationError("the event carries both a v1 and a v2 signature")
    signature_headers = (
        ("govhub-batch-sig", "govhub-batch-index", "govhub-batch-size", "govhub-batch-path")
        if batched
        else ("govhub-sig",)
    )
    for name in ("ce-id", "ce-source", "ce-type", "ce-time", "govhub-key", *signature_headers):
        # A newline inside a signed field would let two different events share a signing input.
        if name not in headers or "\n" in headers[name]:
            raise VerificationError(f"header {name} is missing or malformed")
    if "\n" in leaf["subject"]:
        raise VerificationError("leaf subject contains a newline")
    ref = headers["govhub-key"]
    participant, _, kid = ref.rpartition("/")
    # Receivers only accept keys registered for the claimed sender; so must the auditor.
    if participant != headers["ce-source"]:
        raise VerificationError(f"govhub-key {ref} does not belong to ce-source")
    key = trust.participant_keys.get((participant, kid))
    if key is None:
        raise VerificationError(f"sender key {ref} is not in the {trust.source}")
    at = _time(headers["ce-time"], "header ce-time")
    if not key.not_before <= at < key.not_after:
        raise VerificationError(f"sender key {ref} was not valid at the event's ce-time")
    if at >= key.revoked_at:
        raise VerificationError(f"sender key {ref} was revoked before the event's ce-time")
    body = _b64(leaf["body"], "leaf body")
    try:
        if batched:
            signed = batch_signing_input(leaf["subject"], headers, body)
            if signed is None or key.algorithm != "ed25519":
                raise VerificationError(f"the batch signature headers of key {ref} are malformed")
            key.verify(signed[1], signed[0])
        else:
            signature = _b64(headers["govhub-sig"], "header govhub-sig")
            signed_input = sender_signing_input(leaf["subject"], headers, body, key.algorithm)
            key.verify(signature, signed_input)
    except InvalidSignature:
        raise VerificationError(f"sender signature does not verify with key {ref}") from None


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint a trusted log key signed, with those keys and its witness cosignatures."""

    checkpoint: note.Checkpoint
    log_keys: list[LogKey]
    cosigned: dict[str, int]  # witness "<name>+<key id>" -> cosignature time

    def signed_in_window(self, received: float) -> bool:
        """Whether a key that signed it was valid when it signed, as far as evidence shows.

        The signing time is bounded by evidence: the leaves it covers were received before it
        (the latest at ``received``), and witnesses had seen it by their timestamps. A log key
        used outside its validity window (retired, or not yet published) must not vouch for
        history.
        """
        seen_by = min(self.cosigned.values(), default=math.inf)
        return any(k.not_before <= seen_by and received < k.not_after for k in self.log_keys)


def open_checkpoint(
    text: Any, origin: str, trust: Trust, now: float, label: str
) -> SignedCheckpoint:
    """Parse a checkpoint note and check what a note alone shows; raise naming ``label``.

    A trusted log key signed it, for this origin; an empty tree carries the empty root; every
    cosignature from a trusted witness is valid and none is dated in the future. Whether the
    witness policy applies and the key windows need more than the note (the caller has them).
    The online verifier (hub/audit/fsck.py) opens stored checkpoints with this same function.
    """
    try:
        signed_note = note.parse_note(text if isinstance(text, str) else "")
        cp = note.Checkpoint.parse(signed_note.text)
    except note.NoteError as exc:
        raise BundleError(f"{label} is not a signed checkpoint note: {exc}") from exc
    what = f"{label} (tree size {cp.size})"
    try:
        verified, _ = note.verify_signatures(signed_note, [k.verifier for k in trust.log_keys])
        cosigs, _ = note.verify_signatures(signed_note, trust.witnesses)
    except note.NoteError as exc:
        raise VerificationError(f"{what}: {exc}") from exc
    if not verified:
        raise VerificationError(f"{what} has no valid signature from a trusted log key")
    if trust.sm2_log_keys:
        # The gm suite's second signature: what lets an assessor check the log with SM2 and
        # SM3 alone. A trust that names SM2 log keys requires it on every checkpoint.
        try:
            sm2, _ = note.verify_signatures(signed_note, [k.verifier for k in trust.sm2_log_keys])
        except note.NoteError as exc:
            raise VerificationError(f"{what}: {exc}") from exc
        if not sm2:
            raise VerificationError(f"{what} has no valid SM2 signature from a trusted log key")
    if cp.origin != origin:
        raise VerificationError(f"{what} has origin {cp.origin!r}, not {origin!r}")
    if cp.size == 0 and cp.root_hash != merkle.EMPTY_ROOT:
        raise VerificationError(f"{what} is empty but does not carry the empty-tree root")
    times = {f"{c.verifier.name}+{c.verifier.key_id.hex()}": c.timestamp or 0 for c in cosigs}
    # A cosignature from the future cannot be honest, and it would stretch the key window.
    if any(t > now + CLOCK_SKEW for t in times.values()):
        raise VerificationError(f"{what} carries a witness cosignature dated in the future")
    ids = {v.verifier.key_id for v in verified}
    return SignedCheckpoint(cp, [k for k in trust.log_keys if k.verifier.key_id in ids], times)


def _check_checkpoints(
    bundle: Any, origin: str, trust: Trust, now: float
) -> list[SignedCheckpoint]:
    """Check each checkpoint's signatures, then its consistency with the one before."""
    notes = _get(bundle, "checkpoints", list, "bundle")
    proofs = _get(bundle, "consistency", list, "bundle")
    if not notes or len(proofs) != len(notes) - 1:
        raise BundleError("bundle needs checkpoints and one consistency proof per pair of them")
    out: list[SignedCheckpoint] = []
    for i, text in enumerate(notes):
        out.append(open_checkpoint(text, origin, trust, now, f"checkpoint {i}"))
        # Every checkpoint of a bundle is a published one, and publishing takes the policy.
        if len(out[i].cosigned) < trust.k:
            raise VerificationError(
                f"checkpoint {i} (tree size {out[i].checkpoint.size}) has "
                f"{len(out[i].cosigned)} valid witness cosignatures but the policy needs {trust.k}"
            )
        if i == 0:
            continue
        old, cp = out[i - 1].checkpoint, out[i].checkpoint
        item, where = proofs[i - 1], f"bundle.consistency[{i - 1}]"
        sizes = tuple(_get(item, key, int, where) for key in ("old_size", "new_size"))
        if sizes != (old.size, cp.size):
            raise BundleError(f"{where} is for sizes {sizes}, not ({old.size}, {cp.size})")
        proof = _hashes(item, "proof", where)
        try:
            merkle.verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, proof)
        except merkle.ProofError as exc:
            raise VerificationError(f"checkpoints {i - 1} and {i}: {exc}") from exc
    return out


def _check_entries(
    bundle: Any, latest: note.Checkpoint, trust: Trust
) -> tuple[dict[int, float], list[dict[str, Any]]]:
    """Prove each entry's inclusion, then re-check its sender; return leaf index -> time."""
    seen: dict[int, float] = {}
    quarantined: list[dict[str, Any]] = []
    for i, item in enumerate(_get(bundle, "entries", list, "bundle")):
        where = f"bundle.entries[{i}]"
        index = _get(item, "leaf_index", int, where)
        raw = _b64(_get(item, "leaf", str, where), f"{where}.leaf")
        proof = _hashes(item, "inclusion", where)
        what = f"entry {i} (leaf index {index})"
        if index in seen:
            raise BundleError(f"{what} appears twice in the bundle")
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(raw), index, latest.size, proof, latest.root_hash
            )
            leaf = parse_leaf(raw)
            seen[index] = _time(leaf["received_at"], "leaf received_at")
            if leaf["verdict"] == "accepted":
                _check_sender(leaf, trust)
            else:
                quarantined.append({"leaf_index": index, "reason": leaf["reason"]})
        except (merkle.ProofError, VerificationError, BundleError) as exc:
            reason = str(exc).replace("the expected root hash", "the checkpoint root")
            raise VerificationError(f"{what}: {reason}") from exc
    claimed = _get(bundle, "entries_range", dict, "bundle", optional=True)
    if claimed is not None:
        start = _get(claimed, "start", int, "bundle.entries_range")
        end = _get(claimed, "end", int, "bundle.entries_range")
        if not 0 <= start <= end <= latest.size:
            raise BundleError(f"bundle.entries_range does not lie within tree size {latest.size}")
        present = sorted(j for j in seen if start <= j < end)
        # The first index that differs from its position is the first gap (O(entries), not O(size)).
        missing = next((start + n for n, j in enumerate(present) if j != start + n), None)
        if missing is not None or len(present) != end - start:
            missing = start + len(present) if missing is None else missing
            raise VerificationError(f"leaf index {missing} is missing from the claimed range")
    return seen, quarantined


def verify_bundle(bundle: Any, trust: Trust | None = None, *, now: float | None = None) -> Report:
    """Verify an evidence bundle; raise VerificationError naming the first failing item.

    Without ``trust`` the keys shipped in the bundle are used, and the report warns about it.
    """
    if _get(bundle, "format", str, "bundle") != BUNDLE_FORMAT:
        raise BundleError(f"bundle format is not {BUNDLE_FORMAT}")
    origin = _get(bundle, "origin", str, "bundle")
    trust = trust or load_trust(bundle, "bundle")
    signed = _check_checkpoints(bundle, origin, trust, time.time() if now is None else now)
    latest = signed[-1]
    seen, quarantined = _check_entries(bundle, latest.checkpoint, trust)
    for i, s in enumerate(signed):
        received = max((t for j, t in seen.items() if j < s.checkpoint.size), default=-math.inf)
        if not s.signed_in_window(received):
            what = f"checkpoint {i} (tree size {s.checkpoint.size})"
            raise VerificationError(f"{what} is signed only by log keys used out of their window")
    cp = latest.checkpoint
    report = Report(
        origin, cp.size, base64.b64encode(cp.root_hash).decode(), len(signed), len(seen),
        len(seen) - len(quarantined), quarantined, sorted(latest.cosigned), trust.k, trust.source,
    )  # fmt: skip
    report.sm2_checkpoint_signatures = bool(trust.sm2_log_keys)
    if trust.source == "bundle":
        report.warnings.append(
            "keys were taken from the bundle itself; pass --trust with keys obtained independently"
        )
    return report


def _summary(r: Report) -> str:
    lines = [
        "OK: audit bundle verified",
        f"  log origin    {r.origin}",
        f"  tree size     {r.tree_size} (root {r.root_hash})",
        f"  checkpoints   {r.checkpoints} signed and mutually consistent",
        f"  witnesses     {len(r.witnesses)} cosigned the latest (policy: {r.witness_policy_k})",
        f"  entries       {r.entries} included: {r.accepted_verified} accepted with valid sender "
        f"signatures, {len(r.quarantined)} quarantined",
        f"  keys from     {r.trust_source}",
    ]
    if r.sm2_checkpoint_signatures:
        lines.insert(4, "  SM2 (gm)      every checkpoint also carries a valid SM2 log signature")
    return "\n".join(lines + [f"  WARNING: {w}" for w in r.warnings])


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise BundleError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{what} {path} is not valid JSON (truncated or corrupted?)") from exc
    except RecursionError:  # JSON nested deeper than Python's stack allows
        raise BundleError(f"{what} {path} nests too deeply to be a bundle") from None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser("python -m hub.audit.verify", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("bundle", help="evidence bundle (JSON)")
    parser.add_argument("--trust", help="trust file with the keys you trust (JSON)")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    args = parser.parse_args(argv)
    try:
        bundle = _load_json(args.bundle, "bundle")
        trust = args.trust and load_trust(_load_json(args.trust, "trust file"), "trust file")
        report = verify_bundle(bundle, trust or None)
    except (BundleError, VerificationError) as exc:
        status = 2 if isinstance(exc, BundleError) else 1
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "exit_status": status}))
        kind = "unusable input" if status == 2 else "verification failed"
        print(f"{kind}: {exc}.", file=sys.stderr)
        return status
    print(json.dumps({"ok": True, **asdict(report)}, indent=2) if args.json else _summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
