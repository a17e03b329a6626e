"""Search in Chinese and English without extensions, with facets, online and from the KV copy."""

from __future__ import annotations

from typing import Any

import pytest

from hub.directory.mirror import kv_documents
from hub.directory.ngrams import grams, query_grams
from hub.directory.store import SearchFilters, search, search_documents
from hub.directory.workflow import Directory
from hub.runtime import Hub
from tests.directory_support import entry_file, register_population_schema, sharing

ENTRIES: list[dict[str, Any]] = [
    dict(
        code="101001-000017",
        title="阿克陶县常住人口统计",
        title_en="Akto county resident population statistics",
        keywords=["人口", "population"],
    ),
    dict(
        code="101001-000018",
        provider="artux.stats",
        title="阿图什市户籍人口年报",
        title_en="Artux registered population yearbook",
        abstract="阿图什市户籍人口按年龄与性别统计。",
        keywords=["户籍"],
        sharing=sharing("unconditional"),
        open={"public": True},
    ),
    dict(
        code="202003-000001",
        provider="pref.hrss",
        title="社会保险参保登记",
        title_en="Social insurance enrolment",
        abstract="全州企业职工养老保险参保登记信息。",
        classification={"category": "theme", "code": "202003", "name": "社会保障/参保"},
        keywords=["社保", "pension"],
        schema="gov.common.v1.Notice",
    ),
    dict(
        code="302001-000009",
        provider="pref.tax",
        title="纳税信用等级",
        title_en="Taxpayer credit rating",
        abstract="企业纳税信用等级评价结果。",
        classification={"category": "department", "code": "302001", "name": "税务/纳税信用"},
        keywords=["税", "credit"],
        schema="gov.common.v1.Notice",
    ),
]


@pytest.fixture
async def directory(hub: Hub) -> Directory:
    await register_population_schema(hub)
    d = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    for spec in ENTRIES:
        data = entry_file(**spec)
        await d.publish(data["provider"], data, settle=False)
    await d.catch_up()
    return d


def test_chinese_text_becomes_bigrams_and_latin_words_trigrams() -> None:
    assert grams("常住人口") == ["常住", "住人", "人口"]
    assert grams("Population 2026") == [
        "pop",
        "opu",
        "pul",
        "ula",
        "lat",
        "ati",
        "tio",
        "ion",
        "202",
        "026",
    ]
    assert grams("ＡＢ税") == ["ab", "税"]  # full-width folded, a lone character kept
    assert query_grams("—") == []


async def test_a_two_character_chinese_query_finds_a_longer_title_that_contains_it(
    directory: Directory,
    hub: Hub,
) -> None:
    result = await search(hub.pool, "人口")
    assert result.mode == "grams"
    assert {r["code"] for r in result.results} == {"101001-000017", "101001-000018"}
    assert result.results[0]["title"].endswith("人口统计") or "人口" in result.results[0]["title"]
    assert result.facets["provider"] == {"akto.stats": 1, "artux.stats": 1}
    assert result.facets["sharing_type"] == {"conditional": 1, "unconditional": 1}


async def test_english_words_and_a_misspelling_find_the_same_resource(
    directory: Directory,
    hub: Hub,
) -> None:
    exact = await search(hub.pool, "pension")
    assert [r["code"] for r in exact.results] == ["202003-000001"]
    typo = await search(hub.pool, "insurnce")
    assert typo.mode == "fuzzy"
    assert [r["code"] for r in typo.results] == ["202003-000001"]


async def test_a_one_character_query_scans_for_the_substring(
    directory: Directory, hub: Hub
) -> None:
    result = await search(hub.pool, "税")
    assert result.mode == "substring"
    assert [r["code"] for r in result.results] == ["302001-000009"]


async def test_facet_filters_narrow_the_results_and_the_counts(
    directory: Directory, hub: Hub
) -> None:
    pool = hub.pool
    by_unit = await search(pool, "人口", SearchFilters(unit="artux"))
    assert [r["code"] for r in by_unit.results] == ["101001-000018"]
    assert by_unit.facets["unit"] == {"artux": 1}
    opened = await search(pool, "人口", SearchFilters(open_only=True))
    assert [r["code"] for r in opened.results] == ["101001-000018"]
    themed = await search(pool, "登记", SearchFilters(category="theme"))
    assert [r["code"] for r in themed.results] == ["202003-000001"]


async def test_withdrawn_entries_are_not_found(directory: Directory, hub: Hub) -> None:
    await directory.withdraw("artux.stats", "101001-000018", "合并入全州人口库")
    result = await search(hub.pool, "人口")
    assert [r["code"] for r in result.results] == ["101001-000017"]


async def test_search_needs_no_postgresql_extension(directory: Directory, hub: Hub) -> None:
    installed = await hub.pool.fetch("SELECT extname FROM pg_extension")
    assert {r["extname"] for r in installed} <= {"plpgsql"}
    assert (await search(hub.pool, "常住人口统计")).total == 1


async def test_the_kv_copy_answers_the_same_search_offline(directory: Directory, hub: Hub) -> None:
    docs = await kv_documents(hub.nc)
    assert len(docs) == len(ENTRIES)
    for query in ("人口", "pension", "税", "insurnce"):
        online = await search(hub.pool, query)
        offline = search_documents(docs, query)
        assert offline.source == "kv" and offline.mode == online.mode
        assert [r["code"] for r in offline.results] == [r["code"] for r in online.results]
        assert offline.facets == online.facets
