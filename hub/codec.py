"""Avro single-object encoding of event bodies, with parsed schemas and fingerprints cached.

A body is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form, then the Avro binary datum (Avro specification, "Single-object
encoding"). Fingerprints are computed once per schema: fastavro's own fingerprint function
rebuilds its table on every call and costs ~1 ms, far too slow for a per-event path.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import load_schema, parse_schema, to_parsing_canonical_form

from hub.avro.compat import Rule, can_read
from hub.avro.identity import normalized_form, wire_differences
from hub.errors import InputError, Reason, RejectedEvent, SchemaError
from hub.misfit import misfit
from hub.userfiles import json_problem, read_text

SOE_MAGIC = b"\xc3\x01"
SOE_HEADER_LEN = 10

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint the Avro specification calls CRC-64-AVRO."""
    fp = _CRC64_EMPTY
    table = _CRC64_TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fingerprint(canonical_form: str) -> bytes:
    """The 8 little-endian fingerprint bytes that single-object encoding puts after `C3 01`."""
    return crc64_avro(canonical_form.encode()).to_bytes(8, "little")


@dataclass(frozen=True)
class Schema:
    """One named Avro schema: its full name, canonical form, fingerprint and parsed form.

    Equal schemas have the same normalized form: the same fingerprint is not enough.
    """

    name: str
    canonical: str
    fingerprint: bytes
    parsed: Any = field(repr=False, compare=False)
    source: Any = field(repr=False, compare=False)
    normalized: str = field(repr=False)

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as 16 lowercase hex digits, in wire (little-endian) byte order."""
        return self.fingerprint.hex()

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the normalized form: what identifies a registered version."""
        return hashlib.sha256(self.normalized.encode()).hexdigest()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Encode a record as a single-object-encoded body; raises InputError if it does not fit."""
        out = io.BytesIO()
        out.write(SOE_MAGIC)
        out.write(self.fingerprint)
        try:
            fastavro.schemaless_writer(out, self.parsed, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
            # ArithmeticError: fastavro raises OverflowError for a number the type cannot hold
            # (10**20 for an int), which is the data not fitting like any other.
            why = misfit(self.parsed, record) or "it does not fit the schema's types"
            raise InputError(f"the data does not fit schema {self.name}: {why}") from exc
        return out.getvalue()

    def decode(self, body: bytes) -> Any:
        """Decode a single-object-encoded body written with exactly this schema."""
        reader = io.BytesIO(body)
        reader.seek(SOE_HEADER_LEN)
        try:
            value = fastavro.schemaless_reader(reader, self.parsed, None)
        except Exception as exc:  # fastavro raises many unrelated types on truncated input
            raise RejectedEvent(
                Reason.MALFORMED_BODY,
                f"the body does not decode as {self.name}: {_undecodable(exc)}",
            ) from exc
        if reader.tell() != len(body):
            raise RejectedEvent(
                Reason.MALFORMED_BODY,
                f"the body has {len(body) - reader.tell()} bytes after the {self.name} datum",
            )
        return value

    def decode_as(self, body: bytes, reader: Schema) -> Any:
        """Decode a body written with this schema as `reader` sees it (Avro schema resolution).

        A consumer that moved to a newer (or stayed on an older) version of a type reads every
        event in its own shape: defaults fill fields the writer lacked, writer-only fields
        are skipped, promotions apply. Raises SchemaError if `reader` cannot read this schema.
        """
        if reader.normalized == self.normalized:
            return self.decode(body)
        refusal = reader._refusal_of(self)
        if refusal:
            raise SchemaError(
                f"{reader.name} ({reader.fingerprint_hex}) cannot read data written with "
                f"{self.name} ({self.fingerprint_hex}): {refusal}"
            )
        if reader.fingerprint == self.fingerprint:
            return self.decode(body)  # the same fields and types: nothing to resolve
        stream = io.BytesIO(body)
        stream.seek(SOE_HEADER_LEN)
        try:
            value = fastavro.schemaless_reader(stream, self._reading, reader._reading)
        except SchemaResolutionError as exc:
            raise SchemaError(
                f"{reader.name} ({reader.fingerprint_hex}) cannot read data written with "
                f"{self.name} ({self.fingerprint_hex}): {exc}"
            ) from exc
        except Exception as exc:  # fastavro raises many unrelated types on truncated input
            raise RejectedEvent(
                Reason.MALFORMED_BODY,
                f"the body does not decode as {self.name}: {_undecodable(exc)}",
            ) from exc
        if stream.tell() != len(body):
            raise RejectedEvent(
                Reason.MALFORMED_BODY,
                f"the body has {len(body) - stream.tell()} bytes after the {self.name} datum",
            )
        return value

    @functools.cached_property
    def _reading(self) -> Any:
        # fastavro re-parses a schema without its parse marker on every read with a reader
        # schema, which would dominate a consumer's per-event cost; parse once per Schema
        # (not per fingerprint: two schemas with one fingerprint may differ in defaults).
        return parse_schema(self.parsed, named_schemas={})

    @functools.cached_property
    def _refusals(self) -> dict[str, str]:
        return {}

    def _refusal_of(self, writer: Schema) -> str:
        """Why this schema, as reader, may not read `writer` where fastavro would (memoized).

        The specification: "two schemas that are decimal logical types match if their scales
        and precisions match". fastavro reads across such a change and hands the writer's
        value over; the reader, whose schema says another scale, is told instead.
        """
        known = self._refusals.get(writer.normalized)
        if known is None:
            findings = can_read(self.parsed, writer.parsed)
            known = next((str(f) for f in findings if f.rule is Rule.DECIMAL), "")
            self._refusals[writer.normalized] = known
        return known


def _undecodable(exc: Exception) -> str:
    """Why fastavro could not read a datum, said for a person rather than in fastavro's words."""
    if isinstance(exc, EOFError):
        return "it is truncated or holds an impossible length"
    if isinstance(exc, UnicodeDecodeError):
        return "a string in it is not valid UTF-8"
    if isinstance(exc, IndexError):
        return "a union branch or enum symbol number in it is out of range"
    return "it does not follow the schema's binary encoding"


def schema_from_json(source: Any, named: dict[str, Any] | None = None) -> Schema:
    """Parse an Avro schema given as JSON (already loaded) into a Schema."""
    try:
        parsed = parse_schema(source, named_schemas=named if named is not None else {})
    except Exception as exc:
        raise SchemaError(f"the schema is not a valid Avro schema: {exc}") from exc
    return _from_parsed(parsed, source)


def _from_parsed(parsed: Any, source: Any) -> Schema:
    if not isinstance(parsed, dict) or "name" not in parsed:
        raise SchemaError("an event schema must be a named Avro type (record, enum or fixed)")
    canonical = to_parsing_canonical_form(parsed)
    return Schema(
        name=str(parsed["name"]),
        canonical=canonical,
        fingerprint=fingerprint(canonical),
        parsed=parsed,
        source=source,
        normalized=normalized_form(parsed),
    )


def load_schema_file(path: Path) -> Schema:
    """Load `<full.name>.avsc`, resolving named types from sibling files, and check its name."""
    text = read_text(path, "the schema file", error=SchemaError)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON: {json_problem(exc)}") from None
    try:
        parsed = load_schema(str(path), _write_hint=False)
    except Exception as exc:
        raise SchemaError(f"{path}: not a valid Avro schema: {exc}") from exc
    schema = _from_parsed(parsed, raw)
    if path.name != f"{schema.name}.avsc":
        raise SchemaError(
            f"{path}: defines {schema.name}, so the file must be named {schema.name}.avsc"
        )
    return schema


_PARSED: dict[tuple[Path, int, int], Schema] = {}


def _parsed_file(path: Path) -> Schema:
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        _PARSED[key] = load_schema_file(path)
    return _PARSED[key]


class SchemaCache:
    """In-memory lookup of schemas by fingerprint and by full name; no I/O per event."""

    def __init__(self, schemas: Iterable[Schema] = ()) -> None:
        self._by_fp: dict[bytes, Schema] = {}
        self._by_name: dict[str, Schema] = {}
        for schema in schemas:
            self.add(schema)

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaCache:
        """Load every `*.avsc` file of a directory (the shipped `schemas/` by default).

        Parsed files are kept for the process (keyed by their size and modification time):
        every `open_hub` loads the shipped schemas, and parsing them is most of its CPU.
        """
        return cls(_parsed_file(p) for p in sorted(directory.glob("*.avsc")))

    def add(self, schema: Schema, *, current: bool = True) -> None:
        """Add a schema; refuse one its fingerprint cannot tell from the schema cached for it.

        The first schema of a fingerprint stays what bodies of that fingerprint decode with
        (the writer; later ones differ only in what readers use). `current` makes `schema`
        itself, with its own defaults, what `by_name` returns (what publishers write with); an
        older version added for reading only passes False, unless its name has no current one.
        """
        known = self._by_fp.get(schema.fingerprint)
        if known is not None and known.canonical != schema.canonical:
            raise SchemaError(
                f"fingerprint {schema.fingerprint_hex} of {schema.name} collides with "
                f"{known.name}; refusing to overwrite"
            )
        if known is not None and known.normalized != schema.normalized:
            # Publishing with it would write bodies every receiver reads with `known`'s
            # logical types (another decimal scale, another timestamp unit).
            differences = wire_differences(schema.parsed, known.parsed)
            if differences:
                raise SchemaError(
                    f"{schema.name} has the fingerprint {schema.fingerprint_hex} of a cached "
                    f"schema but other logical types ({differences[0]}); refusing it"
                )
        if known is None:
            self._by_fp[schema.fingerprint] = schema
        if current or schema.name not in self._by_name:
            same = known is not None and known.normalized == schema.normalized
            self._by_name[schema.name] = known if same and known is not None else schema

    def remove(self, fp: bytes) -> None:
        """Forget a schema (a registration that was rolled back); its name falls back to
        another version of the same name if one is known."""
        schema = self._by_fp.pop(fp, None)
        if schema is None:
            return
        current = self._by_name.get(schema.name)
        if current is None or current.fingerprint != fp:
            return
        del self._by_name[schema.name]
        for other in self._by_fp.values():
            if other.name == schema.name:
                self._by_name[schema.name] = other

    def by_fingerprint(self, fp: bytes) -> Schema | None:
        """The schema with this 8-byte fingerprint, or None."""
        return self._by_fp.get(fp)

    def by_name(self, name: str) -> Schema:
        """The current schema for a full name; raises SchemaError naming close matches."""
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._by_name, n=8, cutoff=0.5)
            known = ", ".join(close or sorted(self._by_name)[:8])
            what = "close names" if close else "known schemas include"
            raise SchemaError(f"unknown schema {name!r}; {what}: {known}") from None

    def names(self) -> list[str]:
        """All full names, sorted."""
        return sorted(self._by_name)

    def fingerprints(self) -> list[bytes]:
        """Every fingerprint the cache resolves (every version of every name)."""
        return list(self._by_fp)

    def __len__(self) -> int:
        return len(self._by_fp)

    def decode(self, body: bytes) -> tuple[Schema, Any]:
        """Resolve the writer schema from the body's fingerprint and decode it."""
        schema = self.writer_of(body)
        return schema, schema.decode(body)

    def decode_as(self, body: bytes, reader: Schema) -> tuple[Schema, Any]:
        """Resolve the writer schema from the body's fingerprint and decode it as `reader`."""
        writer = self.writer_of(body)
        return writer, writer.decode_as(body, reader)

    def writer_of(self, body: bytes) -> Schema:
        """The registered schema a body was written with, or a typed RejectedEvent."""
        if len(body) < SOE_HEADER_LEN or body[:2] != SOE_MAGIC:
            raise RejectedEvent(
                Reason.NOT_AVRO, "the body is not Avro single-object encoding (no C3 01 marker)"
            )
        fp = body[2:SOE_HEADER_LEN]
        schema = self._by_fp.get(fp)
        if schema is None:
            raise RejectedEvent(
                Reason.UNKNOWN_SCHEMA, f"the body's schema fingerprint {fp.hex()} is not registered"
            )
        return schema
