"""Avro single-object encoding of event bodies, with parsed schemas and fingerprints cached.

A body is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form, then the Avro binary datum (Avro specification, "Single-object
encoding"). Fingerprints are computed once per schema: fastavro's own fingerprint function
rebuilds its table on every call and costs ~1 ms, far too slow for a per-event path.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import load_schema, parse_schema, to_parsing_canonical_form

from hub.errors import InputError, Reason, RejectedEvent, SchemaError
from hub.misfit import misfit

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
    """One named Avro schema: its full name, canonical form, fingerprint and parsed form."""

    name: str
    canonical: str
    fingerprint: bytes
    parsed: Any = field(repr=False, compare=False)
    source: Any = field(repr=False, compare=False)

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as 16 lowercase hex digits, in wire (little-endian) byte order."""
        return self.fingerprint.hex()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Encode a record as a single-object-encoded body; raises InputError if it does not fit."""
        out = io.BytesIO()
        out.write(SOE_MAGIC)
        out.write(self.fingerprint)
        try:
            fastavro.schemaless_writer(out, self.parsed, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
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
        if reader.fingerprint == self.fingerprint:
            return self.decode(body)
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
    )


def load_schema_file(path: Path) -> Schema:
    """Load `<full.name>.avsc`, resolving named types from sibling files, and check its name."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable JSON file: {exc}") from exc
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


class SchemaCache:
    """In-memory lookup of schemas by fingerprint and by full name; no I/O per event."""

    def __init__(self, schemas: Iterable[Schema] = ()) -> None:
        self._by_fp: dict[bytes, Schema] = {}
        self._by_name: dict[str, Schema] = {}
        for schema in schemas:
            self.add(schema)

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaCache:
        """Load every `*.avsc` file of a directory (the shipped `schemas/` by default)."""
        return cls(load_schema_file(p) for p in sorted(directory.glob("*.avsc")))

    def add(self, schema: Schema, *, current: bool = True) -> None:
        """Add a schema; refuse a fingerprint collision between different canonical forms.

        `current` makes it what `by_name` returns (what publishers write with); an older
        version added for reading only passes False, unless its name has no current schema.
        """
        known = self._by_fp.get(schema.fingerprint)
        if known is not None and known.canonical != schema.canonical:
            raise SchemaError(
                f"fingerprint {schema.fingerprint_hex} of {schema.name} collides with "
                f"{known.name}; refusing to overwrite"
            )
        if known is None:
            self._by_fp[schema.fingerprint] = schema
        if current or schema.name not in self._by_name:
            self._by_name[schema.name] = self._by_fp[schema.fingerprint]

    def remove(self, fp: bytes) -> None:
        """Forget a schema (a registration that was rolled back); its name falls back to
        another version of the same name if one is known."""
        schema = self._by_fp.pop(fp, None)
        if schema is None or self._by_name.get(schema.name) is not schema:
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
            known = ", ".join(sorted(self._by_name)[:8])
            raise SchemaError(f"unknown schema {name!r}; known schemas include: {known}") from None

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
