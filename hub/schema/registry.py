"""The schema registry's writer: versions per subject, compatibility enforced, signed and audited.

A registration is one PostgreSQL transaction (the record) that also writes the KV bucket
`govhub_schemas` (what receivers watch, hub/schema/watch.py) and publishes a signed
`gov.admin.v1.SchemaRegistered` event from the registrant on `adm.<registrant>.schema`; the
transaction commits only after both succeeded, and KV writes are undone if anything fails,
so nothing is ever half-registered.

A version is its whole schema (hub/avro/identity.py), not its fingerprint: a schema that
differs from the subject's versions only in defaults, aliases or docs is a new version, and
compatibility is checked against every version's own schema. A schema with the fingerprint of
a registered one but other logical types is refused in every mode, whatever its subject:
receivers find the writer of a body by fingerprint alone, so they could not tell the two apart.

Who may register what ("own subjects"): a subject belongs to the participant whose id is its
first two dot-separated tokens, so `akto.civil` owns `akto.civil.v1.BirthRegistered` (a `-` in
an id is written `_`, as Avro names require). The `gov.` namespace holds the shared contracts of
the whole network and belongs to the hub operator, who may also register any subject. The
schema's own full name must belong to the registrant too: otherwise a department could make its
type the one every publisher of another's events writes with.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient

from hub.avro.compat import Mode, check
from hub.avro.identity import digest, indistinguishable
from hub.bus import Publisher, jetstream
from hub.codec import Schema, SchemaCache
from hub.envelope import Envelope, SigningKey, format_time, seal
from hub.errors import (
    KeyStoreError,
    RegistryError,
    SchemaError,
    SchemaIncompatible,
    SchemaIndistinguishable,
)
from hub.schema.files import check_resolvable, load_schema_path
from hub.schema.watch import (
    DEFAULT_MODE,
    SCHEMAS_BUCKET,
    RegisteredSchema,
    SchemaWatch,
    Subject,
    SubjectVersion,
    VersionSchema,
    fp_key,
    schema_key,
    subject_key,
)
from hub.subjects import subject_for
from schemas import SCHEMA_DIR

log = structlog.get_logger("hub.schema.registry")

REGISTERED_SCHEMA = "gov.admin.v1.SchemaRegistered"
MODE_CHANGED_SCHEMA = "gov.admin.v1.SchemaCompatibilityChanged"
SHARED_NAMESPACE = "gov"
# The registration event carries the whole schema and must stay under the 40 KiB event bound.
MAX_SCHEMA_BYTES = 32 * 1024
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_LOCK_CLASS = 0x5C4E  # advisory-lock class of subject registrations (any constant works)


def check_subject_name(subject: str) -> None:
    """Refuse subject names that cannot be KV keys: dot-separated letters, digits, `_`, `-`."""
    if len(subject) > 200 or not _SUBJECT_RE.match(subject):
        raise SchemaError(
            f"subject {subject!r} must be dot-separated tokens of letters, digits, '_' or '-' "
            "(for example akto.civil.v1.BirthRegistered)"
        )


def owner_of(subject: str) -> str | None:
    """The participant id (with `_` for `-`) that owns a subject; None for the operator's own."""
    tokens = subject.split(".")
    if tokens[0] == SHARED_NAMESPACE or len(tokens) < 3:
        return None
    return f"{tokens[0]}.{tokens[1]}".replace("-", "_")


def may_register(participant: str, subject: str, operator: str) -> bool:
    """Whether a participant may register versions under a subject (or a type of this name)."""
    return participant == operator or owner_of(subject) == participant.replace("-", "_")


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a subject with its own schema, as the PostgreSQL record holds it."""

    subject: str
    version: int
    name: str
    fingerprint: str
    digest: str
    schema: Any
    registered_by: str
    registered_at: str

    def to_json(self) -> dict[str, Any]:
        """As `schema show FINGERPRINT --json` lists it."""
        return {
            "subject": self.subject,
            "version": self.version,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "digest": self.digest,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
        }


@dataclass(frozen=True)
class Registration:
    """The outcome of `register`: the version that holds the schema, new or already there."""

    subject: str
    version: int
    name: str
    fingerprint: str
    digest: str
    compatibility: str
    registered_by: str
    registered_at: str
    created: bool
    event_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As `schema register --json` prints it."""
        return {
            "subject": self.subject,
            "version": self.version,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "digest": self.digest,
            "compatibility": self.compatibility,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
            "created": self.created,
            "event_ids": list(self.event_ids),
        }


class SchemaRegistry:
    """Registers schemas under subjects, as the hub operator or as a subject's owner."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        nc: NatsClient,
        publisher: Publisher,
        cache: SchemaCache,
        keys: Callable[[str], SigningKey],
        operator: str,
    ) -> None:
        self._pool = pool
        self._js = jetstream(nc)
        self._publisher = publisher
        self.cache = cache
        self._keys = keys
        self.operator = operator

    async def register(
        self,
        schema: Schema,
        *,
        subject: str | None = None,
        compatibility: Mode | None = None,
        as_id: str | None = None,
    ) -> Registration:
        """Register `schema` (its `source` self-contained) as the next version of `subject`.

        Idempotent: a schema already in the subject (the same normalized form, not merely the
        same fingerprint) returns its version and adds none. `compatibility` sets the
        subject's mode before the check; a refused schema changes nothing. Raises
        SchemaIncompatible with every reason, SchemaIndistinguishable when a registered schema
        has its fingerprint but other logical types, RegistryError when the registrant may
        not, SchemaError on a fingerprint collision or an unusable schema.
        """
        registrant = as_id or self.operator
        subject = subject or schema.name
        check_subject_name(subject)
        check_resolvable(schema.source)
        for owned in dict.fromkeys((subject, schema.name)):
            if not may_register(registrant, owned, self.operator):
                raise RegistryError(_not_owner(registrant, owned, self.operator))
        text = json.dumps(schema.source, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) > MAX_SCHEMA_BYTES:
            raise SchemaError(
                f"{schema.name} is {len(text.encode())} bytes of JSON; the registry takes schemas "
                f"up to {MAX_SCHEMA_BYTES} bytes (split it into types in their own files)"
            )
        key = self._keys(registrant)  # before any write: a missing key must change nothing
        undo: list[tuple[str, bytes | None]] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                result, envs = await self._record(
                    conn, schema, text, subject, compatibility, registrant, key
                )
                if envs:
                    await self._write_kv(conn, schema, subject, undo)
                    await self._publisher.publish_many(envs)
        except BaseException:
            await self._undo(undo)
            raise
        if result.created:
            self.cache.add(schema, current=subject == schema.name)
            log.info(
                "schemas.registered",
                subject=subject,
                version=result.version,
                fingerprint=result.fingerprint,
                registered_by=registrant,
            )
        return result

    async def _record(
        self,
        conn: asyncpg.Connection,
        schema: Schema,
        text: str,
        subject: str,
        compatibility: Mode | None,
        registrant: str,
        key: SigningKey,
    ) -> tuple[Registration, list[Envelope]]:
        """The PostgreSQL part of a registration, and the signed events announcing it."""
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, subject)
        status = await conn.fetchval("SELECT status FROM participants WHERE id = $1", registrant)
        if status != "active":
            state = "revoked" if status else "not a registered participant"
            raise RegistryError(f"{registrant} is {state} and cannot register schemas")
        known = await conn.fetchrow(
            "SELECT name, canonical, schema_json FROM schemas WHERE fingerprint = $1",
            schema.fingerprint,
        )
        if known is not None and known["canonical"] != schema.canonical:
            raise SchemaError(_collision(schema, known["name"]))
        row = await conn.fetchrow("SELECT * FROM schema_subjects WHERE subject = $1", subject)
        previous_mode = Mode(row["compatibility"]) if row else None
        mode = compatibility or previous_mode or Mode(DEFAULT_MODE)
        versions = await conn.fetch(
            "SELECT version, fingerprint, schema_json, registered_by, registered_at"
            " FROM schema_versions WHERE subject = $1 ORDER BY version",
            subject,
        )
        history = [json.loads(v["schema_json"]) for v in versions]
        existing = next(
            (v for v, js in zip(versions, history, strict=True) if digest(js) == schema.digest),
            None,
        )
        if existing is None:
            if known is not None:
                await _refuse_indistinguishable(conn, schema, json.loads(known["schema_json"]))
            findings = check(schema.source, history, mode)
            if findings:
                raise _incompatible(
                    schema, subject, mode, len(versions), [str(f) for f in findings]
                )
        now = datetime.now(UTC)
        envs: list[Envelope] = []
        adm = subject_for("adm", registrant, "schema")
        if row is None:
            await conn.execute(
                "INSERT INTO schema_subjects"
                " (subject, owner, compatibility, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $4)",
                subject,
                owner_of(subject) or self.operator,
                mode.value,
                now,
            )
        elif mode is not previous_mode:
            assert previous_mode is not None
            await conn.execute(
                "UPDATE schema_subjects SET compatibility = $2, updated_at = $3 WHERE subject = $1",
                subject,
                mode.value,
                now,
            )
            body = self.cache.by_name(MODE_CHANGED_SCHEMA).encode(
                {
                    "subject": subject,
                    "compatibility": mode.value,
                    "previous": previous_mode.value,
                    "changed_at": now,
                }
            )
            envs.append(seal(key, adm, MODE_CHANGED_SCHEMA, body))
        if existing is not None:
            result = Registration(
                subject=subject,
                version=existing["version"],
                name=schema.name,
                fingerprint=schema.fingerprint_hex,
                digest=schema.digest,
                compatibility=mode.value,
                registered_by=existing["registered_by"],
                registered_at=format_time(existing["registered_at"]),
                created=False,
                event_ids=tuple(e.event_id for e in envs),
            )
            return result, envs
        version = versions[-1]["version"] + 1 if versions else 1
        body = self.cache.by_name(REGISTERED_SCHEMA).encode(
            {
                "subject": subject,
                "version": version,
                "schema_name": schema.name,
                "fingerprint": schema.fingerprint_hex,
                "compatibility": mode.value,
                "schema_json": text,
                "registered_at": now,
            }
        )
        envs.append(seal(key, adm, REGISTERED_SCHEMA, body))
        if known is None:
            # ON CONFLICT: another subject may register the same schema concurrently; the
            # canonical forms are compared again when the KV entry is written.
            await conn.execute(
                "INSERT INTO schemas"
                " (fingerprint, name, canonical, schema_json, registered_by, registered_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fingerprint) DO NOTHING",
                schema.fingerprint,
                schema.name,
                schema.canonical,
                text,
                registrant,
                now,
            )
        await conn.execute(
            "INSERT INTO schema_versions"
            " (subject, version, fingerprint, schema_json, registered_by, registered_at, event_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            subject,
            version,
            schema.fingerprint,
            text,
            registrant,
            now,
            envs[-1].event_id,
        )
        result = Registration(
            subject=subject,
            version=version,
            name=schema.name,
            fingerprint=schema.fingerprint_hex,
            digest=schema.digest,
            compatibility=mode.value,
            registered_by=registrant,
            registered_at=format_time(now),
            created=True,
            event_ids=tuple(e.event_id for e in envs),
        )
        return result, envs

    async def _write_kv(
        self,
        conn: asyncpg.Connection,
        schema: Schema,
        subject: str,
        undo: list[tuple[str, bytes | None]],
    ) -> None:
        """Copy the registration to KV: the writer of its fingerprint and the version's own
        schema (both write-once) first, then its subject."""
        kv = await self._js.key_value(SCHEMAS_BUCKET)
        stored = await _schema_doc(conn, schema.fingerprint)
        assert stored is not None
        key = fp_key(schema.fingerprint_hex)
        try:
            await kv.create(key, json.dumps(stored.to_json(), ensure_ascii=False).encode())
            undo.append((key, None))
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(key)
            if (
                RegisteredSchema.from_json(json.loads(entry.value or b"{}")).canonical
                != schema.canonical
            ):
                # The bucket holds another schema under this fingerprint (tampering or a
                # collision PostgreSQL did not know of): refuse rather than overwrite it.
                raise SchemaError(_collision(schema, "an entry in the KV bucket")) from None
        key = schema_key(schema.digest)
        own = json.dumps(
            VersionSchema(schema.digest, schema.fingerprint_hex, schema.source).to_json(),
            ensure_ascii=False,
        ).encode()
        try:
            await kv.create(key, own)
            undo.append((key, None))
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(key)
            if digest(json.loads(entry.value or b"{}").get("schema")) != schema.digest:
                # The key names its content, so the genuine entry is known: put it back.
                await kv.put(key, own)
        doc = await _subject_doc(conn, subject)
        assert doc is not None
        key = subject_key(subject)
        try:
            previous: bytes | None = (await kv.get(key)).value
        except nats.js.errors.KeyNotFoundError:
            previous = None
        await kv.put(key, json.dumps(doc.to_json(), ensure_ascii=False).encode())
        undo.append((key, previous))

    async def _undo(self, undo: list[tuple[str, bytes | None]]) -> None:
        """Put back what a failed registration wrote to KV (best effort: `sync` repairs)."""
        if not undo:
            return
        kv = await self._js.key_value(SCHEMAS_BUCKET)
        for key, previous in reversed(undo):
            with contextlib.suppress(Exception):
                if previous is None:
                    await kv.delete(key)
                else:
                    await kv.put(key, previous)
        log.warning("schemas.register.rolled_back", keys=[k for k, _ in undo])

    async def subjects(self) -> list[Subject]:
        """Every subject with its versions, from the PostgreSQL record."""
        names = await self._pool.fetch("SELECT subject FROM schema_subjects ORDER BY subject")
        async with self._pool.acquire() as conn:
            docs = [await _subject_doc(conn, r["subject"]) for r in names]
        return [d for d in docs if d is not None]

    async def subject(self, name: str) -> Subject | None:
        """One subject, or None."""
        async with self._pool.acquire() as conn:
            return await _subject_doc(conn, name)

    async def schema(self, fingerprint: bytes) -> RegisteredSchema | None:
        """One registered schema by its 8-byte fingerprint, or None."""
        async with self._pool.acquire() as conn:
            return await _schema_doc(conn, fingerprint)

    async def history(self, subject: str) -> list[tuple[SubjectVersion, Any]]:
        """Every version of a subject with its own schema JSON, oldest first."""
        rows = await self._pool.fetch(
            "SELECT version, schema_json FROM schema_versions WHERE subject = $1 ORDER BY version",
            subject,
        )
        doc = await self.subject(subject)
        if doc is None:
            return []
        by_version = {r["version"]: json.loads(r["schema_json"]) for r in rows}
        return [(v, by_version[v.version]) for v in doc.versions]

    async def version(self, subject: str, number: int) -> RegisteredVersion | None:
        """One version of a subject with its own schema, or None."""
        rows = await self._pool.fetch(
            _VERSIONS + " WHERE v.subject = $1 AND v.version = $2", subject, number
        )
        return _registered_version(rows[0]) if rows else None

    async def versions_of(self, fingerprint: bytes) -> list[RegisteredVersion]:
        """Every version of every subject that holds `fingerprint`, each with its own schema.

        A reader that finds a body's fingerprint here sees the whole evolution of its type,
        including the versions that share the fingerprint and differ in defaults or aliases.
        """
        rows = await self._pool.fetch(
            _VERSIONS + " WHERE v.subject IN"
            " (SELECT subject FROM schema_versions WHERE fingerprint = $1)"
            " ORDER BY v.subject, v.version",
            fingerprint,
        )
        return [_registered_version(r) for r in rows]

    async def subjects_of(self, fingerprint: bytes) -> list[tuple[str, int]]:
        """(subject, version) pairs holding a fingerprint."""
        rows = await self._pool.fetch(
            "SELECT subject, version FROM schema_versions WHERE fingerprint = $1"
            " ORDER BY subject, version",
            fingerprint,
        )
        return [(r["subject"], r["version"]) for r in rows]

    async def bootstrap(self, directory: Path) -> int:
        """Register, as the hub operator, every shipped schema not yet registered (idempotent).

        A shipped schema the registry refuses (an incompatible edit) is logged and skipped:
        receivers still read it from the shipped files, publishers keep the registered one.
        """
        rows = await self._pool.fetch("SELECT subject, schema_json FROM schema_versions")
        stored: dict[str, list[Any]] = {}
        for r in rows:
            stored.setdefault(r["subject"], []).append(json.loads(r["schema_json"]))

        def registered(schema: Schema) -> bool:
            # Equal documents are the same version; only others need their normal form.
            return any(
                js == schema.source or digest(js) == schema.digest
                for js in stored.get(schema.name, ())
            )

        missing = [
            path
            for name, path in _schema_files(directory)
            if not registered(self.cache.by_name(name))
        ]
        count = 0
        for path in missing:
            schema = load_schema_path(path).schema
            if registered(schema):
                continue
            try:
                await self.register(schema)
                count += 1
            except SchemaIncompatible as exc:
                log.warning("schemas.bootstrap.refused", schema=schema.name, reasons=exc.reasons)
        if count:
            log.info("schemas.bootstrapped", registered=count)
        return count

    async def subject_count(self) -> int:
        """How many subjects the PostgreSQL record holds."""
        return int(await self._pool.fetchval("SELECT count(*) FROM schema_subjects"))

    async def sync(self) -> int:
        """Rewrite the KV bucket from the PostgreSQL record (after a restore, for example)."""
        kv = await self._js.key_value(SCHEMAS_BUCKET)
        subjects = await self.subjects()
        async with self._pool.acquire() as conn:
            for row in await conn.fetch("SELECT fingerprint FROM schemas"):
                stored = await _schema_doc(conn, bytes(row["fingerprint"]))
                assert stored is not None
                await kv.put(fp_key(stored.fingerprint), json.dumps(stored.to_json()).encode())
            for row in await conn.fetch(
                "SELECT DISTINCT fingerprint, schema_json FROM schema_versions"
            ):
                own = json.loads(row["schema_json"])
                entry = VersionSchema(digest(own), bytes(row["fingerprint"]).hex(), own)
                await kv.put(schema_key(entry.digest), json.dumps(entry.to_json()).encode())
        for doc in subjects:
            await kv.put(subject_key(doc.subject), json.dumps(doc.to_json()).encode())
        log.info("schemas.synced", subjects=len(subjects))
        return len(subjects)


async def open_schema_watch(registry: SchemaRegistry, nc: NatsClient) -> SchemaWatch:
    """Register the shipped schemas if needed, then keep the registry's cache current from
    the bucket.

    Called by `open_hub`. Only the operator's machine holds the operator key; elsewhere the
    shipped schemas are left for the operator to register and the watch alone runs.
    """
    try:
        await registry.bootstrap(SCHEMA_DIR)
    except KeyStoreError as exc:
        log.warning("schemas.bootstrap.skipped", reason=str(exc))
    watch = SchemaWatch(registry.cache)
    await watch.watch(jetstream(nc))
    try:
        count = await registry.subject_count()
        if len(watch.subjects) < count or not watch.complete():
            # The bucket lost entries the record has (a NATS store restored from an older
            # backup), or was written by a release that kept no schema per version: rewrite
            # it, or receivers would refuse events of registered schemas, or publish with
            # another version's defaults.
            await registry.sync()
            await watch.wait_for(lambda: len(watch.subjects) >= count and watch.complete(seen=True))
    except BaseException:
        await watch.stop()
        raise
    return watch


async def _schema_doc(conn: asyncpg.Connection, fingerprint: bytes) -> RegisteredSchema | None:
    row = await conn.fetchrow("SELECT * FROM schemas WHERE fingerprint = $1", fingerprint)
    if row is None:
        return None
    return RegisteredSchema(
        fingerprint=bytes(row["fingerprint"]).hex(),
        name=row["name"],
        canonical=row["canonical"],
        schema=json.loads(row["schema_json"]),
        registered_by=row["registered_by"],
        registered_at=format_time(row["registered_at"]),
    )


async def _subject_doc(conn: asyncpg.Connection, subject: str) -> Subject | None:
    row = await conn.fetchrow("SELECT * FROM schema_subjects WHERE subject = $1", subject)
    if row is None:
        return None
    versions = await conn.fetch(
        "SELECT v.version, v.fingerprint, v.schema_json, v.registered_by, v.registered_at,"
        " s.name FROM schema_versions v JOIN schemas s USING (fingerprint)"
        " WHERE v.subject = $1 ORDER BY v.version",
        subject,
    )
    return Subject(
        subject=subject,
        owner=row["owner"],
        compatibility=row["compatibility"],
        versions=tuple(
            SubjectVersion(
                version=v["version"],
                fingerprint=bytes(v["fingerprint"]).hex(),
                name=v["name"],
                registered_by=v["registered_by"],
                registered_at=format_time(v["registered_at"]),
                digest=digest(json.loads(v["schema_json"])),
            )
            for v in versions
        ),
    )


_VERSIONS = (
    "SELECT v.subject, v.version, v.fingerprint, v.schema_json, v.registered_by,"
    " v.registered_at, s.name FROM schema_versions v JOIN schemas s USING (fingerprint)"
)


def _registered_version(row: asyncpg.Record) -> RegisteredVersion:
    own = json.loads(row["schema_json"])
    return RegisteredVersion(
        subject=row["subject"],
        version=row["version"],
        name=row["name"],
        fingerprint=bytes(row["fingerprint"]).hex(),
        digest=digest(own),
        schema=own,
        registered_by=row["registered_by"],
        registered_at=format_time(row["registered_at"]),
    )


async def _refuse_indistinguishable(
    conn: asyncpg.Connection, schema: Schema, registered: Any
) -> None:
    """Refuse a schema whose fingerprint stands for another logical type already.

    Receivers find the writer of a body by its fingerprint alone, in every subject: if the
    registry let one fingerprint stand for decimal(12,2) and for decimal(12,3), every event of
    one of them would be read with the other's scale (1234 fen read as 12.34, not 1.234).
    """
    holder = await conn.fetchrow(
        "SELECT subject, version FROM schema_versions WHERE fingerprint = $1"
        " ORDER BY registered_at, subject, version LIMIT 1",
        schema.fingerprint,
    )
    where = f"version {holder['version']} of {holder['subject']}" if holder else None
    refusal = indistinguishable(
        schema.name, schema.fingerprint_hex, schema.source, registered, where
    )
    if refusal is not None:
        raise SchemaIndistinguishable(refusal.message, refusal.reasons, hint=refusal.hint)


def _schema_files(directory: Path) -> list[tuple[str, Path]]:
    return [(p.name.removesuffix(".avsc"), p) for p in sorted(directory.glob("*.avsc"))]


def _not_owner(participant: str, subject: str, operator: str) -> str:
    owner = owner_of(subject)
    if owner is None:
        return (
            f"{participant} may not register {subject}: the {SHARED_NAMESPACE}. namespace holds "
            f"the network's shared contracts, which only the hub operator ({operator}) registers"
        )
    own = participant.replace("-", "_")
    return (
        f"{participant} may not register {subject}: it belongs to {owner}; a participant "
        f"registers only names starting with its own id, such as {own}.v1.SomethingHappened"
    )


def _collision(schema: Schema, other: str) -> str:
    return (
        f"fingerprint {schema.fingerprint_hex} of {schema.name} is already registered for "
        f"{other} with a different canonical form; refusing to overwrite it"
    )


def _incompatible(
    schema: Schema, subject: str, mode: Mode, versions: int, reasons: Sequence[str]
) -> SchemaIncompatible:
    against = "every registered version" if mode.transitive else f"version {versions}"
    return SchemaIncompatible(
        f"{schema.name} ({schema.fingerprint_hex}) is not {mode.value} compatible with "
        f"{against} of subject {subject}",
        reasons,
        hint="Keep the change compatible (docs/schemas.md), or publish it as a new type in the "
        "next namespace version (for example .v2), which starts a new subject.",
    )
