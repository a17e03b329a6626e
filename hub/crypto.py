"""End-to-end encryption to participants: HPKE (RFC 9180) key sealing and chunk encryption.

A confidential document is encrypted once with a random content key; the content key (with
anything else the recipients need) is sealed separately to each recipient's registered
encryption key with HPKE, so the hub operator and county relays carry only ciphertext.

```
seal_for(recipients, secret, context=...)   -> [KeyWrap]     one HPKE ciphertext per recipient
open_as(participant, keystore, wraps, ...)  -> secret        with the participant's private key
encrypt_for / decrypt_as                    small payloads: AES-256-GCM + sealed key
ChunkCipher(key, doc_id, count)             deterministic AES-256-GCM-SIV per chunk
```

Suites: `x25519` = DHKEM(X25519, HKDF-SHA256) and `mlkem768-x25519` = the ML-KEM-768 +
X25519 hybrid KEM (post-quantum option), both with HKDF-SHA256 and AES-256-GCM; and `sm2`,
the gm suite's SM2 public-key encryption of the key with SM4-GCM content (hub/gmcrypto.py).
A private key is kept as a 32-byte seed (hub/keys.py stores it encrypted) from which the
suite's key is derived, so both suites share one storage format.

The document exchange and the directory seal with it, and enrollment makes each participant's
encryption keys with it (`new_registered_keys`), so it sits below all three.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub import gmcrypto
from hub.envelope import SigningKey, format_time
from hub.errors import ContentCorrupted, InputError, KeyStoreError, NotRecipient, RegistryError
from hub.keys import KeyStore
from hub.participants import EncryptionKey, Participant
from hub.suites import GM, INTL, Suite

SUITE_X25519 = "x25519"
SUITE_HYBRID = "mlkem768-x25519"
SUITE_SM2 = "sm2"
SUITES = (SUITE_X25519, SUITE_HYBRID, SUITE_SM2)

_HPKE = {
    SUITE_X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    SUITE_HYBRID: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}
_MLKEM768_PUBLIC_LEN = 1184
_HYBRID_SEED_INFO = b"govhub mlkem768-x25519 seed v1"
_ATTEST_V1 = "govhub-enc-key-v1"
_SEAL_V1 = b"govhub-seal-v1"
CONTENT_CIPHER = "AES-256-GCM-SIV"
CONTENT_CIPHERS = {SUITE_X25519: CONTENT_CIPHER, SUITE_HYBRID: CONTENT_CIPHER}
CONTENT_CIPHERS[SUITE_SM2] = gmcrypto.CONTENT_CIPHER


def default_suite(hub_suite: Suite) -> str:
    """The encryption suite a hub seals confidential documents with unless told otherwise."""
    return SUITE_SM2 if hub_suite is GM else SUITE_X25519


def own_suite(suite: str) -> str:
    """The suite a sender keeps its own copy of a content key in (its resumable state)."""
    return SUITE_SM2 if suite == SUITE_SM2 else SUITE_X25519


PublicKey = X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey = X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def _check_suite(suite: str) -> None:
    if suite not in SUITES:
        raise InputError(f"unknown encryption suite {suite!r}; suites are {', '.join(SUITES)}")


def private_key(suite: str, seed: bytes) -> PrivateKey:
    """The suite's private key derived from a 32-byte seed."""
    _check_suite(suite)
    if suite == SUITE_X25519:
        return X25519PrivateKey.from_private_bytes(seed)
    # One seed expands into independent ML-KEM and X25519 halves, so the hybrid never reuses
    # the classical suite's X25519 scalar (key reuse across KEMs is best avoided).
    okm = HKDF(hashes.SHA256(), 96, salt=None, info=_HYBRID_SEED_INFO).derive(seed)
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(okm[:64]),
        X25519PrivateKey.from_private_bytes(okm[64:]),
    )


def public_bytes(suite: str, seed: bytes) -> bytes:
    """The encoded public key of a seed: raw X25519, ML-KEM-768 key ‖ X25519 key, or the SM2
    point."""
    if suite == SUITE_SM2:
        return gmcrypto.public_bytes(seed)
    if suite == SUITE_X25519:
        return X25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    _check_suite(suite)
    okm = HKDF(hashes.SHA256(), 96, salt=None, info=_HYBRID_SEED_INFO).derive(seed)
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(okm[:64]).public_key().public_bytes_raw()
    xp = X25519PrivateKey.from_private_bytes(okm[64:]).public_key().public_bytes_raw()
    return ml + xp


def public_key(suite: str, encoded: bytes) -> PublicKey:
    """Parse an encoded public key of a suite."""
    _check_suite(suite)
    try:
        if suite == SUITE_X25519:
            return X25519PublicKey.from_public_bytes(encoded)
        if len(encoded) != _MLKEM768_PUBLIC_LEN + 32:
            raise ValueError("wrong length")
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(encoded[:_MLKEM768_PUBLIC_LEN]),
            X25519PublicKey.from_public_bytes(encoded[_MLKEM768_PUBLIC_LEN:]),
        )
    except ValueError as exc:
        raise RegistryError(f"a registered {suite} encryption key is malformed: {exc}") from exc


def key_id(public: bytes, suite: str = SUITE_X25519) -> str:
    """An encryption key's id: the first 8 bytes of SHA-256 over its public bytes (of SM3 for
    an SM2 key), in hex."""
    return gmcrypto.key_id(public) if suite == SUITE_SM2 else INTL.key_id(public)


@dataclass(frozen=True)
class NewKey:
    """A freshly generated encryption key: its seed stays on the participant's machine."""

    suite: str
    key_id: str
    public_key: bytes
    seed: bytes = field(repr=False)


def generate(suite: str) -> NewKey:
    """A new random encryption key of a suite."""
    seed = os.urandom(32)
    public = public_bytes(suite, seed)
    return NewKey(suite, key_id(public, suite), public, seed)


def attestation_input(
    participant: str, suite: str, kid: str, public: bytes, not_before: datetime
) -> bytes:
    """The bytes a participant's signing key signs to vouch for one of its encryption keys."""
    encoded = base64.b64encode(public).decode()
    return (
        f"{_ATTEST_V1}\n{participant}\n{suite}\n{kid}\n{encoded}\n{format_time(not_before)}\n"
    ).encode()


def new_registered_keys(
    keystore: KeyStore, signer: SigningKey, not_before: datetime
) -> tuple[EncryptionKey, ...]:
    """Generate one key per suite for the signer's participant, store the seeds, attest them."""
    made = []
    for suite in SUITES:
        new = generate(suite)
        keystore.store_encryption_seed(signer.participant, new.key_id, new.seed)
        message = attestation_input(
            signer.participant, suite, new.key_id, new.public_key, not_before
        )
        made.append(
            EncryptionKey(
                key_id=new.key_id,
                suite=suite,
                public_key=new.public_key,
                not_before=not_before,
                signing_key_id=signer.key_id,
                signature=signer.sign(message),
            )
        )
    return tuple(made)


def check_attestation(participant: Participant, key: EncryptionKey) -> None:
    """Refuse an encryption key its owner's signing key did not vouch for.

    The registry copy travels through the hub; checking the owner's own signature means an
    altered copy cannot make a sender seal a document to a key someone else holds.
    """
    if key.key_id != key_id(key.public_key, key.suite):
        raise RegistryError(f"{participant.id}'s encryption key {key.key_id} has a wrong key id")
    try:
        signing = participant.key(key.signing_key_id).suite
        message = attestation_input(
            participant.id, key.suite, key.key_id, key.public_key, key.not_before
        )
        if not signing.verify(participant.public_key(key.signing_key_id), key.signature, message):
            raise InvalidSignature
    except (InvalidSignature, ValueError) as exc:
        raise RegistryError(
            f"{participant.id}'s encryption key {key.key_id} is not signed by its own key"
        ) from exc
    except Exception as exc:  # unknown signing key id: a RejectedEvent from Participant.key
        raise RegistryError(
            f"{participant.id}'s encryption key {key.key_id} names an unknown signing key"
        ) from exc


@dataclass(frozen=True)
class KeyWrap:
    """A secret sealed with HPKE to one recipient key: `sealed` is enc ‖ ciphertext."""

    recipient: str
    key_id: str
    suite: str
    sealed: bytes

    def to_json(self) -> dict[str, Any]:
        """JSON form (bytes in base64)."""
        return {
            "recipient": self.recipient,
            "key_id": self.key_id,
            "suite": self.suite,
            "sealed": base64.b64encode(self.sealed).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyWrap:
        """Inverse of to_json."""
        return cls(
            data["recipient"], data["key_id"], data["suite"], base64.b64decode(data["sealed"])
        )


def wraps_to_bytes(wraps: Sequence[KeyWrap]) -> bytes:
    """A canonical encoding of key wraps (sorted keys, no spaces), to store and digest."""
    return json.dumps([w.to_json() for w in wraps], sort_keys=True, separators=(",", ":")).encode()


def wraps_from_bytes(data: bytes) -> list[KeyWrap]:
    """Inverse of wraps_to_bytes."""
    try:
        return [KeyWrap.from_json(item) for item in json.loads(data)]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # The list comes from the sender's store (its digest is signed, its content is not
        # checked otherwise): anything but a list of wraps is refused in one sentence.
        raise ContentCorrupted(
            "the sealed key list is unreadable: it is not a JSON list of key wraps"
        ) from exc


def _info(context: bytes, recipient: str, kid: str) -> bytes:
    # Binding the context (e.g. the document id), the recipient and its key into the HPKE
    # info means a wrap cannot be lifted into another document or handed to someone else.
    return b"\n".join((_SEAL_V1, context, recipient.encode(), kid.encode()))


def recipient_key(
    participant: Participant, suite: str, at: datetime | None = None
) -> EncryptionKey:
    """The key a secret for this participant is sealed to, checked and current."""
    moment = at or datetime.now(UTC)
    if participant.status != "active":
        raise RegistryError(f"{participant.id} is revoked and cannot receive documents")
    found = [k for k in participant.encryption_keys if k.suite == suite and k.valid_at(moment)]
    if not found:
        raise RegistryError(
            f"{participant.id} has no registered {suite} encryption key, "
            "so it cannot receive confidential documents",
            hint="Its machine registers one with `govhub participant rotate`.",
        )
    key = max(found, key=lambda k: k.not_before)
    check_attestation(participant, key)
    return key


def seal_for(
    recipients: Sequence[Participant],
    secret: bytes,
    *,
    context: bytes,
    suite: str = SUITE_X25519,
) -> list[KeyWrap]:
    """Seal a secret (a content key, or any small plaintext) to each recipient."""
    _check_suite(suite)
    wraps = []
    for participant in recipients:
        key = recipient_key(participant, suite)
        info = _info(context, participant.id, key.key_id)
        if suite == SUITE_SM2:
            sealed = gmcrypto.wrap(key.public_key, info, secret)
        else:
            sealed = _HPKE[suite].encrypt(secret, public_key(suite, key.public_key), info)
        wraps.append(KeyWrap(participant.id, key.key_id, suite, sealed))
    return wraps


def open_as(
    participant: str, keystore: KeyStore, wraps: Sequence[KeyWrap], *, context: bytes
) -> tuple[bytes, KeyWrap]:
    """Open the wrap sealed to this participant with its private key; returns (secret, wrap)."""
    mine = [w for w in wraps if w.recipient == participant]
    if not mine:
        raise NotRecipient(
            f"nothing here is sealed to {participant}; only its recipients can open it"
        )
    last: Exception | None = None
    for wrap in mine:
        try:
            seed = keystore.encryption_seed(participant, wrap.key_id)
        except KeyStoreError as exc:
            last = exc
            continue
        info = _info(context, participant, wrap.key_id)
        try:
            if wrap.suite == SUITE_SM2:
                secret = gmcrypto.unwrap(seed, info, wrap.sealed)
            elif wrap.suite in _HPKE:
                secret = _HPKE[wrap.suite].decrypt(wrap.sealed, private_key(wrap.suite, seed), info)
            else:
                raise ValueError(f"unknown suite {wrap.suite!r}")
        except (InvalidTag, ValueError) as exc:
            raise ContentCorrupted(
                f"the key sealed to {participant} does not open: it was altered or is for "
                "another document"
            ) from exc
        return secret, wrap
    assert last is not None
    raise last


@dataclass(frozen=True)
class Sealed:
    """A small payload encrypted for several recipients: ciphertext plus one wrap each."""

    ciphertext: bytes
    wraps: tuple[KeyWrap, ...]


def encrypt_for(
    recipients: Sequence[Participant],
    plaintext: bytes,
    *,
    context: bytes,
    suite: str = SUITE_X25519,
) -> Sealed:
    """Encrypt a payload once (AES-256-GCM, random key and nonce) and seal its key to each."""
    key = AESGCM.generate_key(256)
    nonce = os.urandom(12)
    ciphertext = nonce + AESGCM(key).encrypt(nonce, plaintext, context)
    return Sealed(ciphertext, tuple(seal_for(recipients, key, context=context, suite=suite)))


def decrypt_as(participant: str, keystore: KeyStore, sealed: Sealed, *, context: bytes) -> bytes:
    """Decrypt a payload from `encrypt_for` as one of its recipients."""
    key, _ = open_as(participant, keystore, sealed.wraps, context=context)
    try:
        return AESGCM(key).decrypt(sealed.ciphertext[:12], sealed.ciphertext[12:], context)
    except InvalidTag as exc:
        raise ContentCorrupted("the encrypted payload was altered") from exc


class ChunkCipher:
    """AES-256-GCM-SIV (RFC 8452) over a document's chunks.

    The nonce is the chunk index, so encryption is deterministic: a resumed send reproduces
    exactly the chunks it already stored and can recognise them by digest. GCM-SIV is
    nonce-misuse resistant, so even if a file changed between two attempts, reusing an index
    with different plaintext reveals only that the chunks differ, unlike plain GCM. The AAD
    binds document id, index and chunk count, so chunks cannot be swapped, moved between
    documents, or dropped from the end.
    """

    OVERHEAD = 16

    def __init__(self, key: bytes, doc_id: str, count: int) -> None:
        self._aead = AESGCMSIV(key)
        self._prefix = f"govhub-doc-chunk-v1\n{doc_id}\n".encode()
        self._count = count

    def _aad(self, index: int) -> bytes:
        return self._prefix + f"{index}\n{self._count}".encode()

    @staticmethod
    def _nonce(index: int) -> bytes:
        return struct.pack(">4xQ", index)

    def encrypt(self, index: int, plaintext: bytes) -> bytes:
        """The stored form of one chunk."""
        return self._aead.encrypt(self._nonce(index), plaintext, self._aad(index))

    def decrypt(self, index: int, ciphertext: bytes) -> bytes:
        """The plaintext of one stored chunk, or ContentCorrupted."""
        try:
            return self._aead.decrypt(self._nonce(index), ciphertext, self._aad(index))
        except InvalidTag as exc:
            raise ContentCorrupted(f"chunk {index} does not decrypt: it was altered") from exc


AnyChunkCipher = ChunkCipher | gmcrypto.SM4ChunkCipher


def chunk_cipher(cipher: str, key: bytes, doc_id: str, count: int) -> AnyChunkCipher:
    """The chunk cipher a manifest names: AES-256-GCM-SIV, or SM4-GCM in the gm suite."""
    if cipher == gmcrypto.CONTENT_CIPHER:
        return gmcrypto.SM4ChunkCipher(key, doc_id, count)
    if cipher == CONTENT_CIPHER:
        return ChunkCipher(key, doc_id, count)
    raise ContentCorrupted(f"the document names an unknown content cipher {cipher!r}")


def new_content_key() -> bytes:
    """A random 256-bit content key."""
    return AESGCMSIV.generate_key(256)


def fingerprint(data: bytes) -> str:
    """Lowercase hex SHA-256 (used for key-list and small-object digests)."""
    return hashlib.sha256(data).hexdigest()
