"""Shared pieces of the directory tests: a registered data schema and entry files."""

from __future__ import annotations

import copy
from typing import Any

from hub.codec import schema_from_json
from hub.directory.model import template
from hub.runtime import Hub

POPULATION_SCHEMA = {
    "type": "record",
    "name": "ResidentPopulation",
    "namespace": "akto.stats.v1",
    "doc": "常住人口: resident population of one township in one month.",
    "label_zh": "常住人口",
    "fields": [
        {"name": "township", "type": "string", "doc": "乡镇 name.", "label_zh": "乡镇"},
        {"name": "month", "type": "string", "doc": "统计月份 YYYY-MM.", "label_zh": "统计月份"},
        {"name": "residents", "type": "long", "doc": "常住人口 count.", "label_zh": "常住人口"},
        {"name": "households", "type": "long", "doc": "户数.", "label_zh": "户数"},
    ],
}


async def register_population_schema(hub: Hub) -> str:
    """Register akto.stats's record schema (as akto.stats); returns its full name."""
    schema = schema_from_json(copy.deepcopy(POPULATION_SCHEMA))
    await hub.registry.register(schema, as_id="akto.stats")
    return schema.name


def entry_file(**changes: Any) -> dict[str, Any]:
    """The template entry with the population schema's items, and any top-level changes."""
    data = template()
    data["data_items"] = None
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None or k in changes}


def sharing(kind: str, **extra: Any) -> dict[str, Any]:
    """A valid `sharing` object of a type."""
    base: dict[str, Any] = {"type": kind, "methods": ["event_stream"]}
    if kind != "unconditional":
        base["legal_basis"] = "《中华人民共和国统计法》第二十五条"
    if kind == "conditional":
        base["conditions"] = "仅限用于社会救助对象核查"
    base.update(extra)
    return base


RECORDS = [
    {"township": "木吉乡", "month": "2026-10", "residents": 12034, "households": 3011},
    {"township": "奥依塔克镇", "month": "2026-10", "residents": 20417, "households": 5120},
]
