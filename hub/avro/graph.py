"""Turn Avro schema JSON into a resolved type graph: named references bound, logical types read.

The graph is what schema resolution walks (see ``hub.avro.compat``): every named type is one
node, so recursive schemas become cycles and references across a schema compare by identity.
Parsing follows the Avro 1.12 specification's name rules (fullnames, enclosing namespaces,
aliases qualified relative to the name they alias) and logical-type rules: an unknown logical
type, or one on the wrong underlying type, or an invalid ``decimal`` (scale above precision,
precision beyond what a ``fixed`` can hold) is ignored and the underlying type used, as the
specification requires.

Accepted inputs: schema JSON as parsed by ``json`` (dict, list or str), JSON text (a str starting
with ``{``, ``[`` or ``"``), and fastavro's ``parse_schema`` output (fullnames and
``__named_schemas``).

Errors: ``SchemaParseError`` (a ``hub.errors.SchemaError``, and a ``ValueError`` for callers
that treat it as bad input) when the JSON is not an Avro schema this module can resolve, with
the JSON path of the offending element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from hub.errors import SchemaError

SchemaJSON: TypeAlias = str | Mapping[str, object] | Sequence[object]
"""Avro schema JSON: a type name, an object, a union list, or JSON text of one of those."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed"})

# Logical types of the 1.12 specification and the underlying types they may annotate.
_LOGICAL_BASES: dict[str, frozenset[str]] = {
    "decimal": frozenset({"bytes", "fixed"}),
    "big-decimal": frozenset({"bytes"}),
    "uuid": frozenset({"string", "fixed"}),
    "date": frozenset({"int"}),
    "time-millis": frozenset({"int"}),
    "time-micros": frozenset({"long"}),
    "timestamp-millis": frozenset({"long"}),
    "timestamp-micros": frozenset({"long"}),
    "timestamp-nanos": frozenset({"long"}),
    "local-timestamp-millis": frozenset({"long"}),
    "local-timestamp-micros": frozenset({"long"}),
    "local-timestamp-nanos": frozenset({"long"}),
    "duration": frozenset({"fixed"}),
}


class SchemaParseError(SchemaError, ValueError):
    """The schema JSON is not a valid Avro schema (unknown type or name, missing attribute);
    `path` is the JSON path of the offending element and `problem` what is wrong there."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(root)'}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(eq=False, slots=True)
class Field:
    """A record field: its name, reader-side aliases, type, and default if it has one."""

    name: str
    aliases: tuple[str, ...]
    type: Node
    has_default: bool
    default: object


@dataclass(eq=False, slots=True)
class Node:
    """One Avro type. Named types are shared nodes; ``kind`` is a primitive name or complex kind."""

    kind: str
    logical: tuple[str | int, ...] | None = None
    name: str = ""
    short: str = ""
    aliases: frozenset[str] = frozenset()
    fields: list[Field] = field(default_factory=list)
    field_index: dict[str, int] = field(default_factory=dict)
    symbols: frozenset[str] = frozenset()
    symbol_list: tuple[str, ...] = ()
    enum_default: str | None = None
    size: int = 0
    child: Node | None = None
    branches: list[Node] = field(default_factory=list)


def parse(schema: SchemaJSON, named_types: Mapping[str, SchemaJSON] | None = None) -> Node:
    """Parse one schema into its type graph; ``named_types`` resolves names it references."""
    if isinstance(schema, str) and schema.lstrip()[:1] in ("{", "[", '"'):
        schema = json.loads(schema)
    pending: dict[str, object] = dict(named_types or {})
    if isinstance(schema, Mapping):
        extra = schema.get("__named_schemas")
        if isinstance(extra, Mapping):
            pending.update({str(k): v for k, v in extra.items()})
    return _Parser(pending).parse(schema, "", "")


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _max_decimal_digits(size: int) -> int:
    # floor(log10(2**(8n-1) - 1)), computed exactly on integers.
    return len(str(2 ** (8 * size - 1) - 1)) - 1 if size > 0 else 0


def _logical(js: Mapping[str, object], kind: str, size: int) -> tuple[str | int, ...] | None:
    lt = js.get("logicalType")
    if not isinstance(lt, str) or kind not in _LOGICAL_BASES.get(lt, ()):
        return None
    if lt == "decimal":
        precision, scale = js.get("precision"), js.get("scale", 0)
        if type(precision) is not int or type(scale) is not int:
            return None
        if precision <= 0 or not 0 <= scale <= precision:
            return None
        if kind == "fixed" and precision > _max_decimal_digits(size):
            return None
        return (lt, precision, scale)
    if (lt == "duration" and size != 12) or (lt == "uuid" and kind == "fixed" and size != 16):
        return None
    return (lt,)


class _Parser:
    def __init__(self, pending: dict[str, object]) -> None:
        self.names: dict[str, Node] = {}
        self.pending = pending
        self.primitives = {p: Node(kind=p) for p in PRIMITIVES}

    def parse(self, js: object, ns: str, path: str) -> Node:
        if isinstance(js, str):
            return self._reference(js, ns, path)
        if isinstance(js, list):
            node = Node(kind="union")
            keys: set[str] = set()
            for i, branch in enumerate(js):
                parsed = self.parse(branch, ns, f"{path}[{i}]")
                # the specification forbids these; branch selection would be ambiguous
                key = parsed.name or parsed.kind
                if parsed.kind == "union":
                    raise SchemaParseError(
                        f"{path}[{i}]", "a union may not directly contain a union"
                    )
                if key in keys:
                    raise SchemaParseError(
                        f"{path}[{i}]", f"a union may not hold two {key} branches"
                    )
                keys.add(key)
                node.branches.append(parsed)
            return node
        if not isinstance(js, Mapping):
            raise SchemaParseError(path, f"expected a type name, object or union, got {js!r}")
        kind = js.get("type")
        if isinstance(kind, (list, Mapping)):
            return self.parse(kind, ns, path)
        if not isinstance(kind, str):
            raise SchemaParseError(path, 'missing "type"')
        if kind in PRIMITIVES:
            logical = _logical(js, kind, 0)
            return self.primitives[kind] if logical is None else Node(kind=kind, logical=logical)
        if kind in ("array", "map"):
            key = "items" if kind == "array" else "values"
            if key not in js:
                raise SchemaParseError(path, f'{kind} needs "{key}"')
            return Node(kind=kind, child=self.parse(js[key], ns, f"{path}.{key}"))
        if kind in NAMED or kind == "error":
            return self._named("record" if kind == "error" else kind, js, ns, path)
        return self._reference(kind, ns, path)

    def _reference(self, name: str, ns: str, path: str) -> Node:
        if name in PRIMITIVES:
            return self.primitives[name]
        full = _qualify(name, ns)
        node = self.names.get(full)
        if node is None and full in self.pending:
            node = self.parse(self.pending.pop(full), "", f"named_types[{full}]")
            self.names.setdefault(full, node)
        if node is None:
            raise SchemaParseError(
                path, f"unknown type {full!r} (named types must be defined first)"
            )
        return node

    def _named(self, kind: str, js: Mapping[str, object], ns: str, path: str) -> Node:
        name = js.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaParseError(path, f'{kind} needs a "name"')
        namespace = js.get("namespace")
        own_ns = ns if not isinstance(namespace, str) else namespace
        full = _qualify(name, own_ns)
        own_ns = full.rpartition(".")[0]
        if full in self.names:
            raise SchemaParseError(path, f"{full!r} is defined twice")
        aliases = js.get("aliases") or []
        node = Node(
            kind=kind,
            name=full,
            short=full.rpartition(".")[2],
            aliases=frozenset(_qualify(str(a), own_ns) for a in _as_list(aliases, path)),
        )
        self.names[full] = node  # before the body, so recursive references resolve to this node
        if kind == "fixed":
            size = js.get("size")
            if type(size) is not int or size < 0:
                raise SchemaParseError(path, 'fixed needs an integer "size"')
            node.size = size
        elif kind == "enum":
            node.symbol_list = tuple(str(s) for s in _as_list(js.get("symbols"), path))
            node.symbols = frozenset(node.symbol_list)
            default = js.get("default")
            node.enum_default = (
                default if isinstance(default, str) and default in node.symbols else None
            )
        else:
            for i, fjs in enumerate(_as_list(js.get("fields"), path)):
                node.fields.append(self._field(fjs, own_ns, f"{path}.fields[{i}]"))
                node.field_index[node.fields[-1].name] = i
        node.logical = _logical(js, kind, node.size)
        return node

    def _field(self, js: object, ns: str, path: str) -> Field:
        if not isinstance(js, Mapping) or not isinstance(js.get("name"), str) or "type" not in js:
            raise SchemaParseError(path, 'a field needs a "name" and a "type"')
        aliases = tuple(str(a) for a in _as_list(js.get("aliases") or [], path))
        node = self.parse(js["type"], ns, f"{path}.type")
        return Field(str(js["name"]), aliases, node, "default" in js, js.get("default"))


def _as_list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise SchemaParseError(path, f"expected a JSON array, got {value!r}")
    return value
