"""The two crypto suites a deployment chooses between, and everything that depends on the choice.

```
suite  signatures                         hashes  key id (govhub-key)            wire contract
intl   Ed25519 (raw 64-byte signature)    SHA-256 SHA-256(raw 32-byte key)[:8]   v1
gm     SM2 with SM3, signer ID            SM3     SM3(04 ‖ x ‖ y)[:8]            v1-sm2
       1234567812345678 (GB/T 35276),
       DER SEQUENCE { INTEGER r, INTEGER s }
```

A hub signs with the suite of its home (`[hub] suite` in config.toml, `GOVHUB_SUITE`, or
`--suite`); it *verifies* every event with the suite its sender's key is registered under, so
a hub can hold participants of both suites during a migration (docs/gm.md). The primitives are
never written here: Ed25519 and SHA-256 come from `cryptography`, SM2 and SM3 from `tongsuopy`
(the Tongsuo library, a maintained SM implementation) and SM3 also from `cryptography`.

Which suite signed an event is read off its signature: an Ed25519 signature is exactly 64 raw
bytes; an SM2 signature is a DER SEQUENCE of two INTEGERs, and `GM.sign` never emits one of
64 bytes (it signs again, SM2 being randomised), so the two forms can never be confused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives import serialization as c_ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tongsuopy.crypto import exceptions as t_exceptions
from tongsuopy.crypto import hashes as t_hashes
from tongsuopy.crypto import serialization as t_ser
from tongsuopy.crypto.asymciphers import ec as t_ec

from hub.errors import ConfigError

SUITE_ENV: Final = "GOVHUB_SUITE"
SIGNER_ID: Final = b"1234567812345678"
"""The SM2 distinguishing ID of every govhub signature: the default of GB/T 35276 / GM/T 0009,
which Tongsuo applies when none is set (tests check it against gmssl)."""

ED25519: Final = "ed25519"
SM2: Final = "sm2"


class UnknownSuite(ConfigError, ValueError):
    """A suite name that is neither `intl` nor `gm`, or an unknown signature algorithm.

    Also a ValueError, as it was before it joined the error tree.
    """


def sm3(data: bytes) -> bytes:
    """The SM3 digest (GB/T 32905) of some bytes."""
    digest = c_hashes.Hash(c_hashes.SM3())
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class Suite:
    """One crypto suite: its name, signature algorithm, hash and key handling.

    Keys are opaque objects of the suite's library; callers pass them back to the same suite.
    """

    name: str
    algorithm: str
    sig_v1: str
    """First line of the event signing input (docs/protocol.md)."""
    public_length: int

    def hash(self, data: bytes) -> bytes:
        """The suite's digest: SHA-256 or SM3."""
        return hashlib.sha256(data).digest() if self.name == "intl" else sm3(data)

    def key_id(self, public: bytes) -> str:
        """Lowercase hex of the first 8 bytes of the suite's hash over the raw public key."""
        return self.hash(public)[:8].hex()

    def generate(self) -> Any:
        """A new private signing key."""
        if self.name == "intl":
            return Ed25519PrivateKey.generate()
        return t_ec.generate_private_key(t_ec.SM2())

    def public_bytes(self, private: Any) -> bytes:
        """The raw public key: 32 Ed25519 bytes, or the 65-byte uncompressed SM2 point."""
        if self.name == "intl":
            return bytes(private.public_key().public_bytes_raw())
        return bytes(
            private.public_key().public_bytes(
                t_ser.Encoding.X962, t_ser.PublicFormat.UncompressedPoint
            )
        )

    def sign(self, private: Any, message: bytes) -> bytes:
        """Sign a message: Ed25519, or SM2 over SM3 with the default signer ID, DER-encoded."""
        if self.name == "intl":
            return bytes(private.sign(message))
        while True:
            signature = bytes(private.sign(message, t_ec.ECDSA(t_hashes.SM3())))
            if len(signature) != 64:  # 64 bytes is the Ed25519 form (module docstring)
                return signature

    def load_public(self, raw: bytes) -> Any:
        """Parse a raw public key; ValueError if it is not one of this suite."""
        if len(raw) != self.public_length:
            raise ValueError(f"{self.name} public keys are {self.public_length} bytes")
        if self.name == "intl":
            return Ed25519PublicKey.from_public_bytes(raw)
        if raw[0] != 4:
            raise ValueError("an SM2 public key must be the uncompressed point 04 ‖ x ‖ y")
        return t_ec.EllipticCurvePublicKey.from_encoded_point(t_ec.SM2(), raw)

    def verify(self, public: Any, signature: bytes, message: bytes) -> bool:
        """Whether the signature over the message verifies with the parsed public key."""
        try:
            if self.name == "intl":
                public.verify(signature, message)
            else:
                public.verify(signature, message, t_ec.ECDSA(t_hashes.SM3()))
        except (InvalidSignature, t_exceptions.InvalidSignature):
            return False
        except ValueError:  # a DER signature Tongsuo cannot parse
            return False
        return True

    def private_pem(self, private: Any, passphrase: bytes) -> bytes:
        """Encrypted PKCS#8 PEM of a private key (SM2 keys are sealed with SM4 by Tongsuo)."""
        ser = c_ser if self.name == "intl" else t_ser
        return bytes(
            private.private_bytes(
                ser.Encoding.PEM,
                ser.PrivateFormat.PKCS8,
                ser.BestAvailableEncryption(passphrase),
            )
        )

    def load_private(self, pem: bytes, passphrase: bytes) -> Any:
        """Decrypt a private key of this suite; ValueError if it is not one."""
        if self.name == "intl":
            key = c_ser.load_pem_private_key(pem, passphrase)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        key = t_ser.load_pem_private_key(pem, passphrase)
        if not isinstance(key, t_ec.EllipticCurvePrivateKey) or key.curve.name != "SM2":
            raise ValueError("not an SM2 key")
        return key


INTL: Final = Suite("intl", ED25519, "govhub-sig-v1", 32)
GM: Final = Suite("gm", SM2, "govhub-sig-v1-sm2", 65)
SUITES: Final = {s.name: s for s in (INTL, GM)}
DEFAULT: Final = INTL


def by_name(name: str) -> Suite:
    """The suite called `intl` or `gm`."""
    try:
        return SUITES[name]
    except KeyError:
        raise UnknownSuite(
            f"unknown crypto suite {name!r}; the suites are {', '.join(SUITES)}"
        ) from None


def by_algorithm(algorithm: str) -> Suite:
    """The suite whose signature algorithm is `ed25519` or `sm2`."""
    for suite in SUITES.values():
        if suite.algorithm == algorithm:
            return suite
    raise UnknownSuite(f"unknown signature algorithm {algorithm!r}; known: ed25519, sm2")


def for_public_key(raw: bytes) -> Suite:
    """The suite of a raw public key, told apart by its length (32 or 65 bytes)."""
    for suite in SUITES.values():
        if len(raw) == suite.public_length:
            return suite
    raise ValueError("a public key is 32 raw Ed25519 bytes or the 65-byte uncompressed SM2 point")


def of_signature(signature: bytes) -> Suite | None:
    """The suite a signature's form belongs to, or None if it is neither form.

    64 bytes is Ed25519. Otherwise a strict DER SEQUENCE { INTEGER r, INTEGER s } with r and s
    of at most 33 bytes each (a 256-bit value with its sign byte) is SM2.
    """
    if len(signature) == 64:
        return INTL
    if _is_der_pair(signature):
        return GM
    return None


def _is_der_pair(data: bytes) -> bool:
    if len(data) < 8 or data[0] != 0x30 or data[1] != len(data) - 2:
        return False
    at = 2
    for _ in range(2):
        if at + 2 > len(data) or data[at] != 0x02:
            return False
        size = data[at + 1]
        value = data[at + 2 : at + 2 + size]
        if not 1 <= size <= 33 or len(value) != size:
            return False
        if value[0] & 0x80 or (size > 1 and value[0] == 0 and not value[1] & 0x80):
            return False  # negative, or not minimal: DER has one encoding per number
        at += 2 + size
    return at == len(data)


def from_env(default: Suite = DEFAULT) -> Suite:
    """The suite named by GOVHUB_SUITE, or the default."""
    name = os.environ.get(SUITE_ENV)
    return by_name(name) if name else default
