"""The Avro Parsing Canonical Form and CRC-64-AVRO, written from the Avro specification.

Independent of fastavro (which govhub uses). Apache avro's Python package keeps
`{"type":"long"}` for a primitive that carried a logical type, contrary to the [STRIP] and
[PRIMITIVES] rules (Java, fastavro and this module give `"long"`), so its fingerprints differ
for such schemas; docs/protocol.md says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
KEEP_ORDER = ["name", "type", "fields", "symbols", "items", "values", "size"]


def canonical_form(schema: Any, resolve: Callable[[str], Any] | None = None) -> str:
    """[FULLNAMES] [STRIP] [ORDER] [PRIMITIVES] [STRINGS] [WHITESPACE] of the spec.

    `resolve(full_name)` returns the schema JSON of a named type defined in another file, which
    is expanded inline at its first use, as the writer schema contains it.
    """
    canon = _canon(schema, None, set(), resolve)
    return json.dumps(canon, separators=(",", ":"), ensure_ascii=False)


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _canon(
    schema: Any, namespace: str | None, seen: set[str], resolve: Callable[[str], Any] | None
) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = _full(schema, namespace)
        if name not in seen and resolve is not None:
            return _canon(resolve(name), None, seen, resolve)
        return name
    if isinstance(schema, list):
        return [_canon(branch, namespace, seen, resolve) for branch in schema]
    kind = schema["type"]
    if kind in PRIMITIVES:
        return kind
    if kind in ("record", "error", "enum", "fixed"):
        name = _full(schema["name"], schema.get("namespace", namespace))
        if name in seen:
            return name
        seen.add(name)
        inner = name.rsplit(".", 1)[0] if "." in name else None
        out: dict[str, Any] = {"name": name, "type": "record" if kind == "error" else kind}
        if kind in ("record", "error"):
            out["fields"] = [
                {"name": f["name"], "type": _canon(f["type"], inner, seen, resolve)}
                for f in schema["fields"]
            ]
        elif kind == "enum":
            out["symbols"] = schema["symbols"]
        else:
            out["size"] = schema["size"]
        return {k: out[k] for k in KEEP_ORDER if k in out}
    if kind == "array":
        return {"type": "array", "items": _canon(schema["items"], namespace, seen, resolve)}
    if kind == "map":
        return {"type": "map", "values": _canon(schema["values"], namespace, seen, resolve)}
    return _canon(kind, namespace, seen, resolve)


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the specification's reference code computes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp
