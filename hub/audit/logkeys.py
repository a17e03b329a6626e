"""The log's signing keys and the witnesses' keys, encrypted in the home, with validity windows.

```
<home>/audit/log/ring.json          origin and every log key: key id, file, not_before, not_after
<home>/audit/log/<key id>.pem       encrypted PKCS#8 Ed25519 key (0600)
<home>/audit/log/sm2-<key id>.pem   gm suite: encrypted PKCS#8 SM2 key (0600, SM4-sealed)
<home>/audit/witnesses/<unit>/key.pem   a local witness's cosignature key (0600)
```

Rotation adds a key valid from now and closes the current key's window after an overlap;
during the overlap both sign every checkpoint, so verifiers holding either key keep working.
``trust_entries()`` is the ``log_keys`` section of a trust file (hub/audit/verify.py).
In the gm suite the ring also holds an SM2 key that signs every checkpoint a second time
(`sm2_signers()`, trust section ``log_keys_sm2``); the Ed25519 signature stays, so C2SP
witnesses and verifiers keep working unchanged.
Windows start on a whole second because witness cosignature times are whole seconds, and a
closed window ends on the whole second after the overlap, so a checkpoint the old key signed
just before the rotation stays inside it. No window may end before it begins: a key with one
would have vouched for nothing, and every checkpoint it signed would fail offline verification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.config import audit_dir
from hub.audit.note import ALG_COSIGNATURE_V1, ALG_ED25519, ALG_SM2, Signer, Verifier
from hub.errors import ConfigError, KeyStoreError
from hub.home import Home
from hub.keys import resolve_passphrase
from hub.suites import GM, Suite
from hub.timetext import rfc3339_seconds
from hub.userfiles import write_private


def _whole_second(moment: datetime | None = None) -> datetime:
    return (moment or datetime.now(UTC)).replace(microsecond=0)


def _next_whole_second(moment: datetime) -> datetime:
    floor = moment.replace(microsecond=0)
    return floor if floor == moment else floor + timedelta(seconds=1)


MAX_OVERLAP = timedelta(days=366)
"""The longest rotation overlap: long enough for any verifier to fetch the new key."""


def load_or_create_key(path: Path, passphrase: bytes, *, create: bool) -> Ed25519PrivateKey:
    """An encrypted Ed25519 key file, created on first use if asked."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"cannot decrypt {path}: wrong passphrase or damaged file") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{path} is not an Ed25519 key")
        return key
    if not create:
        raise KeyStoreError(f"no key at {path}", hint="Run `govhub serve` once to create it.")
    key = Ed25519PrivateKey.generate()
    write_private(path, _encrypt(key, passphrase))
    return key


def _load_sm2(path: Path, passphrase: bytes) -> Any:
    """The log's encrypted SM2 key."""
    try:
        return GM.load_private(path.read_bytes(), passphrase)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyStoreError(f"cannot open the SM2 log key {path}: {exc}") from exc


def _encrypt(key: Ed25519PrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


@dataclass(frozen=True)
class LogKey:
    """One log key with its validity window (``not_after`` None = open)."""

    signer: Signer
    not_before: datetime
    not_after: datetime | None

    def __post_init__(self) -> None:
        if self.not_after is not None and self.not_after <= self.not_before:
            raise ConfigError(
                f"audit log key {self.signer.key_id.hex()} would have a validity window that "
                f"ends ({rfc3339_seconds(self.not_after)}) before it begins "
                f"({rfc3339_seconds(self.not_before)})"
            )

    def valid_at(self, moment: datetime) -> bool:
        """Whether the key may sign at ``moment``."""
        return self.not_before <= moment and (self.not_after is None or moment < self.not_after)

    def trust_entry(self) -> dict[str, Any]:
        """The trust-file form ``{vkey, not_before, not_after}``."""
        return {
            "vkey": self.signer.verifier.vkey(),
            "not_before": rfc3339_seconds(self.not_before),
            "not_after": rfc3339_seconds(self.not_after) if self.not_after else None,
        }


class LogKeyRing:
    """The log's keys: every key ever used, each with its window; signs with the valid ones."""

    def __init__(
        self,
        folder: Path,
        passphrase: bytes,
        origin: str,
        keys: list[LogKey],
        sm2_keys: list[LogKey] | None = None,
    ) -> None:
        """Use ``open`` instead."""
        self._folder, self._passphrase, self.origin, self.keys = folder, passphrase, origin, keys
        self.sm2_keys: list[LogKey] = sm2_keys or []

    @classmethod
    def open(
        cls, home: Home, origin: str, *, create: bool = True, suite: Suite | None = None
    ) -> LogKeyRing:
        """Load the ring (creating the first key if asked); the origin must match the ring's.

        With the gm suite a ring without an SM2 key gets one (when `create`), so a home that
        moves to gm signs its next checkpoint with both keys.
        """
        ring = cls._load(home, origin, create=create)
        if suite is GM and not ring.sm2_keys and create:
            ring._add_sm2(_whole_second())
        return ring

    @classmethod
    def _load(cls, home: Home, origin: str, *, create: bool) -> LogKeyRing:
        folder = audit_dir(home) / "log"
        passphrase = resolve_passphrase(home.secrets, create=False)
        ring_file = folder / "ring.json"
        if not ring_file.exists():
            if not create:
                raise KeyStoreError(
                    f"no audit log key in {folder}", hint="Run `govhub serve` once to create it."
                )
            ring = cls(folder, passphrase, origin, [])
            ring._add(_whole_second())
            return ring
        data = json.loads(ring_file.read_text(encoding="utf-8"))
        if data["origin"] != origin:
            raise ConfigError(
                f"the audit log key ring is for origin {data['origin']!r}, not {origin!r}; "
                "a log's origin cannot change"
            )
        keys = []
        for entry in data["keys"]:
            private = load_or_create_key(folder / entry["file"], passphrase, create=False)
            try:
                key = LogKey(
                    Signer(origin, private, ALG_ED25519),
                    datetime.fromisoformat(entry["not_before"]),
                    datetime.fromisoformat(entry["not_after"]) if entry["not_after"] else None,
                )
            except ConfigError as exc:
                raise ConfigError(
                    f"{ring_file}: {exc}", hint="Restore the key ring from a backup."
                ) from exc
            keys.append(key)
        sm2_keys = []
        for entry in data.get("sm2_keys", []):
            sm2_keys.append(
                LogKey(
                    Signer(origin, _load_sm2(folder / entry["file"], passphrase), ALG_SM2),
                    datetime.fromisoformat(entry["not_before"]),
                    datetime.fromisoformat(entry["not_after"]) if entry["not_after"] else None,
                )
            )
        return cls(folder, passphrase, origin, keys, sm2_keys)

    def _add_sm2(self, not_before: datetime) -> LogKey:
        private = GM.generate()
        signer = Signer(self.origin, private, ALG_SM2)
        write_private(
            self._folder / f"sm2-{signer.key_id.hex()}.pem",
            GM.private_pem(private, self._passphrase),
        )
        key = LogKey(signer, not_before, None)
        self.sm2_keys.append(key)
        self._save()
        return key

    def sm2_signers(self, at: datetime | None = None) -> list[Signer]:
        """The SM2 keys valid at ``at`` (none outside the gm suite)."""
        moment = at or datetime.now(UTC)
        return [k.signer for k in self.sm2_keys if k.valid_at(moment)]

    def sm2_trust_entries(self) -> list[dict[str, Any]]:
        """The ``log_keys_sm2`` section of a trust file or bundle (empty outside gm)."""
        return [k.trust_entry() for k in self.sm2_keys]

    def _add(self, not_before: datetime) -> LogKey:
        private = Ed25519PrivateKey.generate()
        signer = Signer(self.origin, private, ALG_ED25519)
        write_private(
            self._folder / f"{signer.key_id.hex()}.pem", _encrypt(private, self._passphrase)
        )
        key = LogKey(signer, not_before, None)
        self.keys.append(key)
        self._save()
        return key

    def _save(self) -> None:
        entries = [
            {
                "key_id": k.signer.key_id.hex(),
                "file": f"{k.signer.key_id.hex()}.pem",
                "vkey": k.signer.verifier.vkey(),
                "not_before": k.not_before.isoformat(),
                "not_after": k.not_after.isoformat() if k.not_after else None,
            }
            for k in self.keys
        ]
        ring: dict[str, Any] = {"origin": self.origin, "keys": entries}
        if self.sm2_keys:
            ring["sm2_keys"] = [
                {
                    "key_id": k.signer.key_id.hex(),
                    "file": f"sm2-{k.signer.key_id.hex()}.pem",
                    "vkey": k.signer.verifier.vkey(),
                    "not_before": k.not_before.isoformat(),
                    "not_after": k.not_after.isoformat() if k.not_after else None,
                }
                for k in self.sm2_keys
            ]
        text = json.dumps(ring, indent=2)
        write_private(self._folder / "ring.json", text.encode())

    def rotate(self, overlap: timedelta, *, now: datetime | None = None) -> LogKey:
        """Add a new key valid from now; every open key stops ``overlap`` later.

        Refuses an overlap that is negative or longer than ``MAX_OVERLAP``, and a clock that is
        behind the newest key's start: either would give a key a window that ends before it
        begins, or a new key that starts before the old one.
        """
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise ConfigError(
                f"the rotation overlap must be from 0 to {MAX_OVERLAP.days} days: both keys sign "
                "during it, so it cannot be negative"
            )
        moment = now or datetime.now(UTC)
        start = _whole_second(moment)
        newest = max((k.not_before for k in self.keys), default=start)
        if newest > start:
            raise ConfigError(
                f"the newest audit log key starts at {rfc3339_seconds(newest)}, after this "
                "machine's clock; set the clock right before rotating"
            )
        end = _next_whole_second(moment + overlap)
        for i, key in enumerate(self.keys):
            if key.not_after is None or key.not_after > end:
                self.keys[i] = LogKey(key.signer, key.not_before, end)
        return self._add(start)

    def signers(self, at: datetime | None = None) -> list[Signer]:
        """Every key valid at ``at`` (default now): two during a rotation's overlap."""
        moment = at or datetime.now(UTC)
        signers = [k.signer for k in self.keys if k.valid_at(moment)]
        if not signers:
            raise KeyStoreError(f"no audit log key is valid at {rfc3339_seconds(moment)}")
        return signers

    def verifiers(self) -> list[Verifier]:
        """Every log key's verifier, retired ones included (they verify old checkpoints)."""
        return [k.signer.verifier for k in self.keys]

    def trust_entries(self) -> list[dict[str, Any]]:
        """The ``log_keys`` section of a trust file or bundle."""
        return [k.trust_entry() for k in self.keys]


def witness_signer(home: Home, unit: str, name: str, *, create: bool = True) -> Signer:
    """The cosignature key of the witness a unit runs in this home."""
    passphrase = resolve_passphrase(home.secrets, create=False)
    path = audit_dir(home) / "witnesses" / unit / "key.pem"
    return Signer(name, load_or_create_key(path, passphrase, create=create), ALG_COSIGNATURE_V1)
