"""Adding, rotating and revoking participants: the registry's only writer.

Each change is made in one PostgreSQL transaction that also writes the participant's JSON
document to the `govhub_participants` KV bucket and publishes a signed
`gov.admin.v1.ParticipantChanged` event from the hub operator; the transaction commits only
after both succeeded, so the record never claims a change the bus has not carried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from nats.aio.client import Client as NatsClient

from hub.bus import Publisher, jetstream
from hub.codec import SchemaCache
from hub.crypto import new_registered_keys
from hub.envelope import SigningKey, key_id, seal
from hub.errors import RegistryError
from hub.keys import CertificateAuthority, HomeKeys, KeyStore
from hub.participants import PARTICIPANTS_BUCKET, EncryptionKey, Participant, ParticipantKey
from hub.subjects import check_participant_id, subject_for
from hub.suites import for_public_key

log = structlog.get_logger("hub.enrollment")

CHANGE_SCHEMA = "gov.admin.v1.ParticipantChanged"


@dataclass(frozen=True)
class NewParticipant:
    """What `participant add` needs: id, display name, role; the unit is the id's first token."""

    id: str
    name: str = ""
    role: str = "department"
    public_key: bytes | None = None

    @property
    def unit(self) -> str:
        """The unit token of the id."""
        return self.id.split(".", 1)[0]


async def load_participants(
    db: asyncpg.Pool | asyncpg.Connection, only: str | None = None
) -> list[Participant]:
    """Participants with their keys from the PostgreSQL record (a pool, or a connection
    inside an open transaction so it sees its own writes)."""
    rows = await db.fetch(
        "SELECT * FROM participants WHERE $1::text IS NULL OR id = $1 ORDER BY id", only
    )
    keys = await db.fetch(
        "SELECT * FROM participant_keys WHERE $1::text IS NULL OR participant_id = $1"
        " ORDER BY not_before",
        only,
    )
    by_owner: dict[str, list[ParticipantKey]] = {}
    for k in keys:
        by_owner.setdefault(k["participant_id"], []).append(
            ParticipantKey(
                key_id=k["key_id"],
                public_key=bytes(k["public_key"]),
                not_before=k["not_before"],
                not_after=k["not_after"],
                certificate_pem=k["certificate_pem"],
                algorithm=k["algorithm"],
            )
        )
    encryption = await db.fetch(
        "SELECT * FROM participant_encryption_keys"
        " WHERE $1::text IS NULL OR participant_id = $1 ORDER BY not_before, suite",
        only,
    )
    sealing: dict[str, list[EncryptionKey]] = {}
    for e in encryption:
        sealing.setdefault(e["participant_id"], []).append(
            EncryptionKey(
                key_id=e["key_id"],
                suite=e["suite"],
                public_key=bytes(e["public_key"]),
                not_before=e["not_before"],
                not_after=e["not_after"],
                signing_key_id=e["signing_key_id"],
                signature=bytes(e["signature"]),
            )
        )
    return [
        Participant(
            id=r["id"],
            unit=r["unit"],
            name=r["name"],
            role=r["role"],
            status=r["status"],
            revoked_at=r["revoked_at"],
            created_at=r["created_at"],
            keys=tuple(by_owner.get(r["id"], [])),
            encryption_keys=tuple(sealing.get(r["id"], [])),
        )
        for r in rows
    ]


class Enrollment:
    """Registry changes signed by the hub operator."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        nc: NatsClient,
        publisher: Publisher,
        schemas: SchemaCache,
        keys: HomeKeys,
        operator: str,
    ) -> None:
        self._pool = pool
        self._js = jetstream(nc)
        self._publisher = publisher
        self._schema = schemas.by_name(CHANGE_SCHEMA)
        self._keys = keys
        self.operator = operator

    def _operator_key(self) -> SigningKey:
        return self._keys.store.current(self.operator)

    def _open_keys(self) -> tuple[KeyStore, CertificateAuthority]:
        # Opened before anything is written: a machine without the passphrase or the root is
        # refused up front, never after a key file or a KV entry was left behind.
        return self._keys.store, self._keys.ca

    async def add(self, specs: Sequence[NewParticipant]) -> list[Participant]:
        """Register participants, generating keys locally unless a public key is given."""
        now = datetime.now(UTC)
        added: list[Participant] = []
        for spec in specs:
            check_participant_id(spec.id)
        keystore, ca = self._open_keys()
        async with self._pool.acquire() as conn, conn.transaction():
            existing = await conn.fetch(
                "SELECT id FROM participants WHERE id = ANY($1::text[])", [s.id for s in specs]
            )
            if existing:
                names = ", ".join(r["id"] for r in existing)
                raise RegistryError(
                    f"already registered: {names}; use `participant rotate` for a new key"
                )
            for spec in specs:
                public = spec.public_key
                encryption: tuple[EncryptionKey, ...] = ()
                if public is None:
                    signer = keystore.generate(spec.id)
                    public = signer.public_bytes
                    encryption = new_registered_keys(keystore, signer, now)
                key = _new_key(ca, spec.id, spec.name, public, now)
                await conn.execute(
                    "INSERT INTO participants (id, unit, name, role, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    spec.id,
                    spec.unit,
                    spec.name,
                    spec.role,
                    now,
                )
                await _insert_key(conn, spec.id, key)
                await _insert_encryption_keys(conn, spec.id, encryption)
                added.append(
                    Participant(
                        id=spec.id,
                        unit=spec.unit,
                        name=spec.name,
                        role=spec.role,
                        created_at=now,
                        keys=(key,),
                        encryption_keys=encryption,
                    )
                )
            await self._distribute(added, "ADDED", now)
        log.info("enrollment.added", count=len(added))
        return added

    async def rotate(self, participant: str) -> Participant:
        """Give a participant a new key; the old key stays valid for events stamped before now."""
        now = datetime.now(UTC)
        keystore, ca = self._open_keys()
        current = await self._get(participant)
        if current.status != "active":
            raise RegistryError(
                f"{participant} is revoked; a revoked participant cannot get a new key"
            )
        signer = keystore.generate(participant)
        public = signer.public_bytes
        encryption = new_registered_keys(keystore, signer, now)
        key = _new_key(ca, participant, current.name, public, now)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE participant_keys SET not_after = $2"
                " WHERE participant_id = $1 AND not_after IS NULL",
                participant,
                now,
            )
            # Old encryption keys close with the signing key; their private halves stay on
            # the participant's machine so documents sealed to them can still be opened.
            await conn.execute(
                "UPDATE participant_encryption_keys SET not_after = $2"
                " WHERE participant_id = $1 AND not_after IS NULL",
                participant,
                now,
            )
            await _insert_key(conn, participant, key)
            await _insert_encryption_keys(conn, participant, encryption)
            updated = (await load_participants(conn, participant))[0]
            await self._distribute([updated], "ROTATED", now, key=key)
        log.info("enrollment.rotated", participant=participant, key_id=key.key_id)
        return updated

    async def revoke(self, participant: str) -> Participant:
        """Revoke a participant: its events stamped from now on are refused everywhere."""
        now = datetime.now(UTC)
        self._open_keys()
        current = await self._get(participant)
        if current.status == "revoked":
            raise RegistryError(f"{participant} is already revoked")
        if participant == self.operator:
            raise RegistryError("the hub operator cannot revoke itself")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE participants SET status = 'revoked', revoked_at = $2 WHERE id = $1",
                participant,
                now,
            )
            updated = (await load_participants(conn, participant))[0]
            await self._distribute([updated], "REVOKED", now)
        log.info("enrollment.revoked", participant=participant)
        return updated

    async def sync(self) -> int:
        """Rewrite the KV copy from the PostgreSQL record (after a restore, for example)."""
        return await rewrite_bucket(self._pool, self._js)

    async def _get(self, participant: str) -> Participant:
        found = await load_participants(self._pool, participant)
        if not found:
            raise RegistryError(f"{participant} is not a registered participant")
        return found[0]

    async def _distribute(
        self,
        changed: Sequence[Participant],
        change: str,
        when: datetime,
        key: ParticipantKey | None = None,
    ) -> None:
        kv = await self._js.key_value(PARTICIPANTS_BUCKET)
        for p in changed:
            await kv.put(p.id, json.dumps(p.to_json()).encode())
        operator = self._operator_key()
        subject = subject_for("adm", self.operator, "participant")
        envs = []
        for p in changed:
            new_key = key or (p.current_key if change == "ADDED" else None)
            body = self._schema.encode(
                {
                    "participant_id": p.id,
                    "change": change,
                    "unit": p.unit,
                    "name": p.name,
                    "role": p.role,
                    "key_id": new_key.key_id if new_key else None,
                    "public_key": new_key.public_key if new_key else None,
                    "certificate_pem": new_key.certificate_pem if new_key else None,
                    "effective_at": when,
                }
            )
            envs.append(seal(operator, subject, CHANGE_SCHEMA, body))
        await self._publisher.publish_many(envs)


def _new_key(
    ca: CertificateAuthority, participant: str, name: str, public: bytes, now: datetime
) -> ParticipantKey:
    """A registry key for a raw public key, in the suite its form names (hub/suites.py).

    Ed25519 keys get an X.509 certificate from the prefecture root; SM2 keys get none yet
    (the SM2 deployment CA is not built: docs/gm.md), so their trust is the signed registry.
    """
    suite = for_public_key(public)
    return ParticipantKey(
        key_id=key_id(public),
        public_key=public,
        not_before=now,
        certificate_pem=ca.issue(participant, name, public, now) if suite.name == "intl" else "",
        algorithm=suite.algorithm,
    )


async def _insert_key(conn: asyncpg.Connection, participant: str, key: ParticipantKey) -> None:
    await conn.execute(
        "INSERT INTO participant_keys (participant_id, key_id, public_key, not_before,"
        " not_after, certificate_pem, algorithm) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        participant,
        key.key_id,
        key.public_key,
        key.not_before,
        key.not_after,
        key.certificate_pem,
        key.algorithm,
    )


async def _insert_encryption_keys(
    conn: asyncpg.Connection, participant: str, keys: Sequence[EncryptionKey]
) -> None:
    for key in keys:
        await conn.execute(
            "INSERT INTO participant_encryption_keys (participant_id, key_id, suite, public_key,"
            " not_before, not_after, signing_key_id, signature)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            participant,
            key.key_id,
            key.suite,
            key.public_key,
            key.not_before,
            key.not_after,
            key.signing_key_id,
            key.signature,
        )


async def rewrite_bucket(pool: asyncpg.Pool, js: Any) -> int:
    """Put every participant of the PostgreSQL record into the KV copy receivers watch."""
    everyone = await load_participants(pool)
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    for p in everyone:
        await kv.put(p.id, json.dumps(p.to_json()).encode())
    return len(everyone)
