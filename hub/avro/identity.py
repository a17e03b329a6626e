"""What makes two schemas the same version, and what their fingerprint cannot tell apart.

The fingerprint (CRC-64-AVRO of the Parsing Canonical Form) is what a body carries, and it keeps
only what the writer's bytes depend on: defaults, aliases, enum defaults, docs and every logical
type attribute are stripped. A registry that identifies versions by it folds a schema that adds
a default, or changes a decimal's scale, into the earlier one and answers "already registered".

So a version is identified by its **normalized form**: the whole schema with every attribute
kept, names fully qualified, namespaces dropped, `{"type": "int"}` written `"int"`, aliases
qualified and sorted, object keys sorted, no whitespace. Two schemas with the same normalized
form are the same schema for every reader, writer and person; its SHA-256 is the version's
`digest`. (Confluent's registry likewise compares the schema text, not a fingerprint.)

What may differ between schemas that share a fingerprint is reader-side only (defaults,
aliases, enum defaults, docs), except logical types: a body written with `decimal(12,3)` and one
written with `decimal(12,2)` carry the same fingerprint, so a receiver, which finds the writer
schema by fingerprint, reads one of them with the wrong scale. `wire_differences` finds those.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.avro.graph import NAMED, Node, SchemaJSON, parse

__all__ = [
    "Indistinguishable",
    "WireDifference",
    "digest",
    "indistinguishable",
    "next_major",
    "normalized_form",
    "wire_differences",
]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


def normalized_form(schema: Any) -> str:
    """The schema with every attribute kept, in one canonical JSON spelling (see the module)."""
    return json.dumps(
        _normal(schema, ""), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def digest(schema: Any) -> str:
    """SHA-256 (64 hex digits) of the normalized form: the identity of a registered version."""
    return hashlib.sha256(normalized_form(schema).encode()).hexdigest()


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _normal(js: Any, ns: str) -> Any:
    if isinstance(js, str):
        return js if js in _PRIMITIVES else _qualify(js, ns)
    if isinstance(js, list):
        return [_normal(branch, ns) for branch in js]
    if not isinstance(js, Mapping):
        return js
    # fastavro's parse_schema output carries bookkeeping keys (`__fastavro_parsed`, ...)
    out = {k: v for k, v in js.items() if not str(k).startswith("__") and k != "namespace"}
    kind = js.get("type")
    name = js.get("name")
    if kind in _NAMED_KINDS and isinstance(name, str):
        namespace = js.get("namespace")
        full = _qualify(name, namespace if isinstance(namespace, str) else ns)
        own_ns = full.rpartition(".")[0]
        out["name"] = full
        if isinstance(js.get("aliases"), list):
            out["aliases"] = sorted({_qualify(str(a), own_ns) for a in js["aliases"]})
        if isinstance(js.get("fields"), list):
            out["fields"] = [_field(f, own_ns) for f in js["fields"]]
        return out
    if kind == "array" and "items" in js:
        out["items"] = _normal(js["items"], ns)
    elif kind == "map" and "values" in js:
        out["values"] = _normal(js["values"], ns)
    elif kind is not None:
        out["type"] = _normal(kind, ns)
    if set(out) == {"type"}:
        return out["type"]  # {"type": "int"} is "int", {"type": {...}} is {...}
    return out


def _field(js: Any, ns: str) -> Any:
    if not isinstance(js, Mapping):
        return js
    out = dict(js)
    if "type" in js:
        out["type"] = _normal(js["type"], ns)
    if isinstance(js.get("aliases"), list):
        out["aliases"] = sorted({str(a) for a in js["aliases"]})
    return out


@dataclass(frozen=True)
class WireDifference:
    """A logical-type attribute two schemas with one fingerprint disagree on, at one place."""

    path: str
    field: str
    attribute: str  # "precision", "scale" or "logicalType"
    sent: str
    registered: str

    def __str__(self) -> str:
        where = (self.path or "(root)") + (f" (field {self.field})" if self.field else "")
        if self.attribute == "logicalType":
            return (
                f"{where}: logicalType {self.sent} in the new schema, "
                f"{self.registered} in the registered one"
            )
        return (
            f"{where}: decimal {self.attribute} {self.sent} in the new schema, "
            f"{self.attribute} {self.registered} in the registered one"
        )


def wire_differences(sent: SchemaJSON, registered: SchemaJSON) -> list[WireDifference]:
    """Where two schemas of one Parsing Canonical Form disagree on logical types ([] if nowhere).

    Both must have the same canonical form (hence fingerprint), so their type graphs have the
    same shape; the walk compares them node by node. Logical types the specification says to
    ignore (unknown or invalid ones) count as absent, as a reader treats them.
    """
    found: list[WireDifference] = []
    _walk(parse(sent), parse(registered), "", "", found, set())
    return found


def _walk(
    a: Node, b: Node, path: str, names: str, found: list[WireDifference], seen: set[int]
) -> None:
    if a.kind in NAMED:
        if id(a) in seen:
            return
        seen.add(id(a))
    if a.logical != b.logical:
        found.append(_difference(a.logical, b.logical, path, names))
    if a.kind == "record":
        for i, (fa, fb) in enumerate(zip(a.fields, b.fields, strict=False)):
            where = f"{path}.fields[{i}].type" if path else f"fields[{i}].type"
            dotted = f"{names}.{fa.name}" if names else fa.name
            _walk(fa.type, fb.type, where, dotted, found, seen)
    elif a.kind == "union":
        for i, (ba, bb) in enumerate(zip(a.branches, b.branches, strict=False)):
            _walk(ba, bb, f"{path}[{i}]", names, found, seen)
    elif a.child is not None and b.child is not None:
        key = "items" if a.kind == "array" else "values"
        _walk(a.child, b.child, f"{path}.{key}" if path else key, names, found, seen)


def _difference(
    sent: tuple[str | int, ...] | None,
    registered: tuple[str | int, ...] | None,
    path: str,
    names: str,
) -> WireDifference:
    if sent and registered and sent[0] == registered[0] == "decimal":
        attribute = "precision" if sent[1] != registered[1] else "scale"
        index = 1 if attribute == "precision" else 2
        return WireDifference(path, names, attribute, str(sent[index]), str(registered[index]))
    return WireDifference(
        path, names, "logicalType", _logical_text(sent), _logical_text(registered)
    )


def _logical_text(logical: tuple[str | int, ...] | None) -> str:
    if logical is None:
        return "absent"
    if logical[0] == "decimal":
        return f"decimal({logical[1]},{logical[2]})"
    return str(logical[0])


_MAJOR = re.compile(r"^(.*\.v)([0-9]+)(\.[^.]+)$")


def next_major(name: str) -> str:
    """The same type in the next namespace version: `a.b.v1.X` → `a.b.v2.X`."""
    match = _MAJOR.match(name)
    if match is None:
        return "the next namespace version"
    return f"{match[1]}{int(match[2]) + 1}{match[3]}"


class Indistinguishable(NamedTuple):
    """Why a schema is refused because its fingerprint already stands for other logical types."""

    message: str  # one sentence: what, where, the attribute, the fix
    reasons: list[str]  # one per attribute that differs
    advice: str  # the fix alone
    hint: str  # what happened, for diagnostics()


def indistinguishable(
    name: str, fingerprint: str, sent: SchemaJSON, registered: SchemaJSON, where: str | None
) -> Indistinguishable | None:
    """The refusal of `sent`, whose fingerprint `registered` already has, or None when their
    logical types agree. `where` names the registered one (`version 1 of akto.civil.v1.X`)."""
    differences = wire_differences(sent, registered)
    if not differences:
        return None
    first = differences[0]
    more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
    what = "decimal" if first.attribute != "logicalType" else "logical type"
    advice = (
        f"add a new field with the new {what} instead, or publish the type as "
        f"{next_major(name)}, a new subject"
    )
    message = (
        f"{name} cannot be told apart from {where or 'a registered schema'}: both have "
        f"fingerprint {fingerprint}, which leaves logical types out, but {first}{more}; {advice}"
    )
    hint = (
        "Nothing was registered: a receiver finds the writer of a body by its fingerprint, "
        "so one fingerprint may stand for one set of logical types only."
    )
    return Indistinguishable(message, [str(d) for d in differences], advice, hint)
