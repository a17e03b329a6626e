"""NATS credentials: user nkeys for participants, hub services, node admins and uplinks.

An nkey is an Ed25519 key pair in NATS's encoding; the server config lists only public keys
(`U...`), and a client proves possession of the seed (`SU...`) by signing the server's nonce.
So the generated server configs hold no secrets and can be shipped to every node, and a
participant's seed never leaves the machine that acts as it.

```
<home>/keys/<participant>/nats.nk      the participant's seed (0600), beside its signing keys
<home>/keys/<participant>/nats.pub     its public nkey (what the operator needs for configs)
<home>/federation/creds/<name>.nk      service seeds: `service` (hub services),
                                       `node-<node>` (a node's local admin), `uplink-<unit>`
```

Seeds are never logged; `NKey.__repr__` hides them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

from hub.errors import KeyStoreError
from hub.home import Home
from hub.subjects import check_participant_id
from hub.userfiles import write_private

SEED_FILE = "nats.nk"
PUBLIC_FILE = "nats.pub"
SERVICE = "service"


@dataclass(frozen=True)
class NKey:
    """A user nkey: the public key servers list, and the seed only its holder has."""

    public: str
    seed: str = field(repr=False)

    @classmethod
    def generate(cls) -> NKey:
        """A fresh user nkey."""
        seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
        return cls.from_seed(seed.decode())

    @classmethod
    def from_seed(cls, seed: str) -> NKey:
        """The key pair of a seed; refuses anything that is not a user seed."""
        try:
            pair = nkeys.from_seed(bytearray(seed.strip().encode()))
            public = pair.public_key.decode()
        except (nkeys.NkeysError, ValueError) as exc:
            raise KeyStoreError("a NATS credential file does not hold a valid user nkey") from exc
        if not public.startswith("U"):
            raise KeyStoreError("a NATS credential file holds a non-user nkey")
        return cls(public=public, seed=seed.strip())


def _read_seed(path: Path) -> NKey | None:
    try:
        return NKey.from_seed(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyStoreError(f"cannot read the NATS credential {path}: {exc.strerror}") from exc


def _valid_public(public: str) -> bool:
    """A public user nkey: base32 of the user prefix, 32 key bytes and a CRC-16."""
    if not (public.startswith("U") and len(public) == 56):
        return False
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except (binascii.Error, ValueError):
        return False
    return bytes(nkeys.crc16_checksum(bytearray(raw[:-2]))) == raw[-2:]


def creds_dir(home: Home) -> Path:
    """Where the service and uplink seeds of a federated home live."""
    return home.root / "federation" / "creds"


def participant_nkey(home: Home, participant: str, *, create: bool = True) -> NKey | None:
    """A participant's nkey from its key folder, generated on first use if `create`."""
    check_participant_id(participant)
    folder = home.keys / participant
    found = _read_seed(folder / SEED_FILE)
    if found is not None or not create:
        return found
    made = NKey.generate()
    write_private(folder / SEED_FILE, made.seed.encode())
    (folder / PUBLIC_FILE).write_text(made.public + "\n")
    return made


def participant_public(home: Home, participant: str) -> str | None:
    """A participant's public nkey: from its seed if held here, else from `nats.pub`."""
    folder = home.keys / participant
    held = _read_seed(folder / SEED_FILE)
    if held is not None:
        return held.public
    try:
        public = (folder / PUBLIC_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    if not _valid_public(public):
        raise KeyStoreError(f"{folder / PUBLIC_FILE} does not hold a public user nkey")
    return public


def import_public(home: Home, participant: str, public: str) -> None:
    """Record a department's public nkey (it generated the seed on its own machine)."""
    check_participant_id(participant)
    public = public.strip()
    if not _valid_public(public):
        raise KeyStoreError("a participant's NATS key must be a public user nkey (U..., 56 chars)")
    folder = home.keys / participant
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / PUBLIC_FILE).write_text(public + "\n")


def service_nkey(home: Home, name: str = SERVICE) -> NKey:
    """A service seed of this home (`service`, `node-<node>`, `uplink-<unit>`), made once."""
    path = creds_dir(home) / f"{name}.nk"
    found = _read_seed(path)
    if found is not None:
        return found
    made = NKey.generate()
    write_private(path, made.seed.encode())
    return made
