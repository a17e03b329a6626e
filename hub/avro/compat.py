"""Decide whether a new Avro schema may replace its previous versions, in Schema Registry modes.

Modes mean what they mean in Confluent Schema Registry. ``BACKWARD``: the new schema, as reader,
reads data written with the latest previous version; ``FORWARD``: the latest previous version,
as reader, reads data written with the new one; ``FULL``: both. The ``_TRANSITIVE`` variants check
every previous version instead of the latest; ``NONE`` checks nothing. Each check is Avro schema
resolution (specification 1.12, "Schema Resolution") between one reader and one writer.

Rules decided
-------------
* Specification rules as written: promotions int→long/float/double, long→float/double,
  float→double, string↔bytes; named types match on unqualified name or on a reader alias; a reader
  field the writer lacks needs a default, valid for its type (for a union, per 1.12, any branch
  may match it); writer-only fields are ignored; a writer enum symbol missing from the reader is
  an error unless the reader enum has a ``default``; fixed needs equal size and name; a writer
  union needs every branch readable; a reader union resolves its *first* matching branch, as
  fastavro does (Java's resolver tries an exact full-name match first; the verdicts differ only
  when two reader branches share a short name).
* Aliases are reader-side only and compared as full names (a relative alias takes the namespace
  of its type): Java's rule. fastavro also accepts a bare alias from any namespace; we do not.
  A writer field that one reader field reads by name cannot be read again through another's alias.
* Logical types are part of the contract. A ``decimal`` precision or scale change is
  incompatible (the specification's match rule). A reader may *drop* the writer's logical type (it
  then sees the underlying value, as any reader may) but may not *add* or *change* one, e.g.
  ``timestamp-millis`` to ``timestamp-micros``, ``long`` to ``timestamp-millis``, ``string`` to
  ``uuid``, ``date`` to ``timestamp-millis``: the bytes still decode, so nothing fails loudly, but
  a reader converting with its own logical type (Java does) gets times off by 1000 or rejects
  non-UUID strings. A union branch skipped only for its logical type is reported as that logical
  type change. Unknown or invalid logical types are ignored, as the specification requires.
* Each named (reader, writer) pair is resolved once per check: recursion ends, and a problem in a
  named type used in several places is reported once, at its first path.

Apache ``avro.compatibility`` 1.12.2 (a test-only cross-check, not a runtime dependency) disagrees
on the table in ``tests/test_schema_compat.py`` where it: ignores logical types (decimal precision
and scale, timestamp units, added ``uuid``/``timestamp``/``decimal`` annotations all pass);
compares reader aliases to the writer's full name without qualifying them, so the relative alias
``"Person"`` in namespace ``gov`` fails to match ``gov.Person``; accepts *any* compatible reader
union branch instead of the first match; lets a field alias read a writer field that another
reader field already reads by name; and never checks that a default it relies on is valid.

Errors: ``hub.avro.graph.SchemaParseError`` when an input is not a resolvable Avro schema.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hub.avro.graph import NAMED, Node, SchemaJSON, SchemaParseError, parse

__all__ = [
    "Incompatibility",
    "Mode",
    "Rule",
    "SchemaJSON",
    "SchemaParseError",
    "can_read",
    "check",
]

# writer type -> reader types it promotes to
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_INT_RANGE = {"int": 2**31, "long": 2**63}


class Mode(enum.Enum):
    """A compatibility mode, with Confluent Schema Registry's names and meanings."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """Whether every previous version is checked rather than only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with previous versions."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether previous versions must read data written with the new schema."""
        return self.value.startswith(("FORWARD", "FULL"))


class Rule(enum.Enum):
    """The resolution rule an incompatibility breaks; the value completes "<MODE> requires …"."""

    TYPE_MISMATCH = "the writer's type to be the reader's type or promotable to it"
    NAME_MISMATCH = "a named type to keep its name or list the writer's full name in its aliases"
    FIXED_SIZE = "a fixed type to keep its size"
    ENUM_SYMBOL = "every writer enum symbol to be in the reader's enum unless that has a default"
    MISSING_DEFAULT = "a default for every reader field the writer lacks"
    INVALID_DEFAULT = "a reader field's default to be a valid value of the field's type"
    UNION_BRANCH = "every branch of a writer union to be readable by the reader"
    UNION_NO_MATCH = "the reader union to have a branch matching the writer's type"
    LOGICAL_TYPE = "the reader's logical type to be the writer's (a reader may only drop one)"
    DECIMAL = "decimal precision and scale to stay the same"


@dataclass(frozen=True, kw_only=True, slots=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data, located in the schema JSON.

    ``path`` locates the element in the new schema when it exists there (in the previous one
    otherwise, e.g. a field the new schema removed), like ``fields[2].type.items.symbols``;
    ``field`` is the same place as the reader's dotted field names. ``reader`` and ``writer`` are
    each side's view of the element; ``version`` is the index into ``previous`` checked against.
    """

    rule: Rule
    path: str
    reader: str
    writer: str
    field: str = ""
    mode: Mode | None = None
    version: int | None = None
    reader_role: str = "reader"
    writer_role: str = "writer"

    def __str__(self) -> str:
        where = (self.path or "(root)") + (f" (field {self.field})" if self.field else "")
        who = f"{self.mode.value} requires" if self.mode else "Avro schema resolution requires"
        return (
            f"{where}: {self.reader_role} expects {self.reader}, "
            f"{self.writer_role} has {self.writer}; {who} {self.rule.value}"
        )


def check(
    new: SchemaJSON,
    previous: Sequence[SchemaJSON],
    mode: Mode = Mode.BACKWARD,
    *,
    named_types: Mapping[str, SchemaJSON] | None = None,
    labels: Sequence[str] | None = None,
) -> list[Incompatibility]:
    """Return why ``new`` may not follow ``previous`` (oldest first) under ``mode``; [] if it may.

    Findings against the latest version come first. ``named_types`` maps full names to
    definitions that any of the schemas may reference. Each finding names the version that
    breaks: "version 2, the latest", "version 1 of 3", or ``labels[i]`` when given.
    """
    if mode is Mode.NONE or not previous:
        return []
    new_node = parse(new, named_types)
    count = len(previous)
    found: list[Incompatibility] = []
    for index in range(count - 1, -1 if mode.transitive else count - 2, -1):
        old_node = parse(previous[index], named_types)
        if labels is not None:
            old_role = labels[index]
        elif index == count - 1:
            old_role = f"version {count}, the latest"
        else:
            old_role = f"version {index + 1} of {count}"
        if mode.backward:
            roles = ("reader (new schema)", f"writer ({old_role})")
            found += [_public(f, mode, index, roles, False) for f in _resolve(new_node, old_node)]
        if mode.forward:
            roles = (f"reader ({old_role})", "writer (new schema)")
            found += [_public(f, mode, index, roles, True) for f in _resolve(old_node, new_node)]
    return found


def can_read(
    reader: SchemaJSON, writer: SchemaJSON, *, named_types: Mapping[str, SchemaJSON] | None = None
) -> list[Incompatibility]:
    """Return why data written with ``writer`` cannot be read with ``reader``; [] if it can."""
    found = _resolve(parse(reader, named_types), parse(writer, named_types))
    return [_public(f, None, None, ("reader", "writer"), False) for f in found]


class _Found(NamedTuple):
    rule: Rule
    reader_path: str
    writer_path: str
    reader: str
    writer: str
    field: str


def _public(
    f: _Found, mode: Mode | None, version: int | None, roles: tuple[str, str], new_is_writer: bool
) -> Incompatibility:
    # a field only the reader has can only be located in the reader
    reader_only = f.rule in (Rule.MISSING_DEFAULT, Rule.INVALID_DEFAULT)
    path = f.writer_path if new_is_writer and not reader_only else f.reader_path
    return Incompatibility(
        rule=f.rule,
        path=path,
        reader=f.reader,
        writer=f.writer,
        field=f.field,
        mode=mode,
        version=version,
        reader_role=roles[0],
        writer_role=roles[1],
    )


def _resolve(reader: Node, writer: Node) -> list[_Found]:
    resolver = _Resolver()
    resolver.resolve(reader, writer, "", "", "")
    return resolver.found


def _join(path: str, segment: str) -> str:
    return f"{path}.{segment}" if path else segment


class _Resolver:
    """Walks a reader and a writer graph together, collecting every rule broken."""

    def __init__(self) -> None:
        self.found: list[_Found] = []
        self.seen: set[tuple[int, int]] = set()

    def add(self, rule: Rule, rp: str, wp: str, reader: str, writer: str, names: str) -> None:
        self.found.append(_Found(rule, rp, wp, reader, writer, names))

    def resolve(self, r: Node, w: Node, rp: str, wp: str, names: str) -> None:
        if w.kind == "union":
            for k, wb in enumerate(w.branches):
                self._writer_branch(r, wb, rp, f"{wp}[{k}]", names)
            return
        if r.kind == "union":
            i = _branch_for(r, w)
            if i is None:
                self.add(Rule.UNION_NO_MATCH, rp, wp, _describe(r), _describe(w), names)
            else:
                self.resolve(r.branches[i], w, f"{rp}[{i}]", wp, names)
            return
        if not _kind_ok(r, w):
            self.add(Rule.TYPE_MISMATCH, rp, wp, _describe(r), _describe(w), names)
            return
        if r.kind in NAMED:
            if (id(r), id(w)) in self.seen:
                return
            self.seen.add((id(r), id(w)))
        if r.logical is not None and r.logical != w.logical:
            w_logical = w.logical[0] if w.logical else None
            both_decimal = r.logical[0] == "decimal" and w_logical == "decimal"
            rule = Rule.DECIMAL if both_decimal else Rule.LOGICAL_TYPE
            self.add(rule, rp, wp, _describe(r), _describe(w), names)
        if r.kind in NAMED and not _names_match(r, w):
            rpn, wpn = _join(rp, "name"), _join(wp, "name")
            self.add(Rule.NAME_MISMATCH, rpn, wpn, _describe(r), _describe(w), names)
            return
        if r.kind == "record":
            self._fields(r, w, rp, wp, names)
        elif r.kind == "enum":
            missing = [s for s in w.symbol_list if s not in r.symbols]
            if missing and r.enum_default is None:
                rps, wps = _join(rp, "symbols"), _join(wp, "symbols")
                expects = f"enum {r.name} with symbols [{', '.join(r.symbol_list)}] and no default"
                has = ("symbols " if len(missing) > 1 else "symbol ") + ", ".join(missing)
                self.add(Rule.ENUM_SYMBOL, rps, wps, expects, has, names)
        elif r.kind == "fixed" and r.size != w.size:
            rps, wps = _join(rp, "size"), _join(wp, "size")
            self.add(Rule.FIXED_SIZE, rps, wps, _describe(r), _describe(w), names)
        elif r.kind in ("array", "map") and r.child is not None and w.child is not None:
            key = "items" if r.kind == "array" else "values"
            self.resolve(r.child, w.child, _join(rp, key), _join(wp, key), names)

    def _writer_branch(self, r: Node, wb: Node, rp: str, wp: str, names: str) -> None:
        if r.kind == "union":
            i = _branch_for(r, wb)
            if i is not None:
                self.resolve(r.branches[i], wb, f"{rp}[{i}]", wp, names)
                return
        elif _kind_ok(r, wb):
            self.resolve(r, wb, rp, wp, names)
            return
        self.add(Rule.UNION_BRANCH, rp, wp, _describe(r), _describe(wb), names)

    def _fields(self, r: Node, w: Node, rp: str, wp: str, names: str) -> None:
        for i, rf in enumerate(r.fields):
            j = w.field_index.get(rf.name)
            if j is None:
                # an alias cannot take a writer field that another reader field claims by name
                j = next(
                    (
                        w.field_index[a]
                        for a in rf.aliases
                        if a in w.field_index and a not in r.field_index
                    ),
                    None,
                )
            rpf, fname = _join(rp, f"fields[{i}]"), _join(names, rf.name)
            if j is not None:
                wpf = _join(wp, f"fields[{j}].type")
                self.resolve(rf.type, w.fields[j].type, f"{rpf}.type", wpf, fname)
                continue
            expects = f"field {rf.name} ({_describe(rf.type)})"
            lacks = f"no field {rf.name}" + "".join(f" or {a}" for a in rf.aliases)
            if not rf.has_default:
                self.add(Rule.MISSING_DEFAULT, rpf, wp, expects + " with no default", lacks, fname)
            elif not _valid_default(rf.type, rf.default):
                expects += f" with default {rf.default!r}"
                self.add(Rule.INVALID_DEFAULT, f"{rpf}.default", wp, expects, lacks, fname)


def _kind_ok(r: Node, w: Node) -> bool:
    return r.kind == w.kind or r.kind in _PROMOTIONS.get(w.kind, ())


def _names_match(r: Node, w: Node) -> bool:
    return r.short == w.short or w.name in r.aliases


def _matches(r: Node, w: Node, logical: bool = True) -> bool:
    """The specification's shallow "match", used to pick a reader union branch."""
    if r.kind == "union" or w.kind == "union":
        return True
    if not _kind_ok(r, w) or (logical and r.logical is not None and r.logical != w.logical):
        return False
    if r.kind in NAMED:
        return _names_match(r, w) and r.size == w.size
    if r.child is not None and w.child is not None:
        return _matches(r.child, w.child, logical)
    return True


def _branch_for(r: Node, w: Node) -> int | None:
    """Index of the reader union branch that resolves ``w``, None if there is none.

    When no branch matches only because of logical types, that branch is returned so the
    finding names the logical-type change rather than a missing branch.
    """
    for logical in (True, False):
        for i, b in enumerate(r.branches):
            if _matches(b, w, logical):
                return i
    return None


def _describe(n: Node) -> str:
    if n.kind in NAMED:
        text = f"{n.kind} {n.name}" + (f" (size {n.size})" if n.kind == "fixed" else "")
    elif n.kind == "union":
        text = "union [" + ", ".join(_describe(b) for b in n.branches) + "]"
    elif n.child is not None:
        text = f"{n.kind}<{_describe(n.child)}>"
    else:
        text = n.kind
    if n.logical is None:
        return text
    if n.logical[0] == "decimal":
        return f"{text} (decimal({n.logical[1]},{n.logical[2]}))"
    return f"{text} ({n.logical[0]})"


def _valid_default(n: Node, value: object) -> bool:
    """Whether ``value`` is a valid JSON default for type ``n`` (the specification's table)."""
    kind = n.kind
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT_RANGE:
        limit = _INT_RANGE[kind]
        return type(value) is int and -limit <= value < limit
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind in ("bytes", "fixed"):
        size_ok = kind == "bytes" or (isinstance(value, str) and len(value) == n.size)
        return isinstance(value, str) and size_ok and all(ord(c) < 256 for c in value)
    if kind == "enum":
        return isinstance(value, str) and value in n.symbols
    if kind == "union":
        return any(_valid_default(b, value) for b in n.branches)
    if n.child is not None:
        if kind == "array" and isinstance(value, list):
            return all(_valid_default(n.child, v) for v in value)
        return isinstance(value, dict) and all(_valid_default(n.child, v) for v in value.values())
    if not isinstance(value, dict):
        return False
    return all(
        _valid_default(f.type, value[f.name]) if f.name in value else f.has_default
        for f in n.fields
    )
