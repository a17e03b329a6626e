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
from datetime import date, datetime
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import load_schema, parse_schema, to_parsing_canonical_form

from hub.errors import InputError, Reason, RejectedEvent, SchemaError

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


_PRIMITIVE_KINDS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "bytes": (bytes,),
    "string": (str,),
    "float": (int, float),
    "double": (int, float),
}
_INT_RANGE = {"int": 1 << 31, "long": 1 << 63}


def _kind(value: Any) -> str:
    """What a value is, in the words of JSON (the form people hand records in)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "a value of another kind"


_TYPE_WORDS = {
    "null": "null", "boolean": "true or false", "int": "an integer", "long": "an integer",
    "float": "a number", "double": "a number", "bytes": "bytes", "string": "a string",
    "record": "an object", "map": "an object", "array": "a list", "enum": "a symbol",
    "fixed": "bytes", "date": "a date", "timestamp-millis": "a timestamp",
    "timestamp-micros": "a timestamp",
}  # fmt: skip


def _type_words(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_type_words(branch) for branch in schema)
    if isinstance(schema, str):
        return _TYPE_WORDS.get(schema, f"a {schema}")
    kind = schema.get("logicalType") or schema["type"]
    return _TYPE_WORDS.get(kind, "a value") if isinstance(kind, str) else _type_words(kind)


def misfit(schema: Any, value: Any, path: str = "", named: dict[str, Any] | None = None) -> str:
    """Where a value does not fit a (parsed) Avro schema, as one phrase; "" if it fits.

    Called only after the encoder refused a record, to say which field is wrong and how
    instead of repeating the encoder's own message.
    """
    named = {} if named is None else named
    where = path or "the record"
    if isinstance(schema, list):
        if any(not misfit(branch, value, path, named) for branch in schema):
            return ""
        return f"{where} must be {_type_words(schema)}, not {_kind(value)}"
    if isinstance(schema, str):
        if schema in named:
            return misfit(named[schema], value, path, named)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return misfit(kind, value, path, named)
    if "name" in schema:
        named[schema["name"]] = schema
    if schema.get("logicalType", "").startswith("timestamp") or schema.get("logicalType") == "date":
        accepted: tuple[type, ...] = (datetime, int) if kind == "long" else (date, int)
        if isinstance(value, accepted) and not isinstance(value, bool):
            return ""
        return f"{where} must be {_type_words(schema)}, not {_kind(value)}"
    if kind == "null":
        return "" if value is None else f"{where} must be null, not {_kind(value)}"
    if kind in _INT_RANGE:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{where} must be an integer, not {_kind(value)}"
        bound = _INT_RANGE[kind]
        return "" if -bound <= value < bound else f"{where} is out of the range of an Avro {kind}"
    if kind in _PRIMITIVE_KINDS:
        if not isinstance(value, _PRIMITIVE_KINDS[kind]) or (
            kind in ("float", "double") and isinstance(value, bool)
        ):
            return f"{where} must be {_type_words(kind)}, not {_kind(value)}"
        if isinstance(value, str) and not _encodable(value):
            return f"{where} is not valid Unicode text (it holds a lone surrogate)"
        return ""
    if kind == "enum":
        if isinstance(value, str) and value in schema["symbols"]:
            return ""
        return f"{where} must be one of {', '.join(schema['symbols'])}"
    if kind == "fixed":
        if isinstance(value, bytes) and len(value) == schema["size"]:
            return ""
        return f"{where} must be exactly {schema['size']} bytes"
    if kind == "array":
        if not isinstance(value, list | tuple):
            return f"{where} must be a list, not {_kind(value)}"
        for i, item in enumerate(value):
            if found := misfit(schema["items"], item, f"{path}[{i}]", named):
                return found
        return ""
    if kind == "map":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            return f"{where} must be an object with string keys"
        for key, item in value.items():
            if found := misfit(schema["values"], item, _field_path(path, key), named):
                return found
        return ""
    if kind == "record":
        if not isinstance(value, Mapping):
            return f"{where} must be an object, not {_kind(value)}"
        fields = {f["name"]: f for f in schema["fields"]}
        for key in value:
            if key not in fields:
                return f"{_field_path(path, str(key))} is not a field of {schema['name']}"
        for name, spec in fields.items():
            if name not in value:
                if "default" not in spec:
                    return f"{_field_path(path, name)} is missing"
                continue
            if found := misfit(spec["type"], value[name], _field_path(path, name), named):
                return found
        return ""
    return ""


def _field_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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
