"""`govhub bench directory`: publish N entries, materialize them, search them, mirror them.

Figures: signed entry publishing (events/s), materializing into PostgreSQL and the KV copy
(entries/s, which is the time until the directory has converged), a mirror of the KV bucket
(a county's copy) catching up live and from cold, and search latency p50/p99 of the n-gram
index next to the raw alternative measured on the same data in the same run: a `LIKE` scan of
the same text (what a directory without its own index would do).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from nats.js.api import StreamConfig, StreamSource
from rich.console import Console

from hub.bench.measure import latency_ms, machine, peak_rss_mb, print_results
from hub.bus import jetstream
from hub.directory.events import ENTRY_SCHEMA, Kind, dir_subject
from hub.directory.materializer import Materializer
from hub.directory.mirror import DIRECTORY_STREAM, stream_last_seq
from hub.directory.model import Category, DataItem, Entry, SharingType
from hub.directory.store import SearchFilters, search
from hub.runtime import Hub
from hub.waits import poll

TOPICS = [
    ("人口", "population"),
    ("法人", "legal entities"),
    ("社会保险", "social insurance"),
    ("医疗保障", "medical insurance"),
    ("最低生活保障", "minimum living allowance"),
    ("就业登记", "employment registration"),
    ("税收", "tax revenue"),
    ("企业登记", "company registration"),
    ("不动产", "real estate"),
    ("地名地址", "place names"),
    ("学校", "schools"),
    ("卫生机构", "health facilities"),
    ("疫苗接种", "vaccination"),
    ("道路运输", "road transport"),
    ("交通事故", "traffic accidents"),
    ("农业补贴", "farm subsidies"),
    ("耕地保护", "farmland"),
    ("草原生态", "grassland ecology"),
    ("水资源", "water resources"),
    ("气象观测", "weather"),
    ("应急物资", "emergency supplies"),
    ("安全生产", "work safety"),
    ("食品抽检", "food inspection"),
    ("药品监管", "drug supervision"),
    ("市场主体", "market entities"),
    ("建筑许可", "building permits"),
    ("住房保障", "housing support"),
    ("住房公积金", "housing fund"),
    ("婚姻登记", "marriage records"),
    ("养老机构", "elderly care"),
    ("残疾人", "disability"),
    ("退役军人", "veterans"),
    ("文物保护", "cultural relics"),
    ("旅游景区", "tourist sites"),
    ("环境监测", "environmental monitoring"),
    ("排污许可", "discharge permits"),
    ("林业资源", "forestry"),
    ("统计月报", "monthly statistics"),
    ("财政预算", "budget"),
    ("政府采购", "procurement"),
    ("信用信息", "credit records"),
    ("电子证照", "e-licences"),
    ("户籍", "household registration"),
    ("出生医学证明", "birth certificates"),
]
KINDS = [
    ("统计", "statistics"),
    ("登记信息", "registry"),
    ("名册", "roster"),
    ("台账", "ledger"),
    ("年报", "annual report"),
    ("月报", "monthly report"),
    ("清单", "list"),
    ("监测数据", "monitoring"),
]
CHUNK = 2000


def synthetic_entry(index: int, run: int, provider: str, unit_name: str) -> Entry:
    """A plausible entry: a unit's department, a topic, a kind of record, a year."""
    rng = random.Random(index)
    t = rng.randrange(len(TOPICS))
    k = rng.randrange(len(KINDS))
    year = 2015 + rng.randrange(12)
    category = (Category.BASE, Category.THEME, Category.DEPARTMENT)[t % 3]
    class_code = f"{category.digit}{t % 100:02d}{k:03d}"
    topic, topic_en = TOPICS[t]
    kind, kind_en = KINDS[k]
    sharing = (SharingType.UNCONDITIONAL, SharingType.CONDITIONAL)[index % 2]
    return Entry(
        code=f"{class_code}-{run:04d}{index:07d}",
        title=f"{unit_name}{year}年{topic}{kind}",
        title_en=f"{topic_en} {kind_en} {year}",
        abstract=f"{unit_name}{topic}{kind}，{year}年度，按乡镇汇总，供各部门共享使用。",
        provider=provider,
        category=category,
        class_code=class_code,
        class_name=f"{topic}/{kind}",
        keywords=(topic, kind, topic_en),
        format="application/avro",
        schema_name="gov.common.v1.Notice",
        data_items=(DataItem("title", "标题", "string"), DataItem("body", "正文", "string")),
        sharing_type=sharing,
        sharing_conditions="仅限履职使用" if sharing is SharingType.CONDITIONAL else None,
        legal_basis="《政务数据共享条例》" if sharing is SharingType.CONDITIONAL else None,
        sharing_methods=("event_stream",),
        update_cycle=("monthly", "annual", "quarterly")[index % 3],
        issued=date(year, 1 + index % 12, 1),
        open_public=index % 5 == 0,
    )


def queries(count: int, seed: int = 7) -> list[tuple[str, SearchFilters]]:
    """A reproducible mix: Chinese topics and kinds, English words, some with a facet filter."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        topic, topic_en = TOPICS[rng.randrange(len(TOPICS))]
        kind, _ = KINDS[rng.randrange(len(KINDS))]
        choice = i % 4
        text = (topic, topic + kind, topic_en.split()[0], topic[:2])[choice]
        filters = SearchFilters(unit="akto") if i % 5 == 0 else SearchFilters()
        out.append((text, filters))
    return out


async def run_bench(
    hub: Hub, entries: int, query_count: int, on_step: Callable[[str, int, int], None]
) -> dict[str, Any]:
    """The measurements, as a JSON-ready report."""
    js = jetstream(hub.nc)
    run = random.randrange(10_000)
    providers = [p for p in hub.participants.all() if p.id != hub.scenario.operator]
    live_mirror = f"BENCH_DIR_MIRROR_{run}"
    materializer = Materializer(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus)
    await materializer.catch_up()  # the bucket exists and older events are out of the way
    await js.add_stream(_mirror(live_mirror))
    started = time.perf_counter()
    for start in range(0, entries, CHUNK):
        envs = []
        for i in range(start, min(entries, start + CHUNK)):
            who = providers[i % len(providers)]
            entry = synthetic_entry(i, run, who.id, who.name[:6])
            subject = dir_subject(who.id, Kind.PUBLISHED, entry.code)
            envs.append(hub.seal(who.id, ENTRY_SCHEMA, entry.to_record(), subject=subject))
        # Runs of one unit's events go as atomic batches (hub/bus.py), so group them.
        envs.sort(key=lambda env: env.subject.split(".", 2)[1])
        await hub.publisher.publish_many(envs)
        on_step("publish", min(entries, start + CHUNK), entries)
    publish_s = time.perf_counter() - started
    started = time.perf_counter()
    await materializer.catch_up(timeout=max(600.0, entries / 50))
    materialize_s = time.perf_counter() - started
    on_step("materialize", entries, entries)
    source_last = await stream_last_seq(hub.nc, DIRECTORY_STREAM)
    live_lag = await _converge(hub, live_mirror, source_last)
    cold_mirror = f"BENCH_DIR_COLD_{run}"
    started = time.perf_counter()
    await js.add_stream(_mirror(cold_mirror))
    cold = await _converge(hub, cold_mirror, source_last)
    cold_s = time.perf_counter() - started if cold is not None else None
    for name in (live_mirror, cold_mirror):
        await js.delete_stream(name)
    keys = await _subjects(hub, DIRECTORY_STREAM)
    # Searches run on the directory as autovacuum leaves it after a bulk load: planner
    # statistics current and the GIN index's pending list merged (VACUUM does both).
    await hub.pool.execute("VACUUM (ANALYZE) directory_search")
    mix = queries(query_count)
    ours: list[float] = []
    raw: list[float] = []
    hits = 0
    for number, (text, filters) in enumerate(mix, start=1):
        t0 = time.perf_counter()
        result = await search(hub.pool, text, filters)
        ours.append(time.perf_counter() - t0)
        hits += result.total
        t0 = time.perf_counter()
        await hub.pool.fetch(
            "SELECT code, count(*) OVER () AS total FROM directory_search"
            " WHERE status = 'active' AND search_text LIKE $1 LIMIT 20",
            f"%{text.lower()}%",
        )
        raw.append(time.perf_counter() - t0)
        on_step("search", number, len(mix))
    return {
        "entries": entries,
        "publish": {"seconds": round(publish_s, 2), "events_per_s": round(entries / publish_s)},
        "materialize": {
            "seconds": round(materialize_s, 2),
            "entries_per_s": round(entries / materialize_s),
        },
        "kv": {"keys": keys, "converged_s": round(materialize_s, 2)},
        "mirror": {
            "converged": live_lag is not None and cold is not None,
            "live_lag_s": live_lag,
            "cold_sync_s": round(cold_s, 2) if cold_s is not None else None,
        },
        "search": {
            "queries": len(mix),
            "mean_hits": round(hits / max(len(mix), 1), 1),
            "govhub": latency_ms(ours),
            "raw_like_scan": latency_ms(raw),
            "target_p99_ms": 50,
            "state": "after VACUUM (ANALYZE) of directory_search",
        },
        "machine": machine(),
        "peak_rss_mb": peak_rss_mb(),
    }


async def _subjects(hub: Hub, stream: str) -> int:
    """Distinct subjects (KV keys) of a stream; nats-py's StreamState drops this field."""
    reply = await hub.nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=20)
    return int(json.loads(reply.data)["state"].get("num_subjects", 0))


def _mirror(name: str) -> StreamConfig:
    return StreamConfig(name=name, mirror=StreamSource(name=DIRECTORY_STREAM))


async def _converge(hub: Hub, mirror: str, target: int, timeout: float = 600.0) -> float | None:
    """Seconds until a mirror holds the source's last sequence (None if it never does)."""
    started = time.perf_counter()

    async def caught_up() -> bool:
        info = await jetstream(hub.nc).stream_info(mirror)
        return int(info.state.last_seq or 0) >= target

    # The mirror advances inside nats-server: nothing to await.
    if not await poll(caught_up, timeout=timeout, every=0.05):
        return None
    return round(time.perf_counter() - started, 3)


def render(console: Console, result: dict[str, Any]) -> None:
    """The figures for a person, govhub next to the raw scan."""
    s = result["search"]
    print_results(
        console,
        f"bench directory: {result['entries']:,} entries, {s['queries']} searches",
        [
            ("search p50 ms", str(s["govhub"]["p50_ms"]), str(s["raw_like_scan"]["p50_ms"])),
            ("search p99 ms", str(s["govhub"]["p99_ms"]), str(s["raw_like_scan"]["p99_ms"])),
            ("publish entries/s", f"{result['publish']['events_per_s']:,}", ""),
            ("materialize entries/s", f"{result['materialize']['entries_per_s']:,}", ""),
            ("mirror live lag s", str(result["mirror"]["live_lag_s"]), ""),
            ("mirror cold sync s", str(result["mirror"]["cold_sync_s"]), ""),
        ],
    )
