"""The receivers' side of the schema registry: the KV bucket's layout and the watched cache.

The registry (hub/schema/registry.py) writes two kinds of entries to the JetStream KV bucket
`govhub_schemas`, besides its PostgreSQL record:

```
fp.<16 hex>        the writer schema of a fingerprint, write-once: what bodies carrying it decode
                   with (name, canonical form, JSON of the first schema registered with it)
schema.<64 hex>    one version's own schema, write-once, keyed by its digest (SHA-256 of its
                   normalized form, hub/avro/identity.py): with its defaults, aliases and docs
subject.<subject>  one subject: owner, compatibility mode, every version with its fingerprint
                   and digest
```

Versions of one fingerprint differ only in what readers use (the registry refuses any that
differ in logical types), so one writer entry per fingerprint decodes them all, while
publishers write with the latest version's own `schema.` entry, defaults included.

Every receiver keeps a `SchemaCache` (preloaded with the shipped `schemas/`) current with a
`SchemaWatch` on that bucket, so resolving a body's fingerprint stays a dict lookup with no
request per message, and keeps working when the prefecture is unreachable: a county watches
its own mirror of the bucket (same name, its own JetStream domain).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from hub.codec import Schema, SchemaCache, schema_from_json
from hub.errors import GovhubError
from hub.kvwatch import BucketWatch

# Named in hub/topology.py with the other buckets; re-exported, as the registry and the
# runtime read it from here.
from hub.topology import SCHEMAS_BUCKET as SCHEMAS_BUCKET

FP_PREFIX = "fp."
SCHEMA_PREFIX = "schema."
SUBJECT_PREFIX = "subject."
DEFAULT_MODE = "BACKWARD"

log = structlog.get_logger("hub.schema.watch")


def fp_key(fingerprint_hex: str) -> str:
    """The KV key of a registered schema."""
    return FP_PREFIX + fingerprint_hex


def schema_key(digest: str) -> str:
    """The KV key of a version's own schema."""
    return SCHEMA_PREFIX + digest


def subject_key(subject: str) -> str:
    """The KV key of a subject."""
    return SUBJECT_PREFIX + subject


@dataclass(frozen=True)
class RegisteredSchema:
    """One registered schema: what `fp.<hex>` holds and `schema show FINGERPRINT` prints."""

    fingerprint: str
    name: str
    canonical: str
    schema: Any
    registered_by: str
    registered_at: str

    def to_json(self) -> dict[str, Any]:
        """The KV document."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "canonical": self.canonical,
            "schema": self.schema,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegisteredSchema:
        """Inverse of to_json."""
        return cls(
            fingerprint=str(data["fingerprint"]),
            name=str(data["name"]),
            canonical=str(data["canonical"]),
            schema=data["schema"],
            registered_by=str(data["registered_by"]),
            registered_at=str(data["registered_at"]),
        )

    def parse(self) -> Schema:
        """The codec's Schema, refusing a document whose JSON does not hash to its fingerprint.

        The check exists because a receiver trusts this entry to decode signed bodies: an
        entry whose schema differs from its key would make a body decode as a type other
        than the one its writer fingerprinted.
        """
        schema = schema_from_json(self.schema)
        if schema.fingerprint_hex != self.fingerprint or schema.canonical != self.canonical:
            raise GovhubError(
                f"registry entry {self.fingerprint} holds a schema whose fingerprint is "
                f"{schema.fingerprint_hex}; ignoring it"
            )
        return schema


@dataclass(frozen=True)
class VersionSchema:
    """What `schema.<digest>` holds: one version's own schema, with its fingerprint."""

    digest: str
    fingerprint: str
    schema: Any

    def to_json(self) -> dict[str, Any]:
        """The KV document."""
        return {"digest": self.digest, "fingerprint": self.fingerprint, "schema": self.schema}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionSchema:
        """Inverse of to_json."""
        return cls(str(data["digest"]), str(data["fingerprint"]), data["schema"])

    def parse(self) -> Schema:
        """The codec's Schema, refusing a document whose schema does not hash to its digest.

        Publishers write with this schema and fill its defaults: a forged entry could make
        them write another default, or bodies every receiver misreads.
        """
        schema = schema_from_json(self.schema)
        if schema.digest != self.digest or schema.fingerprint_hex != self.fingerprint:
            raise GovhubError(
                f"registry entry {self.digest} holds a schema whose digest is {schema.digest}; "
                "ignoring it"
            )
        return schema


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject: its fingerprint, and the digest of its own schema."""

    version: int
    fingerprint: str
    name: str
    registered_by: str
    registered_at: str
    digest: str = ""  # empty in documents written before versions had their own schema

    def to_json(self) -> dict[str, Any]:
        """As stored in the subject document."""
        return {
            "version": self.version,
            "fingerprint": self.fingerprint,
            "digest": self.digest,
            "name": self.name,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
        }


@dataclass(frozen=True)
class Subject:
    """A subject: the versions of one evolving contract and the mode that guards it."""

    subject: str
    owner: str
    compatibility: str = DEFAULT_MODE
    versions: tuple[SubjectVersion, ...] = ()

    @property
    def latest(self) -> SubjectVersion | None:
        """The highest version, or None for a subject with none yet."""
        return self.versions[-1] if self.versions else None

    def to_json(self) -> dict[str, Any]:
        """The KV document."""
        return {
            "subject": self.subject,
            "owner": self.owner,
            "compatibility": self.compatibility,
            "versions": [v.to_json() for v in self.versions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        """Inverse of to_json."""
        return cls(
            subject=str(data["subject"]),
            owner=str(data["owner"]),
            compatibility=str(data.get("compatibility", DEFAULT_MODE)),
            versions=tuple(
                SubjectVersion(
                    version=int(v["version"]),
                    fingerprint=str(v["fingerprint"]),
                    name=str(v["name"]),
                    registered_by=str(v["registered_by"]),
                    registered_at=str(v["registered_at"]),
                    digest=str(v.get("digest", "")),
                )
                for v in data.get("versions", [])
            ),
        )


class SchemaWatch:
    """Keeps a SchemaCache current from the registry bucket (or a county's mirror of it).

    Schemas already in the cache when the watch starts (the shipped `schemas/`) are never
    removed. A damaged or colliding entry is logged and skipped, never applied: the cache
    keeps the schema it had for that fingerprint.
    """

    def __init__(self, cache: SchemaCache, *, bucket: str = SCHEMAS_BUCKET) -> None:
        self.cache = cache
        self.bucket = bucket
        self.subjects: dict[str, Subject] = {}
        self._shipped = set(cache.fingerprints())
        self._loaded: dict[bytes, Schema] = {}
        self._versions: dict[str, Schema] = {}  # digest -> a version's own schema
        self._seen: set[str] = set()  # digests of every version entry seen, applied or refused
        self._current: dict[str, tuple[bytes, str]] = {}  # name -> latest (fingerprint, digest)
        self._watch = BucketWatch(bucket, self.apply, name="schemas-watch")

    async def watch(self, js: Any) -> None:
        """Load the bucket, then keep applying updates in the background until `stop()`."""
        await self._watch.start(js)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until `predicate()` holds after some applied entry (raises TimeoutError)."""
        await self._watch.wait_for(predicate, timeout)

    def apply(self, key: str, operation: str | None, value: bytes | None) -> None:
        """Apply one KV entry to the cache (the watch calls this; so can a test or a mirror)."""
        deleted = operation in ("DEL", "PURGE") or not value
        try:
            if key.startswith(FP_PREFIX):
                self._apply_schema(key[len(FP_PREFIX) :], None if deleted else value)
            elif key.startswith(SCHEMA_PREFIX):
                self._seen.add(key[len(SCHEMA_PREFIX) :])
                self._apply_version(key[len(SCHEMA_PREFIX) :], None if deleted else value)
            elif key.startswith(SUBJECT_PREFIX):
                self._apply_subject(key[len(SUBJECT_PREFIX) :], None if deleted else value)
        except (GovhubError, ValueError, KeyError, TypeError) as exc:
            # A damaged entry must not stop the watch; its fingerprint simply stays unknown.
            log.error("schemas.entry.refused", key=key, error=str(exc))

    def _apply_schema(self, fp_hex: str, value: bytes | None) -> None:
        fp = bytes.fromhex(fp_hex)
        if value is None:
            if fp in self._loaded and fp not in self._shipped:
                del self._loaded[fp]
                self.cache.remove(fp)
            return
        doc = RegisteredSchema.from_json(json.loads(value))
        known = self.cache.by_fingerprint(fp)
        if known is not None and known.canonical == doc.canonical and doc.name == known.name:
            schema = known  # the shipped copy: nothing to parse, nothing that could differ
        else:
            schema = doc.parse()
        latest = self._current.get(schema.name)
        # the writer stands in for the latest version until that version's own entry arrives
        current = latest is not None and latest[0] == fp and latest[1] not in self._versions
        self.cache.add(schema, current=current)  # raises SchemaError on a collision
        self._loaded[fp] = schema

    def _known(self, doc: VersionSchema) -> Schema | None:
        """The cached schema this entry names by digest (most entries are the shipped files,
        parsed already), or None to parse the entry's own schema."""
        try:
            known = self.cache.by_fingerprint(bytes.fromhex(doc.fingerprint))
        except ValueError:
            return None
        return known if known is not None and known.digest == doc.digest else None

    def _apply_version(self, digest: str, value: bytes | None) -> None:
        if value is None:
            return  # write-once entries are only deleted by a rolled-back registration
        doc = VersionSchema.from_json(json.loads(value))
        if doc.digest != digest:
            raise GovhubError(f"registry entry {digest} names another digest; ignoring it")
        schema = self._known(doc) or doc.parse()
        latest = self._current.get(schema.name)
        if latest is not None and latest[1] == digest:
            self.cache.add(schema, current=True)  # refuses other logical types under its fp
        self._versions[digest] = schema

    def _apply_subject(self, name: str, value: bytes | None) -> None:
        if value is None:
            self.subjects.pop(name, None)
            return
        subject = Subject.from_json(json.loads(value))
        self.subjects[name] = subject
        latest = subject.latest
        # What publishers write with is the latest version of the subject named after the
        # type, its own schema with its own defaults; in a mirror's catch-up that schema may
        # arrive after its subject, and the fingerprint's writer stands in until it does.
        if latest is not None and latest.name == name:
            fp = bytes.fromhex(latest.fingerprint)
            self._current[name] = (fp, latest.digest)
            known = self._versions.get(latest.digest) or self.cache.by_fingerprint(fp)
            if known is not None:
                self.cache.add(known, current=True)

    def complete(self, *, seen: bool = False) -> bool:
        """Whether every version of every subject has its own schema entry applied (a bucket
        written by an earlier release has none; `SchemaRegistry.sync` adds them). `seen`
        counts entries that were refused too: what waiting for a rewrite may expect."""
        known = self._seen if seen else self._versions
        return all(v.digest in known for s in self.subjects.values() for v in s.versions)

    def known(self, fingerprints: Iterable[bytes]) -> bool:
        """Whether every fingerprint resolves from the cache."""
        return all(self.cache.by_fingerprint(fp) is not None for fp in fingerprints)

    async def stop(self) -> None:
        """Stop watching (idempotent)."""
        await self._watch.stop()
