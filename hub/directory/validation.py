"""The catalog's rules for entry files: every problem reported at once, each with its key path.

`parse_entry` checks an entry file completely (`sharing.legal_basis: is required for a
有条件共享 resource ...`), so a department fixes its file once instead of once per error; with
the schema cache it also checks that the entry's schema is registered and that its data items
are fields of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from hub.codec import Schema, SchemaCache
from hub.directory.model import (
    NON_SECRET,
    SHARING_ALIASES,
    SHARING_METHODS,
    UPDATE_CYCLES,
    Category,
    DataItem,
    Entry,
    SharingType,
)
from hub.errors import EntryInvalid, SchemaError
from hub.subjects import check_participant_id
from hub.tomlconfig import suggest

_SECRECY_ALIASES = {"非涉密": NON_SECRET, NON_SECRET: NON_SECRET}

# ASCII digits only (`\d` would also take "١٠١٠٠١"), matched whole (`$` takes a final "\n").
CODE_RE = re.compile(r"(?P<cls>[1-3][0-9]{5}[0-9]{0,6})-(?P<seq>[0-9]{3,12})")
CLASS_RE = re.compile(r"[1-3][0-9]{5}[0-9]{0,6}")
# Text the catalog stores (PostgreSQL text and JSON cannot hold U+0000) and people read.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TITLE = 200
MAX_TEXT = 4000
MAX_KEYWORDS = 32
MAX_ITEMS = 500

TOP_KEYS = (
    "code",
    "version",
    "title",
    "title_en",
    "abstract",
    "abstract_en",
    "provider",
    "provider_code",
    "classification",
    "keywords",
    "format",
    "schema",
    "data_items",
    "sharing",
    "open",
    "update_cycle",
    "issued",
    "secrecy",
    "related",
    "contact",
    "access_url",
    "spatial",
    "temporal",
)


class _Problems:
    """Collects (key path, message) pairs while an entry file is read."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.items.append((where, message))

    def text(
        self, data: Mapping[str, Any], key: str, where: str, *, required: bool, limit: int
    ) -> str | None:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(where, "is required")
            return None
        if not isinstance(value, str):
            self.add(where, f"must be a string, not {type(value).__name__}")
            return None
        if len(value) > limit:
            self.add(where, f"is {len(value)} characters; at most {limit}")
            return None
        if _CONTROL.search(value):
            self.add(where, "holds a control character")
            return None
        return value.strip()

    def table(self, data: Mapping[str, Any], key: str, keys: Sequence[str]) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            self.add(key, "is required")
            return {}
        if not isinstance(value, dict):
            self.add(key, "must be an object")
            return {}
        self.unknown(value, keys, f"{key}.")
        return value

    def unknown(self, data: Mapping[str, Any], keys: Sequence[str], prefix: str = "") -> None:
        for key in data:
            if key not in keys:
                self.add(f"{prefix}{key}", f"unknown key{suggest(str(key), keys)}")

    def strings(self, data: Mapping[str, Any], key: str, *, limit: int) -> tuple[str, ...]:
        value = data.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.add(key, "must be a list of non-empty strings")
            return ()
        if any(_CONTROL.search(v) for v in value):
            self.add(key, "holds a control character")
            return ()
        if len(value) > limit:
            self.add(key, f"has {len(value)} items; at most {limit}")
        return tuple(dict.fromkeys(v.strip() for v in value))


def parse_entry(data: Any, *, schemas: SchemaCache | None = None) -> Entry:
    """Check an entry file's JSON and build the Entry; EntryInvalid lists every problem.

    With `schemas`, the entry's `schema` must be a registered Avro schema and `data_items`
    must name its fields (they are filled in from the schema when omitted).
    """
    p = _Problems()
    if not isinstance(data, dict):
        raise EntryInvalid([("(entry)", "must be a JSON object")])
    p.unknown(data, TOP_KEYS)
    code = p.text(data, "code", "code", required=True, limit=32) or ""
    match = CODE_RE.fullmatch(code) if code else None
    if code and match is None:
        p.add(
            "code",
            f"{code!r} is not a resource code: classification code (类 1 digit 1-3, 项 2, 目 3, "
            "细目 0-6 digits) then '-' and a 3-12 digit sequence, e.g. 101001-000017",
        )
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        p.add("version", "must be a positive integer")
        version = 1
    title = p.text(data, "title", "title", required=True, limit=MAX_TITLE) or ""
    abstract = p.text(data, "abstract", "abstract", required=True, limit=MAX_TEXT) or ""
    provider = p.text(data, "provider", "provider", required=True, limit=66) or ""
    if provider:
        try:
            check_participant_id(provider)
        except Exception:
            p.add("provider", f"{provider!r} is not a participant id such as akto.stats")
    cls = p.table(data, "classification", ("category", "code", "name", "theme"))
    # A table that is given, even empty, is checked in full: `{}` is not "no table".
    has_cls = isinstance(data.get("classification"), dict)
    category = Category.BASE
    raw_category = cls.get("category")
    try:
        category = Category(str(raw_category))
    except ValueError:
        if has_cls:
            p.add("classification.category", "must be one of base, theme, department")
    class_code = p.text(cls, "code", "classification.code", required=has_cls, limit=12) or ""
    if class_code and not CLASS_RE.fullmatch(class_code):
        p.add("classification.code", "must be 6-12 digits: 类 (1-3), 项 (2), 目 (3), 细目")
    elif class_code:
        known = isinstance(raw_category, str) and raw_category in Category._value2member_map_
        if class_code[0] != category.digit and known:
            p.add(
                "classification.code",
                f"a {category.value} resource's code starts with {category.digit} "
                f"({category.label_zh})",
            )
        if match is not None and match.group("cls") != class_code:
            p.add("code", f"must start with the classification code {class_code}")
    class_name = p.text(cls, "name", "classification.name", required=has_cls, limit=200) or ""
    theme = p.text(cls, "theme", "classification.theme", required=False, limit=200)
    keywords = p.strings(data, "keywords", limit=MAX_KEYWORDS)
    fmt = p.text(data, "format", "format", required=True, limit=100) or ""
    schema_name = p.text(data, "schema", "schema", required=True, limit=200) or ""
    items = _data_items(p, data.get("data_items"))
    sharing = p.table(data, "sharing", ("type", "conditions", "legal_basis", "methods"))
    has_sharing = isinstance(data.get("sharing"), dict)
    sharing_type = _sharing_type(p, sharing) if has_sharing else SharingType.UNCONDITIONAL
    conditions = p.text(sharing, "conditions", "sharing.conditions", required=False, limit=MAX_TEXT)
    basis = p.text(sharing, "legal_basis", "sharing.legal_basis", required=False, limit=MAX_TEXT)
    if has_sharing and sharing_type is SharingType.CONDITIONAL and not conditions:
        p.add("sharing.conditions", "is required for a conditional (有条件共享) resource")
    if has_sharing and sharing_type is SharingType.UNCONDITIONAL and conditions:
        # 《政务数据共享条例》 bans adding conditions on one's own initiative: an unconditional
        # resource that carried conditions would be a conditional one in disguise.
        p.add("sharing.conditions", "an unconditional resource cannot carry conditions")
    if has_sharing and sharing_type is not SharingType.UNCONDITIONAL and not basis:
        p.add(
            "sharing.legal_basis",
            f"is required for a {sharing_type.label_zh} resource: restricting sharing needs a "
            "basis in law, regulation or policy",
        )
    methods = p.strings(sharing, "methods", limit=3) if has_sharing else ()
    if has_sharing and not methods and sharing_type is not SharingType.NOT_SHARED:
        p.add("sharing.methods", f"name at least one of {', '.join(SHARING_METHODS)}")
    for i, method in enumerate(methods):
        if method not in SHARING_METHODS:
            p.add(f"sharing.methods[{i}]", f"{method!r} is not one of {', '.join(SHARING_METHODS)}")
    opened = p.table(data, "open", ("public", "conditions", "license"))
    public = opened.get("public", False)
    if not isinstance(public, bool):
        p.add("open.public", "must be true or false")
        public = False
    if public and sharing_type is SharingType.NOT_SHARED:
        p.add("open.public", "a resource not shared between departments cannot be open data")
    cycle = p.text(data, "update_cycle", "update_cycle", required=True, limit=20) or "irregular"
    cycle = {zh: en for en, zh in UPDATE_CYCLES.items()}.get(cycle, cycle)
    if cycle not in UPDATE_CYCLES:
        p.add("update_cycle", f"must be one of {', '.join(UPDATE_CYCLES)}")
    issued = _issued(p, data.get("issued"))
    secrecy = _SECRECY_ALIASES.get(str(data.get("secrecy", "")), "")
    if not secrecy:
        # Classified (涉密) resources are catalogued on the classified network only; the hub is
        # a non-classified network, so such an entry must never reach it, not even its title.
        p.add("secrecy", "only non-secret (非涉密, non_secret) resources belong on the hub")
    related = p.strings(data, "related", limit=100)
    for i, other in enumerate(related):
        if not CODE_RE.fullmatch(other):
            p.add(f"related[{i}]", f"{other!r} is not a resource code")
        elif other == code:
            p.add(f"related[{i}]", "an entry cannot relate to itself")
    contact = p.text(data, "contact", "contact", required=False, limit=500)
    url = p.text(data, "access_url", "access_url", required=False, limit=2000)
    if url and not url.startswith(("http://", "https://")):
        p.add("access_url", "must be an http(s) URL")
    entry_fp = ""
    if schemas is not None and schema_name:
        schema = _resolve(p, schemas, schema_name)
        if schema is not None:
            entry_fp = schema.fingerprint_hex
            items = _check_items(p, schema, items)
    if p.items:
        raise EntryInvalid(p.items)
    return Entry(
        code=code,
        version=version,
        title=title,
        title_en=p.text(data, "title_en", "title_en", required=False, limit=MAX_TITLE),
        abstract=abstract,
        abstract_en=p.text(data, "abstract_en", "abstract_en", required=False, limit=MAX_TEXT),
        provider=provider,
        provider_code=p.text(data, "provider_code", "provider_code", required=False, limit=40),
        category=category,
        class_code=class_code,
        class_name=class_name,
        theme=theme,
        keywords=keywords,
        format=fmt,
        schema_name=schema_name,
        schema_fingerprint=entry_fp,
        data_items=items,
        sharing_type=sharing_type,
        sharing_conditions=conditions,
        legal_basis=basis,
        sharing_methods=methods,
        open_public=public,
        open_conditions=p.text(opened, "conditions", "open.conditions", required=False, limit=2000),
        license=p.text(opened, "license", "open.license", required=False, limit=200),
        update_cycle=cycle,
        issued=issued,
        secrecy=secrecy,
        related=related,
        contact=contact,
        access_url=url,
        spatial=p.text(data, "spatial", "spatial", required=False, limit=200),
        temporal=p.text(data, "temporal", "temporal", required=False, limit=200),
    )


def _sharing_type(p: _Problems, sharing: Mapping[str, Any]) -> SharingType:
    raw = sharing.get("type")
    try:
        return SharingType(SHARING_ALIASES.get(str(raw), str(raw)))
    except ValueError:
        p.add(
            "sharing.type",
            "must be unconditional (无条件共享), conditional (有条件共享) or not_shared (不予共享)",
        )
        return SharingType.NOT_SHARED


def _issued(p: _Problems, value: Any) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value) if isinstance(value, str) else date.fromisoformat("")
    except ValueError:
        shown = f"{value[:40]!r} is not" if isinstance(value, str) else "must be"
        p.add("issued", f"{shown} a date such as 2026-01-05")
        return date.today()


def _data_items(p: _Problems, value: Any) -> tuple[DataItem, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        p.add("data_items", "must be a list of objects")
        return ()
    if len(value) > MAX_ITEMS:
        p.add("data_items", f"has {len(value)} items; at most {MAX_ITEMS}")
        return ()
    items = []
    for i, raw in enumerate(value):
        where = f"data_items[{i}]"
        if not isinstance(raw, dict):
            p.add(where, "must be an object with name, label_zh, type")
            continue
        p.unknown(raw, ("name", "label_zh", "type", "description"), f"{where}.")
        name = p.text(raw, "name", f"{where}.name", required=True, limit=100)
        label = p.text(raw, "label_zh", f"{where}.label_zh", required=False, limit=100)
        kind = p.text(raw, "type", f"{where}.type", required=False, limit=100)
        desc = p.text(raw, "description", f"{where}.description", required=False, limit=500)
        if name:
            items.append(DataItem(name, label or name, kind or "", desc or ""))
    return tuple(items)


def _resolve(p: _Problems, schemas: SchemaCache, name: str) -> Schema | None:
    try:
        schema = schemas.by_name(name)
    except SchemaError:
        p.add("schema", f"{name!r} is not a registered schema (see `govhub schema register`)")
        return None
    if not isinstance(schema.parsed, dict) or schema.parsed.get("type") != "record":
        p.add("schema", f"{name} is not a record schema, so it has no data items")
        return None
    return schema


def schema_items(schema: Schema) -> tuple[DataItem, ...]:
    """The data items of a record schema: its fields with their Chinese labels and types."""
    source = schema.source if isinstance(schema.source, dict) else schema.parsed
    items = []
    for fld in source.get("fields", []):
        items.append(
            DataItem(
                name=fld["name"],
                label_zh=str(fld.get("label_zh") or fld["name"]),
                type=type_text(fld["type"]),
                description=str(fld.get("doc") or ""),
            )
        )
    return tuple(items)


def type_text(avro_type: Any) -> str:
    """A short readable form of an Avro type (`string?` for a nullable string)."""
    if isinstance(avro_type, list):
        inner = [type_text(t) for t in avro_type if t != "null"]
        text = "|".join(inner)
        return f"{text}?" if "null" in avro_type else text
    if isinstance(avro_type, dict):
        return str(avro_type.get("logicalType") or avro_type.get("name") or avro_type["type"])
    return str(avro_type)


def _check_items(p: _Problems, schema: Schema, items: tuple[DataItem, ...]) -> tuple[DataItem, ...]:
    known = {item.name: item for item in schema_items(schema)}
    if not items:
        return tuple(known.values())
    out = []
    for i, item in enumerate(items):
        found = known.get(item.name)
        if found is None:
            p.add(f"data_items[{i}].name", f"{item.name!r} is not a field of {schema.name}")
            continue
        out.append(
            DataItem(
                item.name,
                item.label_zh if item.label_zh != item.name else found.label_zh,
                item.type or found.type,
                item.description or found.description,
            )
        )
    return tuple(out)
