"""Why a record does not fit an Avro schema, as one sentence naming the field and what it needs.

fastavro's own messages speak Python (`'x' (type <class 'str'>) do not match [...]`,
`sequence item 0: expected str instance, int found`). When encoding fails, `misfit` walks the
record with fastavro's validator, which says which field failed and against which schema, and
words that for a person. It runs only after a failure, so encoding pays nothing for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastavro.validation import ValidationError, validate

_PRIMITIVE = {
    "null": "null",
    "boolean": "true or false",
    "int": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "string": "a string",
    "bytes": "bytes",
}
_LOGICAL = {
    "timestamp-millis": "a time (milliseconds since 1970-01-01 UTC)",
    "timestamp-micros": "a time (microseconds since 1970-01-01 UTC)",
    "local-timestamp-millis": "a local time (milliseconds since 1970-01-01)",
    "local-timestamp-micros": "a local time (microseconds since 1970-01-01)",
    "date": "a date (days since 1970-01-01)",
    "time-millis": "a time of day (milliseconds since midnight)",
    "time-micros": "a time of day (microseconds since midnight)",
    "decimal": "a decimal number",
    "uuid": "a UUID",
}
# fastavro's ValueErrors for a missing or an extra field are sentences already; anything else
# it raises (TypeError, AttributeError, a union mismatch) is worded in Python's terms.
_PLAIN = ("missing from the record", "more fields than the schema specifies")


def expected(schema: Any) -> str:
    """What a value must be to fit `schema` (parsed fastavro form), in words."""
    if isinstance(schema, list):
        return " or ".join(dict.fromkeys(expected(s) for s in schema))
    if isinstance(schema, str):
        return _PRIMITIVE.get(schema, f"a {schema.rsplit('.', 1)[-1]} object")
    if not isinstance(schema, Mapping):
        return "a value of the schema's type"
    logical = schema.get("logicalType")
    if isinstance(logical, str) and logical in _LOGICAL:
        return _LOGICAL[logical]
    kind = schema.get("type")
    if kind == "array":
        return f"a list of {_plural(expected(schema.get('items')))}"
    if kind == "map":
        return "an object"
    if kind == "enum":
        return "one of " + ", ".join(str(s) for s in schema.get("symbols", ()))
    if kind == "record":
        return f"an object with the fields of {str(schema.get('name', '')).rsplit('.', 1)[-1]}"
    if kind == "fixed":
        return f"exactly {schema.get('size')} bytes"
    return expected(kind)


def _plural(what: str) -> str:
    for article in ("an ", "a "):
        if what.startswith(article):
            return what.removeprefix(article) + "s"
    return what


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(field: str, top: str) -> str:
    record, _, name = field.rpartition(".")
    if not name:
        return "the record"
    if record and record != top:
        return f"field {name} (in {record.rsplit('.', 1)[-1]})"
    return f"field {name}"


def _record_problem(datum: Any, schema: Mapping[str, Any], where: str) -> str:
    name = str(schema.get("name", "")).rsplit(".", 1)[-1]
    if not isinstance(datum, Mapping):
        return f"{where} is {_shown(datum)} but must be an object with the fields of {name}"
    fields = schema.get("fields", ())
    missing = [f["name"] for f in fields if f["name"] not in datum and "default" not in f]
    if missing:
        return f"{name} needs field {', '.join(missing)}, which has no default"
    extra = sorted(set(datum) - {f["name"] for f in fields})
    if extra:
        return f"{name} has no field {', '.join(extra)}"
    return f"{where} does not fit {name}"


def misfit(schema: Any, record: Any, exc: Exception) -> str:
    """Why `record` does not fit `schema` (parsed), given the error encoding raised."""
    top = str(schema.get("name", "")) if isinstance(schema, Mapping) else ""
    try:
        validate(record, schema, raise_errors=True)
    except ValidationError as found:
        errors = list(found.errors)
        first = errors[0].field
        same = [e for e in errors if e.field == first]
        where = _where(first, top)
        for error in same:
            if isinstance(error.schema, Mapping) and error.schema.get("type") == "record":
                return _record_problem(error.datum, error.schema, where)
        wanted = " or ".join(dict.fromkeys(expected(e.schema) for e in same))
        datum = same[0].datum
        shown = "missing or null" if datum is None else _shown(datum)
        return f"{where} is {shown} but must be {wanted}"
    except Exception:
        pass  # the validator is a second opinion: when it fails too, the words below stand
    text = str(exc)
    if isinstance(exc, ValueError) and any(p in text for p in _PLAIN):
        return text
    return "a value does not have the type its field needs"
