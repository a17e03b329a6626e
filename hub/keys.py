"""Private keys on disk and the prefecture root that certifies participants' public keys.

Layout under a home folder:

```
keys/<participant>/<key-id>.pem   encrypted PKCS#8 (0600), one file per key generation
keys/<participant>/current        key id of the key that signs now
keys/<participant>/enc-<key-id>.pem  encrypted seed of an encryption (HPKE) key (0600)
ca/root.pem, ca/root.crt          the prefecture root key (encrypted) and its certificate
secrets/key-passphrase            generated passphrase of an embedded (demo/test) home only
```

An embedded home holds every scenario participant's keys so one machine can play all 56
units; a real department's machine holds only its own participant's folder, and the root key
lives with the prefecture e-government office (docs/security.md).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from hub.envelope import SigningKey
from hub.errors import KeyStoreError
from hub.subjects import check_participant_id
from hub.suites import DEFAULT, SUITES, Suite
from hub.userfiles import write_private

if TYPE_CHECKING:
    from hub.home import Home

PASSPHRASE_ENV = "GOVHUB_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "GOVHUB_KEY_PASSPHRASE_FILE"
CERT_VALIDITY = timedelta(days=3 * 365)


def resolve_passphrase(home_secrets: Path, *, create: bool) -> bytes:
    """Find the key passphrase: env value, env file, or (embedded homes) the home's own file."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode()
    file_name = os.environ.get(PASSPHRASE_FILE_ENV)
    if file_name:
        try:
            return Path(file_name).read_bytes().strip()
        except OSError as exc:
            raise KeyStoreError(
                f"cannot read the key passphrase file {file_name}: {exc.strerror}"
            ) from exc
    own = home_secrets / "key-passphrase"
    if own.exists():
        return own.read_bytes().strip()
    if not create:
        raise KeyStoreError(
            "no key passphrase: set GOVHUB_KEY_PASSPHRASE or GOVHUB_KEY_PASSPHRASE_FILE",
            hint="A department machine keeps its passphrase outside the home folder.",
        )
    passphrase = secrets.token_urlsafe(32).encode()
    write_private(own, passphrase)
    return passphrase


def holds_key(keys: Path, participant: str) -> bool:
    """Whether the key folder ``keys`` (a home's `keys/`) holds a current key for the
    participant; needs no passphrase."""
    return (keys / participant / "current").exists()


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class KeyStore:
    """Encrypted private signing keys (Ed25519 or SM2) of the participants this machine acts as.

    `suite` is the suite new keys are generated in (the hub's, hub/suites.py); keys already on
    disk load in whichever suite they are, so a machine keeps signing history-compatible
    events with the keys it has while a migration rotates them.
    """

    def __init__(self, directory: Path, passphrase: bytes, suite: Suite = DEFAULT) -> None:
        self._dir = directory
        self._passphrase = passphrase
        self.suite = suite
        self._loaded: dict[tuple[str, str], SigningKey] = {}

    def generate(self, participant: str, suite: Suite | None = None) -> SigningKey:
        """Create a new key (in the store's suite unless told) and make it the current one."""
        check_participant_id(participant)
        suite = suite or self.suite
        private = suite.generate()
        key = SigningKey.from_private(participant, private, suite)
        folder = self._dir / participant
        write_private(folder / f"{key.key_id}.pem", suite.private_pem(private, self._passphrase))
        write_private(folder / "current", key.key_id.encode())
        self._loaded[(participant, key.key_id)] = key
        return key

    def has(self, participant: str) -> bool:
        """Whether this machine holds a current key for the participant."""
        return holds_key(self._dir, participant)

    def participants(self) -> list[str]:
        """Participants whose keys this machine holds."""
        if not self._dir.exists():
            return []
        return sorted(p.name for p in self._dir.iterdir() if (p / "current").exists())

    def current(self, participant: str) -> SigningKey:
        """The key a participant signs with now."""
        pointer = self._dir / participant / "current"
        try:
            kid = pointer.read_text().strip()
        except FileNotFoundError:
            raise KeyStoreError(
                f"this machine holds no key for {participant}",
                hint="`--as ID` acts with that participant's own key; only its machine has it.",
            ) from None
        return self.load(participant, kid)

    def load(self, participant: str, kid: str) -> SigningKey:
        """Load and decrypt one key (cached for the life of the process)."""
        cached = self._loaded.get((participant, kid))
        if cached is not None:
            return cached
        path = self._dir / participant / f"{kid}.pem"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"key {participant}/{kid} is not on this machine") from None
        # The suite whose library opens the file is the key's suite: an Ed25519 key is sealed
        # with AES by `cryptography`, an SM2 key with SM4 by Tongsuo (which `cryptography`
        # cannot read), so at most one of them succeeds.
        for suite in SUITES.values():
            try:
                private = suite.load_private(data, self._passphrase)
                break
            except (ValueError, TypeError):
                continue
        else:
            raise KeyStoreError(
                f"cannot decrypt key {participant}/{kid}: wrong passphrase or damaged file"
            )
        key = SigningKey.from_private(participant, private, suite)
        self._loaded[(participant, kid)] = key
        return key

    def store_encryption_seed(self, participant: str, kid: str, seed: bytes) -> None:
        """Keep the 32-byte seed of an encryption key, encrypted like the signing keys.

        The seed travels in an encrypted PKCS#8 X25519 container (any 32 bytes are a valid
        X25519 scalar), so the same passphrase and file format protect every private key;
        hub/crypto.py derives the suite's private key from it.
        """
        check_participant_id(participant)
        container = X25519PrivateKey.from_private_bytes(seed)
        pem = container.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        write_private(self._dir / participant / f"enc-{kid}.pem", pem)

    def encryption_seed(self, participant: str, kid: str) -> bytes:
        """The seed of one of a participant's encryption keys held on this machine."""
        path = self._dir / participant / f"enc-{kid}.pem"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(
                f"encryption key {participant}/{kid} is not on this machine",
                hint="Only the participant's own machine can open documents sealed to it.",
            ) from None
        try:
            private = serialization.load_pem_private_key(data, self._passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"cannot decrypt encryption key {participant}/{kid}: "
                "wrong passphrase or damaged file"
            ) from exc
        if not isinstance(private, X25519PrivateKey):
            raise KeyStoreError(f"encryption key {participant}/{kid} is not a key seed")
        return private.private_bytes_raw()


@dataclass(frozen=True)
class CertificateAuthority:
    """The prefecture root: an Ed25519 key that issues X.509 certificates to participants."""

    key: Ed25519PrivateKey
    certificate: x509.Certificate

    @classmethod
    def open(
        cls, directory: Path, passphrase: bytes, *, create: bool, name: str
    ) -> CertificateAuthority:
        """Load the root from `ca/`, creating a new self-signed root if asked and absent."""
        key_path, cert_path = directory / "root.pem", directory / "root.crt"
        if key_path.exists():
            try:
                key = serialization.load_pem_private_key(key_path.read_bytes(), passphrase)
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except (ValueError, OSError) as exc:
                raise KeyStoreError(f"cannot open the root key in {directory}: {exc}") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise KeyStoreError("the root key is not an Ed25519 key")
            return cls(key, cert)
        if not create:
            raise KeyStoreError(f"no prefecture root key in {directory}")
        key = Ed25519PrivateKey.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"govhub root {name}"[:64])])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=20 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, algorithm=None)
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        write_private(key_path, pem)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)

    def issue(
        self, participant: str, display_name: str, public_key: bytes, not_before: datetime
    ) -> str:
        """Certify that a participant id holds a public key; returns the certificate PEM."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, participant),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, (display_name or participant)[:64]),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(Ed25519PublicKey.from_public_bytes(public_key))
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before - timedelta(minutes=5))
            .not_valid_after(not_before + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"urn:govhub:participant:{participant}")]
                ),
                critical=False,
            )
            .sign(self.key, algorithm=None)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def root_pem(self) -> str:
        """The root certificate, for receivers that check participant certificates."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


class HomeKeys:
    """A home's private key material, the key store and the prefecture root, each opened once.

    Both open on first use because opening needs the passphrase: a department machine keeps it
    outside the home, and commands that only read must work without it. One instance per open
    hub, so every signer, the schema registry and the enrollment share one store (and its cache
    of decrypted keys).
    """

    def __init__(self, home: Home, suite: Suite, ca_name: str) -> None:
        self._home = home
        self._suite = suite
        self._ca_name = ca_name
        self._store: KeyStore | None = None
        self._ca: CertificateAuthority | None = None

    def create(self) -> None:
        """Open the store and the root, creating the passphrase and the root if absent
        (the first start of a new hub, which then enrolls the scenario)."""
        passphrase = resolve_passphrase(self._home.secrets, create=True)
        self._store = KeyStore(self._home.keys, passphrase, self._suite)
        self._ca = CertificateAuthority.open(
            self._home.ca, passphrase, create=True, name=self._ca_name
        )

    @property
    def store(self) -> KeyStore:
        """The private keys of the participants this machine acts as."""
        if self._store is None:
            passphrase = resolve_passphrase(self._home.secrets, create=False)
            self._store = KeyStore(self._home.keys, passphrase, self._suite)
        return self._store

    @property
    def ca(self) -> CertificateAuthority:
        """The prefecture root (only on the operator's machine)."""
        if self._ca is None:
            passphrase = resolve_passphrase(self._home.secrets, create=False)
            self._ca = CertificateAuthority.open(
                self._home.ca, passphrase, create=False, name=self._ca_name
            )
        return self._ca
