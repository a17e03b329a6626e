"""A directory entry (目录条目): its fields, the JSON entry file format, and the Avro record.

The fields follow the 2017 编制指南 core metadata (GB/T 21063) mapped to DCAT 3 (table in
docs/directory.md); hub/directory/validation.py holds the catalog's rules for entry files.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any


class SharingType(enum.StrEnum):
    """共享类型: who may get the resource's data."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"

    @property
    def label_zh(self) -> str:
        """The Chinese name of the type."""
        return SHARING_LABELS[self.value]


class Category(enum.StrEnum):
    """信息资源分类 by attribute; `digit` is the class (类) digit that starts its code."""

    BASE = "base"
    THEME = "theme"
    DEPARTMENT = "department"

    @property
    def digit(self) -> str:
        """The first digit of the classification code (1 基础, 2 主题, 3 部门)."""
        return {"base": "1", "theme": "2", "department": "3"}[self.value]

    @property
    def label_zh(self) -> str:
        """The Chinese name of the category."""
        return {"base": "基础信息资源", "theme": "主题信息资源", "department": "部门信息资源"}[
            self.value
        ]


SHARING_LABELS = {
    "unconditional": "无条件共享",
    "conditional": "有条件共享",
    "not_shared": "不予共享",
}
SHARING_ALIASES = {zh: en for en, zh in SHARING_LABELS.items()}
SHARING_METHODS = {"event_stream": "事件流", "file": "文件", "query_service": "查询服务"}
UPDATE_CYCLES = {
    "realtime": "实时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "semiannual": "每半年",
    "annual": "每年",
    "irregular": "不定期",
}
NON_SECRET = "non_secret"


@dataclass(frozen=True)
class DataItem:
    """信息项: one field of a resource's records."""

    name: str
    label_zh: str
    type: str
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One resource of the directory, as its provider describes it."""

    code: str
    title: str
    abstract: str
    provider: str
    category: Category
    class_code: str
    class_name: str
    keywords: tuple[str, ...]
    format: str
    schema_name: str
    data_items: tuple[DataItem, ...]
    sharing_type: SharingType
    sharing_methods: tuple[str, ...]
    update_cycle: str
    issued: date
    version: int = 1
    secrecy: str = NON_SECRET
    title_en: str | None = None
    abstract_en: str | None = None
    provider_code: str | None = None
    theme: str | None = None
    schema_fingerprint: str = ""
    sharing_conditions: str | None = None
    legal_basis: str | None = None
    open_public: bool = False
    open_conditions: str | None = None
    license: str | None = None
    related: tuple[str, ...] = ()
    contact: str | None = None
    access_url: str | None = None
    spatial: str | None = None
    temporal: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def unit(self) -> str:
        """The provider's unit (`akto` for `akto.stats`)."""
        return self.provider.split(".", 1)[0]

    @property
    def item_names(self) -> tuple[str, ...]:
        """The names of the data items, in order."""
        return tuple(item.name for item in self.data_items)

    def replace(self, **changes: Any) -> Entry:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_file(self) -> dict[str, Any]:
        """The entry in the JSON entry file format (what `dir template` prints and `show` gives)."""
        return {
            "code": self.code,
            "version": self.version,
            "title": self.title,
            "title_en": self.title_en,
            "abstract": self.abstract,
            "abstract_en": self.abstract_en,
            "provider": self.provider,
            "provider_code": self.provider_code,
            "classification": {
                "category": self.category.value,
                "code": self.class_code,
                "name": self.class_name,
                "theme": self.theme,
            },
            "keywords": list(self.keywords),
            "format": self.format,
            "schema": self.schema_name,
            "data_items": [dataclasses.asdict(item) for item in self.data_items],
            "sharing": {
                "type": self.sharing_type.value,
                "conditions": self.sharing_conditions,
                "legal_basis": self.legal_basis,
                "methods": list(self.sharing_methods),
            },
            "open": {
                "public": self.open_public,
                "conditions": self.open_conditions,
                "license": self.license,
            },
            "update_cycle": self.update_cycle,
            "issued": self.issued.isoformat(),
            "secrecy": self.secrecy,
            "related": list(self.related),
            "contact": self.contact,
            "access_url": self.access_url,
            "spatial": self.spatial,
            "temporal": self.temporal,
        }

    def to_record(self) -> dict[str, Any]:
        """The Avro record of gov.directory.v1.EntryPublished."""
        return {
            "code": self.code,
            "version": self.version,
            "title": self.title,
            "title_en": self.title_en,
            "abstract": self.abstract,
            "abstract_en": self.abstract_en,
            "provider": self.provider,
            "provider_code": self.provider_code,
            "category": self.category.name,
            "class_code": self.class_code,
            "class_name": self.class_name,
            "theme": self.theme,
            "keywords": list(self.keywords),
            "format": self.format,
            "schema_name": self.schema_name,
            "schema_fingerprint": self.schema_fingerprint,
            "data_items": [dataclasses.asdict(item) for item in self.data_items],
            "sharing_type": self.sharing_type.name,
            "sharing_conditions": self.sharing_conditions,
            "legal_basis": self.legal_basis,
            "sharing_methods": list(self.sharing_methods),
            "open_public": self.open_public,
            "open_conditions": self.open_conditions,
            "license": self.license,
            "update_cycle": self.update_cycle,
            "issued": self.issued,
            "secrecy": self.secrecy,
            "related": list(self.related),
            "contact": self.contact,
            "access_url": self.access_url,
            "spatial": self.spatial,
            "temporal": self.temporal,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Entry:
        """Build from a decoded EntryPublished record (or the JSON the store keeps of one)."""
        issued = record["issued"]
        return cls(
            code=record["code"],
            version=int(record["version"]),
            title=record["title"],
            title_en=record.get("title_en"),
            abstract=record["abstract"],
            abstract_en=record.get("abstract_en"),
            provider=record["provider"],
            provider_code=record.get("provider_code"),
            category=Category[record["category"]],
            class_code=record["class_code"],
            class_name=record["class_name"],
            theme=record.get("theme"),
            keywords=tuple(record["keywords"]),
            format=record["format"],
            schema_name=record["schema_name"],
            schema_fingerprint=record.get("schema_fingerprint", ""),
            data_items=tuple(DataItem(**item) for item in record["data_items"]),
            sharing_type=SharingType[record["sharing_type"]],
            sharing_conditions=record.get("sharing_conditions"),
            legal_basis=record.get("legal_basis"),
            sharing_methods=tuple(record["sharing_methods"]),
            open_public=bool(record["open_public"]),
            open_conditions=record.get("open_conditions"),
            license=record.get("license"),
            update_cycle=record["update_cycle"],
            issued=issued if isinstance(issued, date) else date.fromisoformat(issued),
            secrecy=record["secrecy"],
            related=tuple(record.get("related", ())),
            contact=record.get("contact"),
            access_url=record.get("access_url"),
            spatial=record.get("spatial"),
            temporal=record.get("temporal"),
        )

    def to_json_record(self) -> dict[str, Any]:
        """`to_record` with JSON-safe values, as the store and the KV copy keep it."""
        record = self.to_record()
        record["issued"] = self.issued.isoformat()
        return record


def template() -> dict[str, Any]:
    """A complete example entry file: every key, with the values a county bureau would use."""
    return {
        "code": "101001-000017",
        "version": 1,
        "title": "阿克陶县常住人口统计",
        "title_en": "Akto county resident population statistics",
        "abstract": "按乡镇统计的阿克陶县常住人口、户数及性别构成，每月更新。",
        "abstract_en": "Resident population, households and sex ratio of Akto county by township.",
        "provider": "akto.stats",
        "provider_code": "11653022MB0000000X",
        "classification": {
            "category": "base",
            "code": "101001",
            "name": "人口/常住人口",
            "theme": "人口",
        },
        "keywords": ["人口", "常住人口", "乡镇", "population"],
        "format": "application/avro",
        "schema": "akto.stats.v1.ResidentPopulation",
        "data_items": [
            {"name": "township", "label_zh": "乡镇", "type": "string", "description": ""},
            {"name": "residents", "label_zh": "常住人口", "type": "long", "description": ""},
        ],
        "sharing": {
            "type": "conditional",
            "conditions": "仅限用于社会救助对象核查，不得向第三方提供",
            "legal_basis": "《中华人民共和国统计法》第二十五条",
            "methods": ["event_stream"],
        },
        "open": {"public": False, "conditions": None, "license": None},
        "update_cycle": "monthly",
        "issued": "2026-01-05",
        "secrecy": "non_secret",
        "related": [],
        "contact": "阿克陶县统计局综合股 0908-5721000",
        "access_url": None,
        "spatial": "阿克陶县",
        "temporal": "2020/2026",
    }
