"""The participant registry's data model and the receivers' local, watched copy of it.

PostgreSQL holds the record (hub/registry_store.py); every change is also written to the
JetStream KV bucket `govhub_participants` as one JSON document per participant, which every
receiver watches into a `ParticipantCache`, so resolving a sender's key needs no request and
keeps working when the prefecture is unreachable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog

from hub.envelope import format_time, parse_time
from hub.errors import Reason, RejectedEvent
from hub.kvwatch import BucketWatch
from hub.suites import ED25519, Suite, by_algorithm

PARTICIPANTS_BUCKET = "govhub_participants"

log = structlog.get_logger("hub.participants")


@dataclass(frozen=True)
class ParticipantKey:
    """One signing key of a participant with its validity window."""

    key_id: str
    public_key: bytes
    not_before: datetime
    not_after: datetime | None = None
    certificate_pem: str = ""
    algorithm: str = ED25519
    """`ed25519` (suite intl) or `sm2` (suite gm): the suite every event it signs must be in."""

    @property
    def suite(self) -> Suite:
        """The crypto suite of the key (hub/suites.py)."""
        return by_algorithm(self.algorithm)

    def valid_at(self, moment: datetime) -> bool:
        """Whether the key may sign an event stamped with this time."""
        return self.not_before <= moment and (self.not_after is None or moment < self.not_after)

    def to_json(self) -> dict[str, Any]:
        """The key as JSON (bytes in standard base64, times in RFC 3339)."""
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "public_key": base64.b64encode(self.public_key).decode(),
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after) if self.not_after else None,
            "certificate_pem": self.certificate_pem,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParticipantKey:
        """Inverse of to_json."""
        return cls(
            key_id=data["key_id"],
            public_key=base64.b64decode(data["public_key"]),
            not_before=parse_time(data["not_before"]),
            not_after=parse_time(data["not_after"]) if data.get("not_after") else None,
            certificate_pem=data.get("certificate_pem", ""),
            algorithm=data.get("algorithm", ED25519),
        )


@dataclass(frozen=True)
class EncryptionKey:
    """One public encryption (HPKE) key of a participant, attested by its signing key.

    `suite` names the KEM (`x25519`, or `mlkem768-x25519` for the post-quantum hybrid);
    `signature` is the participant's Ed25519 signature (key `signing_key_id`) over the key,
    so a registry copy altered in transit cannot slip a sender someone else's key
    (hub/crypto.py checks it before sealing anything to the key).
    """

    key_id: str
    suite: str
    public_key: bytes
    not_before: datetime
    not_after: datetime | None = None
    signing_key_id: str = ""
    signature: bytes = b""

    def valid_at(self, moment: datetime) -> bool:
        """Whether documents sent at this time should be sealed to this key."""
        return self.not_before <= moment and (self.not_after is None or moment < self.not_after)

    def to_json(self) -> dict[str, Any]:
        """The key as JSON (bytes in standard base64, times in RFC 3339)."""
        return {
            "key_id": self.key_id,
            "suite": self.suite,
            "public_key": base64.b64encode(self.public_key).decode(),
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after) if self.not_after else None,
            "signing_key_id": self.signing_key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncryptionKey:
        """Inverse of to_json."""
        return cls(
            key_id=data["key_id"],
            suite=data["suite"],
            public_key=base64.b64decode(data["public_key"]),
            not_before=parse_time(data["not_before"]),
            not_after=parse_time(data["not_after"]) if data.get("not_after") else None,
            signing_key_id=data.get("signing_key_id", ""),
            signature=base64.b64decode(data.get("signature", "")),
        )


@dataclass(frozen=True)
class Participant:
    """A unit's department that sends and receives events under its own id and keys."""

    id: str
    unit: str
    name: str
    role: str = "department"
    status: str = "active"
    revoked_at: datetime | None = None
    keys: tuple[ParticipantKey, ...] = ()
    created_at: datetime | None = None
    encryption_keys: tuple[EncryptionKey, ...] = ()
    _public: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def current_key(self) -> ParticipantKey | None:
        """The key that signs now: the open-ended one with the latest start."""
        open_keys = [k for k in self.keys if k.not_after is None]
        return max(open_keys, key=lambda k: k.not_before) if open_keys else None

    def encryption_key(self, suite: str) -> EncryptionKey | None:
        """The open-ended encryption key of a suite with the latest start, if any."""
        found = [k for k in self.encryption_keys if k.suite == suite and k.not_after is None]
        return max(found, key=lambda k: k.not_before) if found else None

    @property
    def suite(self) -> Suite | None:
        """The suite the participant is registered under: that of its current key."""
        current = self.current_key
        return current.suite if current else None

    def public_key(self, kid: str) -> Any:
        """The parsed public key of the key's suite for a key id (parsed once, then cached)."""
        parsed = self._public.get(kid)
        if parsed is None:
            key = self.key(kid)
            parsed = key.suite.load_public(key.public_key)
            self._public[kid] = parsed
        return parsed

    def key(self, kid: str) -> ParticipantKey:
        """The key with this id, or RejectedEvent(UNKNOWN_KEY)."""
        for key in self.keys:
            if key.key_id == kid:
                return key
        raise RejectedEvent(Reason.UNKNOWN_KEY, f"{self.id} has no registered key {kid}")

    def check_key(self, kid: str, moment: datetime) -> Any:
        """The public key if it may sign at `moment`; otherwise a typed rejection.

        Revocation ends a participant's right to sign from the revocation time on; events
        stamped earlier stay verifiable, so history is not rewritten by a later revocation.
        Rotation closes the old key's window at the rotation time for the same reason.
        """
        key = self.key(kid)
        if self.revoked_at is not None and moment >= self.revoked_at:
            raise RejectedEvent(
                Reason.PARTICIPANT_REVOKED,
                f"{self.id} was revoked at {format_time(self.revoked_at)}, "
                "before this event's time",
            )
        if not key.valid_at(moment):
            window = f"{format_time(key.not_before)} .. " + (
                format_time(key.not_after) if key.not_after else "open"
            )
            raise RejectedEvent(
                Reason.KEY_NOT_VALID,
                f"key {self.id}/{kid} was not valid at {format_time(moment)} (valid {window})",
            )
        return self.public_key(kid)

    def to_json(self) -> dict[str, Any]:
        """The participant as the JSON document stored in KV and shown by the CLI."""
        current = self.current_key
        return {
            "id": self.id,
            "unit": self.unit,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "revoked_at": format_time(self.revoked_at) if self.revoked_at else None,
            "created_at": format_time(self.created_at) if self.created_at else None,
            "key_id": current.key_id if current else None,
            "suite": current.suite.name if current else None,
            "algorithm": current.algorithm if current else None,
            "public_key": base64.b64encode(current.public_key).decode() if current else None,
            "certificate_pem": current.certificate_pem if current else None,
            "keys": [k.to_json() for k in self.keys],
            "encryption_keys": [k.to_json() for k in self.encryption_keys],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Participant:
        """Inverse of to_json."""
        return cls(
            id=data["id"],
            unit=data["unit"],
            name=data.get("name", ""),
            role=data.get("role", "department"),
            status=data.get("status", "active"),
            revoked_at=parse_time(data["revoked_at"]) if data.get("revoked_at") else None,
            created_at=parse_time(data["created_at"]) if data.get("created_at") else None,
            keys=tuple(ParticipantKey.from_json(k) for k in data.get("keys", [])),
            encryption_keys=tuple(
                EncryptionKey.from_json(k) for k in data.get("encryption_keys", [])
            ),
        )

    def with_keys(self, keys: tuple[ParticipantKey, ...]) -> Participant:
        """A copy with another key list (clears the parsed-key cache)."""
        return replace(self, keys=keys, _public={})


class ParticipantCache:
    """The receiver's copy of the registry: a dict kept current by a KV watch."""

    def __init__(self) -> None:
        self._by_id: dict[str, Participant] = {}
        self._watch = BucketWatch(PARTICIPANTS_BUCKET, self._apply, name="participants-watch")

    def get(self, participant: str) -> Participant | None:
        """A participant by id, or None."""
        return self._by_id.get(participant)

    def put(self, participant: Participant) -> None:
        """Insert or replace a participant (used by the watch and by tests)."""
        self._by_id[participant.id] = participant
        self._watch.changed()

    async def wait_until(
        self, predicate: Callable[[ParticipantCache], bool], timeout: float = 10.0
    ) -> None:
        """Wait until the watched copy satisfies `predicate` (after a change elsewhere)."""
        await self._watch.wait_for(lambda: predicate(self), timeout)

    def all(self) -> list[Participant]:
        """Every participant, sorted by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def __len__(self) -> int:
        return len(self._by_id)

    async def watch(self, js: Any) -> None:
        """Load the bucket, then keep applying updates in the background until `stop()`."""
        await self._watch.start(js)

    def _apply(self, key: str, operation: str | None, value: bytes | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self._by_id.pop(key, None)
            return
        try:
            self.put(Participant.from_json(json.loads(value)))
        except (ValueError, KeyError) as exc:
            # A damaged registry entry must not stop the watch; the sender simply stays unknown.
            log.error("participants.entry.unreadable", key=key, error=str(exc))

    async def stop(self) -> None:
        """Stop watching (idempotent)."""
        await self._watch.stop()
