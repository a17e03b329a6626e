"""C2SP signed notes with Ed25519 keys, tlog checkpoints, and tlog-cosignature v1 cosignatures.

Formats: c2sp.org/signed-note (note text, ``— <name> <base64(key id || sig)>`` lines, key id =
SHA-256(name || "\\n" || type || public key)[:4]), c2sp.org/tlog-checkpoint (origin, size, root
hash, extension lines) and c2sp.org/tlog-cosignature (type 0x04, signed message
``cosignature/v1\\ntime <t>\\n`` + checkpoint text, signature = u64 timestamp || Ed25519 sig).

Errors::

    NoteError(ValueError)
    ├── KeyFormatError          a verifier or signer key string is malformed
    ├── MalformedNoteError      note or checkpoint text breaks the format
    └── SignatureError          a known key's signature fails, or no known key signed

The gm suite adds SM2 note signatures (hub/suites.py): signature type ``0xff`` followed by the
identifier ``govhub-sm2-sm3`` (c2sp.org/signed-note reserves 0xff for types it does not assign),
the 65-byte uncompressed point as the public key, key id = SM3(name || 0x0A || 0xff ||
"govhub-sm2-sm3" || point)[:4], and as signature the DER SM2 signature (SM3, signer ID
1234567812345678) over the note text. Verifiers that know only Ed25519 ignore these lines as the
spec requires, so a checkpoint carrying both stays an ordinary C2SP checkpoint.

This module imports only the standard library and ``cryptography``: the offline verifier uses it
(``tongsuopy`` too, imported only when an SM2 key is met).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
ALG_SM2 = 0xFF
SM2_TYPE = b"\xffgovhub-sm2-sm3"
"""The signature type of SM2 note signatures: 0xff, then an identifier unlikely to collide."""
MAX_SIGNATURES = 100
"""Notes with more signature lines are rejected (the spec requires accepting at least 16)."""
MAX_TIMESTAMP = (1 << 63) - 1

_SIG_PREFIX = "— "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(ValueError):
    """Base class of signed-note errors."""


class KeyFormatError(NoteError):
    """A verifier key (vkey) or signer key (skey) string is malformed."""


class MalformedNoteError(NoteError):
    """A note, signature line or checkpoint body does not follow the format."""


class SignatureError(NoteError):
    """A signature from a known key does not verify, or no known key signed the note."""


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """Return the 4-byte key id SHA-256(name || 0x0A || alg || public key)[:4] (SM3 over the
    SM2 type identifier for SM2 keys, so an assessor checks them with SM algorithms alone)."""
    if alg == ALG_SM2:
        return _sm3(name.encode() + b"\n" + SM2_TYPE + public_key)[:4]
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def _sm3(data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _sm2_point(public_key: Any) -> bytes:
    from tongsuopy.crypto import serialization

    return bytes(
        public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def _sm2_load(point: bytes) -> Any:
    from tongsuopy.crypto.asymciphers import ec

    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), point)


def _sm2_verify(public_key: Any, signature: bytes, message: bytes) -> bool:
    from tongsuopy.crypto import exceptions, hashes
    from tongsuopy.crypto.asymciphers import ec

    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SM3()))
    except (exceptions.InvalidSignature, ValueError):
        return False
    return True


def plain_size(text: str) -> int | None:
    """A tree size written as tlog formats write it, else None.

    Plain ASCII decimal below 2**64, no sign, no leading zero: ``str.isdigit`` would also pass
    "²" or "٣", which ``int`` refuses, and one size must have one spelling.
    """
    if not _SIZE.fullmatch(text):
        return None
    size = int(text)
    return size if size < 1 << 64 else None


def _valid_name(name: str) -> bool:
    # Printable excludes control characters and lone surrogates, which UTF-8 cannot carry.
    return (
        bool(name) and name.isprintable() and "+" not in name and not any(c.isspace() for c in name)
    )


def _b64decode(text: str) -> bytes:
    """Decode standard base64 and insist on the canonical spelling (one encoding per value)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def _split_key(text: str, what: str) -> tuple[str, str, int, bytes]:
    """Split ``<name>+<hex id>+<base64(type || 32 bytes)>`` into name, hex id, type, key."""
    name, _, rest = text.partition("+")
    hex_id, _, b64 = rest.partition("+")  # the base64 part may itself contain "+"
    if not _KEY_ID_HEX.fullmatch(hex_id):
        raise KeyFormatError(f"{what} is not of the form <name>+<hex id>+<base64 key>")
    try:
        material = _b64decode(b64)
    except ValueError as exc:
        raise KeyFormatError(f"{what} {name!r} holds a key that is {exc}") from exc
    if material.startswith(SM2_TYPE):
        if len(material) != len(SM2_TYPE) + 65 or material[len(SM2_TYPE)] != 4:
            raise KeyFormatError(f"{what} {name!r} does not hold a 65-byte SM2 point")
        return name, hex_id, ALG_SM2, material[len(SM2_TYPE) :]
    if len(material) != 33:
        raise KeyFormatError(f"{what} {name!r} does not hold a 32-byte Ed25519 key")
    return name, hex_id, material[0], material[1:]


class Verifier:
    """A named Ed25519 public key that checks note signatures (type 0x01) or cosignatures (0x04)."""

    __slots__ = ("alg", "key_id", "name", "public_key", "raw")

    def __init__(self, name: str, public_key: Any, alg: int = ALG_ED25519) -> None:
        """Create a verifier; ``alg`` is ALG_ED25519 for logs, ALG_COSIGNATURE_V1 for witnesses,
        ALG_SM2 for the gm suite's second log signature (an SM2 key of ``tongsuopy``)."""
        if not _valid_name(name):
            raise KeyFormatError(f"key name {name!r} is empty or contains spaces or '+'")
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1, ALG_SM2):
            raise KeyFormatError(f"signature type 0x{alg:02x} is not supported")
        self.name, self.public_key, self.alg = name, public_key, alg
        self.raw = _sm2_point(public_key) if alg == ALG_SM2 else public_key.public_bytes_raw()
        self.key_id = key_id(name, alg, self.raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<8 hex key id>+<base64(type || 32-byte public key)>``."""
        name, hex_id, alg, raw = _split_key(vkey, "verifier key")
        try:
            public_key = (
                _sm2_load(raw) if alg == ALG_SM2 else Ed25519PublicKey.from_public_bytes(raw)
            )
        except ValueError as exc:
            raise KeyFormatError(f"verifier key {name!r} is not a valid public key") from exc
        verifier = cls(name, public_key, alg)
        # The id is recomputed so a vkey whose parts were mixed from different keys is refused.
        if verifier.key_id.hex() != hex_id:
            raise KeyFormatError(f"verifier key {name!r} has key id {hex_id}, which does not match")
        return verifier

    def vkey(self) -> str:
        """Return the verifier key string."""
        kind = SM2_TYPE if self.alg == ALG_SM2 else bytes([self.alg])
        material = base64.b64encode(kind + self.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, text: str, signature: bytes) -> int | None:
        """Check a signature (key id stripped) over ``text``; raise SignatureError if it fails.

        Returns None for a note signature and the POSIX timestamp for a cosignature.
        """
        message, timestamp = text.encode(), None
        if self.alg == ALG_COSIGNATURE_V1:
            if len(signature) != 72:
                raise SignatureError(f"cosignature by {self.name} is not 72 bytes long")
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > MAX_TIMESTAMP:
                raise SignatureError(f"cosignature by {self.name} has an out-of-range timestamp")
            message = _cosigned_message(text, timestamp)
            signature = signature[8:]
        if self.alg == ALG_SM2:
            if not _sm2_verify(self.public_key, signature, message):
                who = f"{self.name}+{self.key_id.hex()}"
                raise SignatureError(f"SM2 signature by {who} is invalid")
            return None
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            who = f"{self.name}+{self.key_id.hex()}"
            raise SignatureError(f"signature by {who} is invalid") from None
        return timestamp

    def __repr__(self) -> str:
        return f"Verifier({self.vkey()!r})"


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


class Signer:
    """A named Ed25519 private key producing note signatures (0x01) or cosignatures (0x04).

    The private key never appears in ``repr``; ``skey()`` is for tests and tooling, never logs.
    """

    __slots__ = ("_private", "verifier")

    def __init__(self, name: str, private_key: Any, alg: int = ALG_ED25519) -> None:
        """Create a signer from a ``cryptography`` Ed25519 private key (or, with ALG_SM2, an
        SM2 private key of ``tongsuopy``)."""
        self._private = private_key
        self.verifier = Verifier(name, private_key.public_key(), alg)

    @classmethod
    def generate(cls, name: str, alg: int = ALG_ED25519) -> Signer:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate(), alg)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(type || 32-byte seed)>``."""
        if not skey.startswith("PRIVATE+KEY+"):
            raise KeyFormatError("signer key does not start with PRIVATE+KEY+")
        name, hex_id, alg, seed = _split_key(skey.removeprefix("PRIVATE+KEY+"), "signer key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed), alg)
        if signer.key_id.hex() != hex_id:
            raise KeyFormatError(f"signer key {name!r} has key id {hex_id}, which does not match")
        return signer

    @property
    def name(self) -> str:
        """The key name."""
        return self.verifier.name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self.verifier.key_id

    def skey(self) -> str:
        """Return the signer key string (secret: for tests and tooling, never log it)."""
        if self.verifier.alg == ALG_SM2:
            raise ValueError("SM2 note keys have no signer key string; they live in PEM files")
        seed = self._private.private_bytes_raw()
        material = base64.b64encode(bytes([self.verifier.alg]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{material}"

    def sign(self, text: str, *, timestamp: int | None = None) -> NoteSignature:
        """Sign note ``text``; a cosigner stamps ``timestamp`` (default: now, POSIX seconds)."""
        _check_text(text)
        if self.verifier.alg == ALG_SM2:
            from hub.suites import GM  # the gm suite's signing rules (never a 64-byte DER)

            return NoteSignature(self.name, self.key_id, GM.sign(self._private, text.encode()))
        if self.verifier.alg == ALG_ED25519:
            if timestamp is not None:
                raise ValueError("a note signature carries no timestamp; only cosignatures do")
            return NoteSignature(self.name, self.key_id, self._private.sign(text.encode()))
        stamp = int(time.time()) if timestamp is None else timestamp
        if not 0 <= stamp <= MAX_TIMESTAMP:
            raise ValueError(f"cosignature timestamp {stamp} is out of range")
        sig = self._private.sign(_cosigned_message(text, stamp))
        return NoteSignature(self.name, self.key_id, stamp.to_bytes(8, "big") + sig)

    def __repr__(self) -> str:
        return f"Signer({self.verifier.vkey()!r})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, and the signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """Return the ``— <name> <base64>`` line, with its final newline."""
        b64 = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, not yet verified, signed note."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        """Return the note in its wire form."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: who made it and, for a cosignature, when."""

    verifier: Verifier
    signature: NoteSignature
    timestamp: int | None


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise MalformedNoteError("note text must end in a newline and hold no control characters")
    if not _encodable(text):
        raise MalformedNoteError("note is not valid UTF-8")


def _encodable(text: str) -> bool:
    """Whether UTF-8 can carry the text (a str may hold lone surrogates, from JSON escapes)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note strictly (format only; signatures are not checked)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNoteError("note is not valid UTF-8") from exc
    elif not _encodable(data):
        raise MalformedNoteError("note is not valid UTF-8")
    split = data.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line separating text from signatures")
    text, sig_block = data[: split + 1], data[split + 2 :]
    _check_text(text)
    if _CONTROL.search(sig_block) or not sig_block.endswith("\n"):
        raise MalformedNoteError("note signature lines are missing or malformed")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in lines:
        name, _, b64 = line.removeprefix(_SIG_PREFIX).partition(" ")
        if not line.startswith(_SIG_PREFIX) or not _valid_name(name):
            raise MalformedNoteError(f"note signature line {line[:40]!r} is malformed")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedNoteError(f"signature by {name} is not valid base64") from exc
        if len(raw) < 5:
            raise MalformedNoteError(f"signature by {name} is too short")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(sigs))


def sign_note(text: str, *signers: Signer) -> str:
    """Return ``text`` signed by every signer, in order."""
    return Note(text, tuple(s.sign(text) for s in signers)).format()


def add_signatures(note: str, *signatures: NoteSignature) -> str:
    """Append signature lines (e.g. witness cosignatures) to a signed note, dropping duplicates."""
    parsed = parse_note(note)
    merged = tuple(dict.fromkeys([*parsed.signatures, *signatures]))
    if len(merged) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note would have more than {MAX_SIGNATURES} signatures")
    return Note(parsed.text, merged).format()


def verify_signatures(
    note: Note, verifiers: Sequence[Verifier]
) -> tuple[list[VerifiedSignature], list[NoteSignature]]:
    """Check every signature of a known key; return ``(verified, unknown)``.

    Unknown signatures (no verifier with that name *and* id) are ignored, as the spec requires;
    a failing signature from a known key raises SignatureError, because it can only come from
    tampering or a confused signer and the spec says the note should then be rejected.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other.raw != v.raw or other.alg != v.alg:
            raise SignatureError(f"two keys share the name and id {v.name}+{v.key_id.hex()}")
    verified: list[VerifiedSignature] = []
    unknown: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unknown:
                unknown.append(sig)
            continue
        timestamp = verifier.verify(note.text, sig.signature)
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            verified.append(VerifiedSignature(verifier, sig, timestamp))
    return verified, unknown


def open_note(
    data: bytes | str, verifiers: Sequence[Verifier]
) -> tuple[Note, list[VerifiedSignature]]:
    """Parse a note and verify it; raise unless at least one known key signed it validly."""
    note = parse_note(data)
    verified, _ = verify_signatures(note, verifiers)
    if not verified:
        raise SignatureError("note has no valid signature from a known key")
    return note, verified


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """Return the checkpoint note text."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly."""
        _check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not all(lines):
            raise MalformedNoteError(
                "checkpoint needs origin, size and root hash lines, none empty"
            )
        origin, size, root_b64, *extensions = lines
        tree_size = plain_size(size)
        if tree_size is None:
            raise MalformedNoteError(f"checkpoint tree size {size[:24]!r} is not a plain decimal")
        try:
            root = _b64decode(root_b64)
        except ValueError as exc:
            raise MalformedNoteError(f"checkpoint root hash is {exc}") from exc
        if len(root) != 32:
            raise MalformedNoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, tree_size, root, tuple(extensions))


def open_checkpoint(
    data: bytes | str, log_verifiers: Sequence[Verifier], origin: str | None = None
) -> tuple[Checkpoint, list[VerifiedSignature]]:
    """Verify a signed checkpoint with the log's keys and parse it; optionally pin the origin."""
    note, verified = open_note(data, log_verifiers)
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedNoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint, verified


def cosign(note: str, cosigner: Signer, *, timestamp: int | None = None) -> str:
    """Add a tlog-cosignature v1 line by ``cosigner`` (type 0x04) to a signed checkpoint."""
    if cosigner.verifier.alg != ALG_COSIGNATURE_V1:
        raise ValueError("cosigning needs a signer created with alg=ALG_COSIGNATURE_V1")
    text = parse_note(note).text
    Checkpoint.parse(text)
    return add_signatures(note, cosigner.sign(text, timestamp=timestamp))
