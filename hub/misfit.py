"""Where a value does not fit an Avro schema, said for a person: the field and what it should be.

The encoder (fastavro) says only that a record does not fit, in its own words
(``'NoneType' object is not iterable``, ``must be string on field title``); this walks the
parsed schema beside the value and names the first field that is wrong, in the words of the
JSON people hand records in. It runs only after the encoder refused, never per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

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
