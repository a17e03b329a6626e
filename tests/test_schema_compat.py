"""Verdict table for hub.avro.compat, tied to real Avro resolution by fastavro.

Each table case is one schema evolution with the findings expected as (rule, path) pairs; an
empty list means compatible. The runtime tests write events with one schema and read them with
the other through fastavro for every direction the checker calls compatible, and show that
resolution fails, or yields values a reader converting with its own logical types (as Java does)
gets wrong, for every direction it calls incompatible.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from hub import errors
from hub.avro.compat import Incompatibility, Mode, Rule, SchemaParseError, can_read, check
from hub.bench.compat import bench_compat, build_history

B, BT = Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE
F, FT = Mode.FORWARD, Mode.FORWARD_TRANSITIVE
FULL, FULLT = Mode.FULL, Mode.FULL_TRANSITIVE
TYPE, NAME, SIZE = Rule.TYPE_MISMATCH, Rule.NAME_MISMATCH, Rule.FIXED_SIZE
SYMBOL, NO_DEFAULT, BAD_DEFAULT = Rule.ENUM_SYMBOL, Rule.MISSING_DEFAULT, Rule.INVALID_DEFAULT
BRANCH, NO_MATCH = Rule.UNION_BRANCH, Rule.UNION_NO_MATCH
LOGICAL, DECIMAL = Rule.LOGICAL_TYPE, Rule.DECIMAL


def rec(*fields: dict[str, Any], name: str = "Person", ns: str = "gov", **extra: Any) -> Any:
    return {"type": "record", "name": name, "namespace": ns, "fields": list(fields), **extra}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, name: str = "Status", **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **extra}


def fixed(size: int, name: str = "Digest", **extra: Any) -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size, **extra}


def dec(precision: int, scale: int, base: str = "bytes") -> dict[str, Any]:
    return {"type": base, "logicalType": "decimal", "precision": precision, "scale": scale}


def lt(base: str, logical: str) -> dict[str, Any]:
    return {"type": base, "logicalType": logical}


def one(type_: Any, **extra: Any) -> Any:
    """A Person record with an id and one field ``x`` of ``type_``."""
    return rec(fld("id", "long"), fld("x", type_, **extra))


ID = fld("id", "long")
X = "fields[1].type"
ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [fld("street", "string"), fld("zip", "int")],
}
ADDRESS_ZIP_STRING = {**ADDRESS, "fields": [fld("street", "string"), fld("zip", "string")]}
LONG_LIST = {
    "type": "record",
    "name": "LongList",
    "aliases": ["LinkedLongs"],
    "fields": [fld("value", "long"), fld("next", ["null", "LongList"])],
}


@dataclass(frozen=True)
class Case:
    id: str
    new: Any
    previous: list[Any]
    mode: Mode
    expect: list[tuple[Rule, str]] = field(default_factory=list)
    fastavro_accepts: dict[str, str] = field(default_factory=dict)
    """Directions fastavro reads although the checker refuses them (stricter on purpose): why."""


CASES = [
    # --- modes ------------------------------------------------------------------------------------
    Case("identical_schema_is_full_transitive", one("string"), [one("string")] * 2, FULLT),
    Case("no_previous_version_is_compatible", one("string"), [], FULLT),
    Case("none_mode_accepts_a_type_change", one("string"), [one("boolean")], Mode.NONE),
    Case(
        "backward_new_field_with_default", rec(ID, fld("zip", "string", default="")), [rec(ID)], B
    ),
    Case(
        "backward_new_field_without_default",
        rec(ID, fld("zip", "string")),
        [rec(ID)],
        B,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case("forward_new_field_without_default", rec(ID, fld("zip", "string")), [rec(ID)], F),
    Case("backward_removed_field", rec(ID), [rec(ID, fld("zip", "string"))], B),
    Case(
        "forward_removed_field_without_default",
        rec(ID),
        [rec(ID, fld("zip", "string"))],
        F,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "forward_removed_field_that_had_default",
        rec(ID),
        [rec(ID, fld("zip", "string", default=""))],
        F,
    ),
    Case("full_new_field_with_default", rec(ID, fld("zip", "string", default="")), [rec(ID)], FULL),
    Case(
        "full_new_field_without_default_fails_backward",
        rec(ID, fld("zip", "string")),
        [rec(ID)],
        FULL,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "full_removed_field_without_default_fails_forward",
        rec(ID),
        [rec(ID, fld("zip", "string"))],
        FULL,
        [(NO_DEFAULT, "fields[1]")],
    ),
    # --- transitive modes: the latest version passes, an older one does not -----------------------
    Case(
        "backward_checks_only_the_latest_version",
        rec(ID, fld("zip", "string", default="")),
        [rec(ID, fld("zip", "int")), rec(ID)],
        B,
    ),
    Case(
        "backward_transitive_catches_an_older_version",
        rec(ID, fld("zip", "string", default="")),
        [rec(ID, fld("zip", "int")), rec(ID)],
        BT,
        [(TYPE, "fields[1].type")],
    ),
    Case(
        "forward_checks_only_the_latest_version",
        rec(ID),
        [rec(ID, fld("zip", "string")), rec(ID, fld("zip", "string", default=""))],
        F,
    ),
    Case(
        "forward_transitive_catches_an_older_reader",
        rec(ID),
        [rec(ID, fld("zip", "string")), rec(ID, fld("zip", "string", default=""))],
        FT,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "full_checks_only_the_latest_version",
        rec(ID, fld("zip", "string", default="")),
        [rec(ID, fld("zip", "int")), rec(ID)],
        FULL,
    ),
    Case(
        "full_transitive_catches_an_older_version_both_ways",
        rec(ID, fld("zip", "string", default="")),
        [rec(ID, fld("zip", "int")), rec(ID)],
        FULLT,
        [(TYPE, "fields[1].type"), (TYPE, "fields[1].type")],
    ),
    Case(
        "full_transitive_optional_fields_added_over_versions",
        rec(ID, fld("a", "int", default=0), fld("b", ["null", "string"], default=None)),
        [rec(ID), rec(ID, fld("a", "int", default=0))],
        FULLT,
    ),
    # --- promotions -------------------------------------------------------------------------------
    *[
        Case(f"backward_promotes_{w}_to_{r}", one(r), [one(w)], B)
        for w, r in [
            ("int", "long"),
            ("int", "float"),
            ("int", "double"),
            ("long", "float"),
            ("long", "double"),
            ("float", "double"),
            ("string", "bytes"),
            ("bytes", "string"),
        ]
    ],
    Case("backward_long_does_not_narrow_to_int", one("int"), [one("long")], B, [(TYPE, X)]),
    Case("backward_double_does_not_narrow_to_float", one("float"), [one("double")], B, [(TYPE, X)]),
    Case("backward_int_is_not_a_string", one("string"), [one("int")], B, [(TYPE, X)]),
    Case("backward_boolean_is_not_an_int", one("int"), [one("boolean")], B, [(TYPE, X)]),
    Case(
        "forward_widening_int_to_long_breaks_old_readers", one("long"), [one("int")], F, [(TYPE, X)]
    ),
    Case(
        "backward_promotes_array_items",
        one({"type": "array", "items": "long"}),
        [one({"type": "array", "items": "int"})],
        B,
    ),
    Case(
        "forward_array_items_widened_break_old_readers",
        one({"type": "array", "items": "long"}),
        [one({"type": "array", "items": "int"})],
        F,
        [(TYPE, f"{X}.items")],
    ),
    Case(
        "backward_promotes_map_values",
        one({"type": "map", "values": "double"}),
        [one({"type": "map", "values": "float"})],
        B,
    ),
    Case(
        "backward_map_values_do_not_narrow",
        one({"type": "map", "values": "int"}),
        [one({"type": "map", "values": "long"})],
        B,
        [(TYPE, f"{X}.values")],
    ),
    Case("backward_promotes_inside_unions", one(["null", "long"]), [one(["null", "int"])], B),
    Case(
        "backward_union_branch_narrowed_is_unreadable",
        one(["null", "int"]),
        [one(["null", "long"])],
        B,
        [(BRANCH, X)],
    ),
    Case("backward_plain_int_promotes_into_reader_union", one(["null", "long"]), [one("int")], B),
    # --- records, names and aliases ---------------------------------------------------------------
    Case(
        "full_field_order_does_not_matter",
        rec(fld("zip", "string"), ID),
        [rec(ID, fld("zip", "string"))],
        FULL,
    ),
    Case(
        "backward_record_renamed_without_alias",
        rec(ID, name="Citizen"),
        [rec(ID)],
        B,
        [(NAME, "name")],
    ),
    Case(
        "backward_record_renamed_with_alias",
        rec(ID, name="Citizen", aliases=["Person"]),
        [rec(ID)],
        B,
    ),
    Case(
        "forward_record_renamed_with_alias_breaks_old_readers",
        rec(ID, name="Citizen", aliases=["Person"]),
        [rec(ID)],
        F,
        [(NAME, "name")],
    ),
    Case(
        "backward_record_alias_from_another_namespace",
        rec(ID, name="Citizen", ns="county", aliases=["gov.Person"]),
        [rec(ID)],
        B,
    ),
    Case(
        "backward_relative_alias_takes_the_readers_namespace",
        rec(ID, name="Citizen", ns="county", aliases=["Person"]),
        [rec(ID)],
        B,
        [(NAME, "name")],
        fastavro_accepts={"new-reads-v0": "fastavro matches a bare alias in any namespace"},
    ),
    Case("full_namespace_change_matches_unqualified_name", rec(ID, ns="county"), [rec(ID)], FULL),
    Case(
        "backward_field_renamed_with_alias",
        rec(ID, fld("postcode", "string", aliases=["zip"])),
        [rec(ID, fld("zip", "string"))],
        B,
    ),
    Case(
        "backward_field_renamed_without_alias",
        rec(ID, fld("postcode", "string")),
        [rec(ID, fld("zip", "string"))],
        B,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "forward_field_renamed_with_alias_breaks_old_readers",
        rec(ID, fld("postcode", "string", aliases=["zip"])),
        [rec(ID, fld("zip", "string"))],
        F,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "backward_field_alias_cannot_take_a_field_claimed_by_name",
        rec(fld("id", "long"), fld("key", "long", aliases=["id"])),
        [rec(ID)],
        B,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "backward_nested_record_field_type_change",
        one(ADDRESS_ZIP_STRING),
        [one(ADDRESS)],
        B,
        [(TYPE, f"{X}.fields[1].type")],
    ),
    Case(
        "backward_nested_named_type_change_is_reported_once",
        rec(ID, fld("home", ADDRESS_ZIP_STRING), fld("work", "Address")),
        [rec(ID, fld("home", ADDRESS), fld("work", "Address"))],
        B,
        [(TYPE, "fields[1].type.fields[1].type")],
    ),
    Case(
        "full_nested_record_new_field_with_default",
        one({**ADDRESS, "fields": [*ADDRESS["fields"], fld("city", "string", default="")]}),
        [one(ADDRESS)],
        FULL,
    ),
    Case("full_recursive_record_unchanged", LONG_LIST, [LONG_LIST], FULL),
    Case(
        "backward_recursive_record_new_field_with_default",
        {**LONG_LIST, "fields": [*LONG_LIST["fields"], fld("tag", "string", default="")]},
        [LONG_LIST],
        B,
    ),
    Case(
        "backward_recursive_record_narrowed_field",
        {**LONG_LIST, "fields": [fld("value", "int"), fld("next", ["null", "LongList"])]},
        [LONG_LIST],
        B,
        [(TYPE, "fields[0].type")],
    ),
    Case(
        "backward_recursive_record_renamed_with_alias",
        {
            **LONG_LIST,
            "name": "Chain",
            "aliases": ["LongList"],
            "fields": [fld("value", "long"), fld("next", ["null", "Chain"])],
        },
        [LONG_LIST],
        B,
    ),
    # --- enums ------------------------------------------------------------------------------------
    Case("backward_enum_symbol_added", one(enum("A", "B", "C")), [one(enum("A", "B"))], B),
    Case(
        "forward_enum_symbol_added_breaks_old_readers",
        one(enum("A", "B", "C")),
        [one(enum("A", "B"))],
        F,
        [(SYMBOL, f"{X}.symbols")],
    ),
    Case(
        "forward_enum_symbol_added_when_old_reader_has_enum_default",
        one(enum("A", "B", "C", default="A")),
        [one(enum("A", "B", default="A"))],
        F,
    ),
    Case(
        "backward_enum_symbol_removed",
        one(enum("A", "B")),
        [one(enum("A", "B", "C"))],
        B,
        [(SYMBOL, f"{X}.symbols")],
    ),
    Case(
        "backward_enum_symbol_removed_with_reader_enum_default",
        one(enum("UNKNOWN", "A", "B", default="UNKNOWN")),
        [one(enum("UNKNOWN", "A", "B", "C", default="UNKNOWN"))],
        B,
    ),
    Case(
        "backward_enum_renamed",
        one(enum("A", "B", name="State")),
        [one(enum("A", "B"))],
        B,
        [(NAME, f"{X}.name")],
    ),
    Case(
        "forward_enum_symbol_added_in_array_items",
        rec(
            ID, fld("note", "string"), fld("tags", {"type": "array", "items": enum("A", "B", "C")})
        ),
        [rec(ID, fld("note", "string"), fld("tags", {"type": "array", "items": enum("A", "B")}))],
        F,
        [(SYMBOL, "fields[2].type.items.symbols")],
    ),
    Case("full_enum_symbols_reordered", one(enum("B", "A")), [one(enum("A", "B"))], FULL),
    # --- fixed ------------------------------------------------------------------------------------
    Case("full_fixed_unchanged", one(fixed(16)), [one(fixed(16))], FULL),
    Case("backward_fixed_size_changed", one(fixed(32)), [one(fixed(16))], B, [(SIZE, f"{X}.size")]),
    Case(
        "backward_fixed_renamed",
        one(fixed(16, name="Hash")),
        [one(fixed(16))],
        B,
        [(NAME, f"{X}.name")],
    ),
    Case("backward_fixed_is_not_bytes", one("bytes"), [one(fixed(16))], B, [(TYPE, X)]),
    # --- unions -----------------------------------------------------------------------------------
    Case("full_union_reordered", one(["string", "null"]), [one(["null", "string"])], FULL),
    Case("backward_null_added_to_union", one(["null", "string"]), [one("string")], B),
    Case(
        "forward_null_added_to_union_breaks_old_readers",
        one(["null", "string"]),
        [one("string")],
        F,
        [(BRANCH, f"{X}[0]")],
    ),
    Case(
        "full_null_added_to_union_without_default",
        one(["null", "string"]),
        [one("string")],
        FULL,
        [(BRANCH, f"{X}[0]")],
    ),
    Case(
        "backward_new_optional_field_without_default",
        rec(ID, fld("zip", ["null", "string"])),
        [rec(ID)],
        B,
        [(NO_DEFAULT, "fields[1]")],
    ),
    Case(
        "full_new_optional_field_with_null_default",
        rec(ID, fld("zip", ["null", "string"], default=None)),
        [rec(ID)],
        FULL,
    ),
    Case(
        "full_new_optional_field_default_matches_a_later_branch",
        rec(ID, fld("zip", ["null", "string"], default="n/a")),
        [rec(ID)],
        FULL,
    ),
    Case(
        "backward_new_field_default_matches_no_union_branch",
        rec(ID, fld("zip", ["null", "string"], default=5)),
        [rec(ID)],
        B,
        [(BAD_DEFAULT, "fields[1].default")],
    ),
    Case(
        "backward_union_branch_removed",
        one(["null", "string"]),
        [one(["null", "string", "int"])],
        B,
        [(BRANCH, X)],
    ),
    Case(
        "backward_union_narrowed_to_its_non_null_branch",
        one("string"),
        [one(["null", "string"])],
        B,
        [(BRANCH, X)],
    ),
    Case(
        "backward_reader_union_has_no_branch_for_writer",
        one(["null", "string"]),
        [one("boolean")],
        B,
        [(NO_MATCH, X)],
    ),
    Case(
        "backward_record_added_to_union",
        one(["null", ADDRESS, enum("A", "B")]),
        [one(["null", ADDRESS])],
        B,
    ),
    Case(
        "backward_reader_union_resolves_first_matching_branch_only",
        one(
            [
                rec(fld("a", "int"), fld("b", "int"), name="Rec", ns="x"),
                rec(fld("a", "int"), name="Rec", ns="y"),
            ]
        ),
        [one(rec(fld("a", "int"), name="Rec", ns="z"))],
        B,
        [(NO_DEFAULT, f"{X}[0].fields[1]")],
    ),
    # --- logical types ----------------------------------------------------------------------------
    Case("full_decimal_unchanged", one(dec(10, 2)), [one(dec(10, 2))], FULL),
    Case(
        "backward_decimal_precision_changed",
        one(dec(12, 2)),
        [one(dec(10, 2))],
        B,
        [(DECIMAL, X)],
        fastavro_accepts={
            "new-reads-v0": "the scale is unchanged, so only the specification's match rule fails",
            "v0-reads-new": "the scale is unchanged, so only the specification's match rule fails",
        },
    ),
    Case("backward_decimal_scale_changed", one(dec(10, 3)), [one(dec(10, 2))], B, [(DECIMAL, X)]),
    Case(
        "backward_decimal_fixed_size_changed",
        one(dec(10, 2, "fixed") | {"name": "Money", "size": 8}),
        [one(dec(10, 2, "fixed") | {"name": "Money", "size": 6})],
        B,
        [(SIZE, f"{X}.size")],
    ),
    Case("backward_decimal_dropped_to_bytes", one("bytes"), [one(dec(10, 2))], B),
    Case("backward_decimal_added_to_bytes", one(dec(10, 2)), [one("bytes")], B, [(LOGICAL, X)]),
    Case(
        "backward_timestamp_millis_to_micros",
        one(lt("long", "timestamp-micros")),
        [one(lt("long", "timestamp-millis"))],
        B,
        [(LOGICAL, X)],
    ),
    Case(
        "backward_timestamp_added_to_plain_long",
        one(lt("long", "timestamp-millis")),
        [one("long")],
        B,
        [(LOGICAL, X)],
    ),
    Case(
        "backward_timestamp_dropped_to_long", one("long"), [one(lt("long", "timestamp-millis"))], B
    ),
    Case(
        "backward_uuid_added_to_string",
        one(lt("string", "uuid")),
        [one("string")],
        B,
        [(LOGICAL, X)],
    ),
    Case("backward_uuid_dropped_to_string", one("string"), [one(lt("string", "uuid"))], B),
    Case("backward_date_dropped_and_promoted_to_long", one("long"), [one(lt("int", "date"))], B),
    Case(
        "backward_date_to_timestamp_millis",
        one(lt("long", "timestamp-millis")),
        [one(lt("int", "date"))],
        B,
        [(LOGICAL, X)],
    ),
    Case(
        "full_unknown_logical_type_is_ignored",
        one(lt("string", "x-country-code")),
        [one("string")],
        FULL,
    ),
    Case(
        "full_logical_type_on_wrong_base_is_ignored", one(lt("long", "date")), [one("long")], FULL
    ),
    Case(
        "backward_logical_type_change_inside_union",
        one(["null", lt("long", "timestamp-micros")]),
        [one(["null", lt("long", "timestamp-millis")])],
        B,
        [(LOGICAL, f"{X}[1]")],
    ),
    # --- defaults and top-level types ------------------------------------------------------------
    Case(
        "full_new_record_field_with_object_default",
        rec(ID, fld("addr", ADDRESS, default={"street": "", "zip": 0})),
        [rec(ID)],
        FULL,
    ),
    Case(
        "backward_new_array_field_with_empty_default",
        rec(ID, fld("tags", {"type": "array", "items": "string"}, default=[])),
        [rec(ID)],
        B,
    ),
    Case(
        "backward_new_int_field_with_string_default",
        rec(ID, fld("n", "int", default="x")),
        [rec(ID)],
        B,
        [(BAD_DEFAULT, "fields[1].default")],
    ),
    Case("backward_top_level_int_to_long", "long", ["int"], B),
    Case("backward_top_level_int_to_string", "string", ["int"], B, [(TYPE, "")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_verdict(case: Case) -> None:
    found = check(case.new, case.previous, case.mode)
    assert [(i.rule, i.path) for i in found] == case.expect, [str(i) for i in found]


def test_table_covers_every_mode_and_rule() -> None:
    assert len(CASES) >= 60
    assert {c.mode for c in CASES} == set(Mode)
    assert {rule for c in CASES for rule, _ in c.expect} == set(Rule)
    assert len({c.id for c in CASES}) == len(CASES)


# --- ties to fastavro -----------------------------------------------------------------------------


def _parsed(schema: Any) -> Any:
    return fastavro.parse_schema(copy.deepcopy(schema))


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    return schema


_UTC = dt.UTC
_LOGICAL_SAMPLES: dict[str, Any] = {
    "int-date": lambda v: dt.date(2024, 1, 1 + v),
    "int-time-millis": lambda v: dt.time(12, 0, v, 123000),
    "long-time-micros": lambda v: dt.time(12, 0, v, 123456),
    "long-timestamp-millis": lambda v: dt.datetime(2024, 1, 1, 12, 0, v, 123000, tzinfo=_UTC),
    "long-timestamp-micros": lambda v: dt.datetime(2024, 1, 1, 12, 0, v, 123456, tzinfo=_UTC),
    "string-uuid": lambda v: uuid.UUID(int=v + 1),
}
_PRIMITIVE_SAMPLES: dict[str, Any] = {
    "null": lambda v: None,
    "boolean": lambda v: v % 2 == 1,
    "int": lambda v: v + 7,
    "long": lambda v: v + 70_000,
    "float": lambda v: v + 0.5,
    "double": lambda v: v + 0.25,
    "string": lambda v: f"s{v}",
    "bytes": lambda v: f"b{v}".encode(),
}


def _sample(schema: Any, named: dict[str, Any], v: int, depth: int = 0) -> Any:
    """A datum for a fastavro-parsed schema; variant ``v`` picks union branches and symbols."""
    if isinstance(schema, list):
        choice = schema[v % len(schema)]
        if depth > 4 and "null" in schema:
            choice = "null"  # end recursive structures
        return _sample(choice, named, v, depth + 1)
    if isinstance(schema, str):
        if schema in named:
            return _sample(named[schema], named, v, depth + 1)
        return _PRIMITIVE_SAMPLES[schema](v)
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "decimal":
        return Decimal(v + 7).scaleb(-schema.get("scale", 0))
    if f"{kind}-{logical}" in _LOGICAL_SAMPLES:
        return _LOGICAL_SAMPLES[f"{kind}-{logical}"](v)
    if kind == "record":
        return {f["name"]: _sample(f["type"], named, v, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][v % len(schema["symbols"])]
    if kind == "fixed":
        return bytes([v % 256]) * schema["size"]
    if kind == "array":
        return [_sample(schema["items"], named, v + i, depth + 1) for i in range(2)]
    if kind == "map":
        return {f"k{i}": _sample(schema["values"], named, v + i, depth + 1) for i in range(2)}
    return _sample(kind, named, v, depth + 1)


def _widest_choice(schema: Any) -> int:
    """The most branches or symbols any union or enum in ``schema`` offers."""
    if isinstance(schema, list):
        return max([len(schema), *map(_widest_choice, schema)])
    if not isinstance(schema, dict):
        return 1
    if schema["type"] == "enum":
        return len(schema["symbols"])
    inner = [f["type"] for f in schema.get("fields", [])]
    inner += [schema[k] for k in ("type", "items", "values") if k in schema]
    return max([1, *map(_widest_choice, inner)])


def _events(writer: Any) -> Iterator[bytes]:
    """Encoded events covering every union branch and enum symbol of ``writer``."""
    parsed = _parsed(writer)
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    for v in range(_widest_choice(writer)):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, _sample(parsed, named, v))
        yield buf.getvalue()


def _read(payload: bytes, writer: Any, reader: Any) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(payload), _parsed(writer), _parsed(reader))


def _read_converting_with_reader_types(payload: bytes, writer: Any, reader: Any) -> Any:
    """Resolve the raw values, then convert them with the *reader's* logical types, as Java does.

    fastavro converts with the writer's logical types, which hides a logical-type change.
    """
    raw = _read(payload, _strip_logical(writer), _strip_logical(reader))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _parsed(_strip_logical(reader)), raw)
    return _read(buf.getvalue(), reader, reader)


def _runtime_outcome(reader: Any, writer: Any) -> str:
    """'accepts', 'raises' (fastavro resolution fails) or 'wrong' (a converting reader errs)."""
    try:
        for payload in _events(writer):
            _read(payload, writer, reader)
    except Exception:
        return "raises"
    for payload in _events(writer):
        try:
            if _read_converting_with_reader_types(payload, writer, reader) != _read(
                payload, writer, reader
            ):
                return "wrong"
        except Exception:
            return "wrong"
    return "accepts"


def _directions(case: Case) -> Iterator[tuple[str, Any, Any]]:
    for i, old in enumerate(case.previous):
        yield f"new-reads-v{i}", case.new, old
        yield f"v{i}-reads-new", old, case.new


def _fastavro_parses(schema: Any) -> bool:
    try:
        _parsed(schema)
    except fastavro.schema.SchemaParseException:
        return False
    return True


def test_fastavro_refuses_only_the_schemas_with_invalid_defaults() -> None:
    refused = {c.id for c in CASES if not all(map(_fastavro_parses, [c.new, *c.previous]))}
    assert refused == {c.id for c in CASES if any(r is BAD_DEFAULT for r, _ in c.expect)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fastavro_reads_whenever_the_checker_says_compatible(case: Case) -> None:
    for _, reader, writer in _directions(case):
        if can_read(reader, writer) or not (_fastavro_parses(reader) and _fastavro_parses(writer)):
            continue  # a schema fastavro refuses is invalid on its own, whatever it is paired with
        for payload in _events(writer):
            _read(payload, writer, reader)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fastavro_or_a_converting_reader_fails_whenever_the_checker_refuses(case: Case) -> None:
    for direction, reader, writer in _directions(case):
        found = can_read(reader, writer)
        if not found:
            continue
        outcome = _runtime_outcome(reader, writer)
        if direction in case.fastavro_accepts:
            assert outcome == "accepts", direction
            continue
        logical_only = all(i.rule in (Rule.LOGICAL_TYPE, Rule.DECIMAL) for i in found)
        assert outcome in (("raises", "wrong") if logical_only else ("raises",)), direction


def test_fastavro_reads_promoted_aliased_and_defaulted_values() -> None:
    old = rec(fld("id", "int"), fld("zip", "string"), fld("state", enum("A", "B", "C")))
    new = rec(
        fld("id", "long"),
        fld("postcode", "bytes", aliases=["zip"]),
        fld("state", enum("UNKNOWN", "A", "B", default="UNKNOWN")),
        fld("note", ["null", "string"], default=None),
        name="Citizen",
        aliases=["Person"],
    )
    assert can_read(new, old) == []
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _parsed(old), {"id": 5, "zip": "100-0001", "state": "C"})
    read = _read(buf.getvalue(), old, new)
    assert read == {"id": 5, "postcode": b"100-0001", "state": "UNKNOWN", "note": None}


def test_converting_reader_gets_timestamps_off_by_a_thousand() -> None:
    old, new = one(lt("long", "timestamp-millis")), one(lt("long", "timestamp-micros"))
    buf = io.BytesIO()
    when = dt.datetime(2024, 4, 1, 9, 30, tzinfo=_UTC)
    fastavro.schemaless_writer(buf, _parsed(old), {"id": 1, "x": when})
    misread = _read_converting_with_reader_types(buf.getvalue(), old, new)["x"]
    assert misread != when
    assert misread.year == 1970


def test_converting_reader_gets_decimal_scale_change_wrong() -> None:
    old, new = one(dec(10, 2)), one(dec(10, 3))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _parsed(old), {"id": 1, "x": Decimal("12.34")})
    assert _read_converting_with_reader_types(buf.getvalue(), old, new)["x"] == Decimal("1.234")


# --- error text -----------------------------------------------------------------------------------


def test_error_names_path_field_both_views_and_rule() -> None:
    [found] = check(one("long"), [one("string")], Mode.BACKWARD)
    assert str(found) == (
        "fields[1].type (field x): reader (new schema) expects long, writer (version 1, the "
        "latest) has string; BACKWARD requires the writer's type to be the reader's type or "
        "promotable to it"
    )
    assert (found.reader, found.writer, found.version) == ("long", "string", 0)


def test_error_for_enum_symbol_added_in_array_items() -> None:
    tags = {"type": "array", "items": enum("OPEN", "CLOSED", "ARCHIVED")}
    old = rec(
        ID, fld("name", "string"), fld("tags", {"type": "array", "items": enum("OPEN", "CLOSED")})
    )
    [found] = check(rec(ID, fld("name", "string"), fld("tags", tags)), [old], Mode.FORWARD)
    assert str(found) == (
        "fields[2].type.items.symbols (field tags): reader (version 1, the latest) expects enum"
        " gov.Status with symbols [OPEN, CLOSED] and no default, writer (new schema) has symbol"
        " ARCHIVED; FORWARD requires every writer enum symbol to be in the reader's enum unless"
        " that has a default"
    )


def test_error_for_missing_default_names_the_field_and_its_aliases() -> None:
    new = rec(ID, fld("postcode", "string", aliases=["zip_code"]))
    [found] = check(new, [rec(ID)], Mode.BACKWARD)
    assert str(found) == (
        "fields[1] (field postcode): reader (new schema) expects field postcode (string) with no"
        " default, writer (version 1, the latest) has no field postcode or zip_code; BACKWARD"
        " requires a default for every reader field the writer lacks"
    )


def test_error_for_null_added_to_union_points_at_the_new_branch() -> None:
    [found] = check(one(["null", "string"]), [one("string")], Mode.FORWARD)
    assert str(found).startswith(
        "fields[1].type[0] (field x): reader (version 1, the latest) expects string, writer (new"
        " schema) has null; FORWARD requires every branch of a writer union to be readable by the"
        " reader"
    )


def test_error_for_decimal_shows_precision_and_scale() -> None:
    [found] = can_read(one(dec(10, 3)), one(dec(10, 2)))
    assert str(found) == (
        "fields[1].type (field x): reader expects bytes (decimal(10,3)), writer has bytes"
        " (decimal(10,2)); Avro schema resolution requires decimal precision and scale to stay"
        " the same"
    )


def test_transitive_error_names_the_older_version() -> None:
    new = rec(ID, fld("zip", "string", default=""))
    [found] = check(new, [rec(ID, fld("zip", "int")), rec(ID), rec(ID)], Mode.BACKWARD_TRANSITIVE)
    assert found.version == 0
    assert "writer (version 1 of 3) has int" in str(found)


def test_transitive_findings_list_the_latest_version_first() -> None:
    found = check(one("string"), [one("int"), one("boolean")], Mode.BACKWARD_TRANSITIVE)
    assert [i.version for i in found] == [1, 0]


def test_forward_path_locates_the_field_in_the_new_schema() -> None:
    old = rec(ID, fld("a", "int"), fld("b", "int"))
    new = rec(fld("b", "long"), ID, fld("a", "int"))
    [found] = check(new, [old], Mode.FORWARD)
    assert (found.path, found.field) == ("fields[0].type", "b")


def test_incompatibility_is_a_frozen_typed_value() -> None:
    [found] = can_read("int", "string")
    assert isinstance(found, Incompatibility)
    assert found.rule is Rule.TYPE_MISMATCH
    with pytest.raises(AttributeError):
        found.path = "elsewhere"  # type: ignore[misc]


# --- inputs ---------------------------------------------------------------------------------------


def test_accepts_json_text_and_fastavro_parsed_schemas() -> None:
    new = rec(ID, fld("home", ADDRESS), fld("work", "Address"))
    assert check(json.dumps(new), [_parsed(new)], Mode.FULL) == []
    assert [i.rule for i in check(json.dumps(one("int")), [_parsed(one("string"))])] == [TYPE]


def test_named_types_resolve_references_defined_elsewhere() -> None:
    new = rec(ID, fld("home", "gov.Address"))
    old = rec(ID, fld("home", "gov.Address"))
    named = {"gov.Address": {**ADDRESS, "namespace": "gov"}}
    assert check(new, [old], Mode.FULL, named_types=named) == []
    with pytest.raises(SchemaParseError, match=r"fields\[1\]\.type: unknown type 'gov.Address'"):
        check(new, [old])


def test_rejects_what_is_not_a_schema() -> None:
    with pytest.raises(SchemaParseError, match="a union may not directly contain a union"):
        can_read(["null", ["int"]], "int")
    with pytest.raises(SchemaParseError, match=r"\[2\]: a union may not hold two long branches"):
        can_read(["null", "long", lt("long", "timestamp-millis")], "long")
    with pytest.raises(SchemaParseError, match="defined twice"):
        can_read(rec(fld("a", ADDRESS), fld("b", ADDRESS)), "int")


def test_a_schema_that_does_not_parse_is_a_govhub_schema_error_naming_its_json_path() -> None:
    with pytest.raises(errors.SchemaError) as caught:
        can_read(["null", ["int"]], "int")
    assert isinstance(caught.value, SchemaParseError)
    assert (caught.value.path, caught.value.problem) == (
        "[1]",
        "a union may not directly contain a union",
    )


def test_mode_parses_registry_names() -> None:
    assert Mode("FULL_TRANSITIVE") is Mode.FULL_TRANSITIVE
    assert (Mode.FULL.backward, Mode.FULL.forward, Mode.FULL.transitive) == (True, True, False)


# --- cross-check against Apache avro (test-only; skipped where avro is not installed) ------------

AVRO_DISAGREES = {
    "backward_record_renamed_with_alias": "avro compares a relative alias to the full name",
    "forward_record_renamed_with_alias_breaks_old_readers": "avro: relative alias vs full name",
    "backward_field_alias_cannot_take_a_field_claimed_by_name": "avro reads one field twice",
    "backward_decimal_dropped_to_bytes": "avro ignores logical types (reverse direction)",
    "backward_timestamp_dropped_to_long": "avro ignores logical types (reverse direction)",
    "backward_uuid_dropped_to_string": "avro ignores logical types (reverse direction)",
    "backward_reader_union_resolves_first_matching_branch_only": "avro takes any branch",
    "backward_decimal_precision_changed": "avro ignores logical types",
    "backward_decimal_scale_changed": "avro ignores logical types",
    "backward_decimal_added_to_bytes": "avro ignores logical types",
    "backward_timestamp_millis_to_micros": "avro ignores logical types",
    "backward_timestamp_added_to_plain_long": "avro ignores logical types",
    "backward_uuid_added_to_string": "avro ignores logical types",
    "backward_date_to_timestamp_millis": "avro ignores logical types",
    "backward_logical_type_change_inside_union": "avro ignores logical types",
    "backward_new_field_default_matches_no_union_branch": "avro does not check defaults",
    "backward_new_int_field_with_string_default": "avro does not check defaults",
}


def _avro_says_compatible(reader: Any, writer: Any) -> bool | None:
    avro_schema = pytest.importorskip("avro.schema")
    avro_compat = pytest.importorskip("avro.compatibility")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # avro warns about the logical types it ignores
        try:
            r = avro_schema.parse(json.dumps(reader))
            w = avro_schema.parse(json.dumps(writer))
        except Exception:
            return None  # avro refuses the schema itself (e.g. an invalid default)
    result = avro_compat.ReaderWriterCompatibilityChecker().get_compatibility(r, w)
    return bool(result.compatibility is avro_compat.SchemaCompatibilityType.compatible)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_apache_avro_agrees_except_where_documented(case: Case) -> None:
    agree = []
    for _, reader, writer in _directions(case):
        theirs = _avro_says_compatible(reader, writer)
        agree.append(theirs is None or theirs == (not can_read(reader, writer)))
    assert all(agree) == (case.id not in AVRO_DISAGREES), AVRO_DISAGREES.get(case.id)


# --- benchmark ------------------------------------------------------------------------------------


def test_bench_history_is_compatible_and_fast() -> None:
    new, previous = build_history()
    assert len(previous) == 20
    assert check(new, previous, Mode.FULL_TRANSITIVE) == []
    figures = bench_compat(rounds=5)
    assert figures["median_ms"] < 200  # target is 50 ms; slack for loaded CI machines
