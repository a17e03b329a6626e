"""Demo chapter: a county statistics bureau publishes a conditional resource in the shared
directory; another department finds it by a Chinese keyword, requests it, is refused the data
until the bureau grants the request, then receives exactly the granted fields."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.codec import schema_from_json
from hub.demo import Chapter, Story
from hub.directory.dcat import default_base, export_catalog
from hub.directory.model import template
from hub.directory.sharing import receive, share
from hub.directory.store import list_requests, search
from hub.directory.workflow import Directory
from hub.display import line
from hub.errors import NoGrant
from hub.runtime import Hub

PROVIDER = "akto.stats"
REQUESTER = "akto.civil"
CODE = "101001-000017"
QUERY = "人口"
PURPOSE = "城乡低保对象家庭人口核查 (minimum-allowance household checks)"

SCHEMA = {
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
OCTOBER = [
    {"township": "木吉乡", "month": "2026-10", "residents": 12034, "households": 3011},
    {"township": "奥依塔克镇", "month": "2026-10", "residents": 20417, "households": 5120},
]
NOVEMBER = [
    {"township": "木吉乡", "month": "2026-11", "residents": 12051, "households": 3015},
    {"township": "奥依塔克镇", "month": "2026-11", "residents": 20433, "households": 5126},
]


def _others() -> list[dict[str, Any]]:
    """Two more entries, so search has something to tell apart and the export something open."""
    artux = template()
    artux.update(
        code="101001-000018",
        provider="artux.stats",
        title="阿图什市户籍人口年报",
        title_en="Artux registered population yearbook",
        abstract="阿图什市户籍人口按年龄与性别统计，每年更新。",
        keywords=["户籍", "人口", "population"],
        update_cycle="annual",
        spatial="阿图什市",
    )
    hrss = template()
    hrss.update(
        code="202003-000001",
        provider="pref.hrss",
        title="社会保险参保登记",
        title_en="Social insurance enrolment",
        abstract="全州企业职工基本养老保险参保登记汇总（不含个人身份信息）。",
        abstract_en="Enrolment totals of the employees' basic pension insurance.",
        classification={"category": "theme", "code": "202003", "name": "社会保障/参保登记"},
        keywords=["社保", "养老保险", "pension"],
        schema="gov.common.v1.Notice",
        sharing={"type": "unconditional", "methods": ["event_stream", "file"]},
        open={"public": True, "conditions": None, "license": "CC-BY-4.0"},
        spatial="克孜勒苏柯尔克孜自治州",
    )
    for other in (artux, hrss):
        other.pop("data_items")
        other.pop("provider_code")
    return [artux, hrss]


async def _publish(hub: Hub, directory: Directory, data: dict[str, Any]) -> dict[str, Any]:
    """Publish, or on a second demo run in the same home, publish a new version."""
    exists = await hub.pool.fetchval(
        "SELECT status = 'active' FROM directory_entries WHERE code = $1", data["code"]
    )
    return await directory.publish(data["provider"], data, update=bool(exists))


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Publish, find, request, be refused, be granted, receive; export the open catalog."""
    await hub.registry.register(schema_from_json(copy.deepcopy(SCHEMA)), as_id=PROVIDER)
    directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    await directory.catch_up()
    entry = template()
    entry.pop("data_items")  # the bureau's registered schema supplies them
    published = await _publish(hub, directory, entry)
    for other in _others():
        await _publish(hub, directory, other)
    for earlier in await list_requests(hub.pool, REQUESTER, role="requester", code=CODE):
        # A demo run again in the same home starts the story afresh: last run's grant ends.
        if earlier["state"] == "granted":
            await directory.revoke(PROVIDER, earlier["request_id"], "演示重新开始 (demo rerun)")
        elif earlier["state"] == "pending":
            await directory.deny(PROVIDER, earlier["request_id"], "演示重新开始 (demo rerun)")
    found = await search(hub.pool, QUERY)
    request = await directory.request(
        REQUESTER, CODE, PURPOSE, fields=["township", "residents", "households"]
    )
    before = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, OCTOBER)
    try:
        await receive(hub.pool, hub.bus, hub.signer, REQUESTER, CODE)
        refusal = ""
    except NoGrant as exc:
        refusal = str(exc)
    until = datetime.now(UTC) + timedelta(days=365)
    granted = await directory.grant(
        PROVIDER, request["request_id"], fields=["township", "residents"], until=until
    )
    after = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, NOVEMBER)
    got = await receive(hub.pool, hub.bus, hub.signer, REQUESTER, CODE)
    ours = set(after["record_ids"])
    received = [r["data"] for r in got["records"] if r["record_id"] in ours]
    catalog = await export_catalog(
        hub.pool,
        hub.participants,
        base=default_base(hub.scenario.name),
        title=f"{hub.scenario.hub_name} 开放数据目录",
        publisher=hub.scenario.operator,
    )
    json.loads(json.dumps(catalog))  # the export is plain JSON-LD
    return {
        "code": CODE,
        "title": entry["title"],
        "version": published["version"],
        "sharing_type": entry["sharing"]["type"],
        "query": QUERY,
        "found": [{"code": r["code"], "title": r["title"]} for r in found.results],
        "facets": found.facets,
        "request_id": request["request_id"],
        "request_state": request["state"],
        "deadline": request["deadline"],
        "shared_before_grant": len(before["events"]),
        "refusal": refusal,
        "grant_state": granted["state"],
        "granted_fields": granted["granted_fields"],
        "shared_after_grant": len(after["events"]),
        "received": received,
        "open_datasets": len(catalog["dcat:dataset"]),
    }


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    console.print(
        f"{PROVIDER} (阿克陶县统计局) publishes {facts['code']} 「{facts['title']}」 "
        f"as {facts['sharing_type']} (有条件共享), version {facts['version']}, signed."
    )
    table = Table(
        "code", "title", title=f"{REQUESTER} searches the directory for 「{facts['query']}」"
    )
    for hit in facts["found"]:
        table.add_row(hit["code"], hit["title"])
    console.print(table)
    deadline = facts["deadline"].date().isoformat() if facts["deadline"] else "-"
    console.print(
        line(
            f"{REQUESTER} requests it (用途: {PURPOSE}): ",
            (facts["request_state"], "yellow"),
            f", the provider answers by {deadline} (10 working days).",
        )
    )
    console.print(
        f"October's records are shared before any grant ({facts['shared_before_grant']} "
        f"sealed events: nobody holds a grant). {REQUESTER} tries to read and is refused:"
    )
    console.print(line("  ", (facts["refusal"], "red")))
    console.print(
        line(
            f"{PROVIDER} grants the request, narrowed to {', '.join(facts['granted_fields'])}: ",
            (facts["grant_state"], "green"),
            f". November's records go out as {facts['shared_after_grant']} event(s) sealed to "
            f"{REQUESTER} alone; it decrypts:",
        )
    )
    received = Table("乡镇 township", "常住人口 residents")
    for row in facts["received"]:
        received.add_row(row["township"], str(row["residents"]))
    console.print(received)
    console.print(f"Open-data catalog (DCAT 3 JSON-LD): {facts['open_datasets']} dataset(s).")


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    return [
        (f"directory search 「{facts['query']}」", f"{len(facts['found'])} resource(s)"),
        ("data refused before the grant", "yes" if facts["refusal"] else "NO"),
        ("records received after the grant", str(len(facts["received"]))),
        ("open datasets exported (DCAT)", str(facts["open_datasets"])),
    ]


CHAPTER = Chapter(
    name="directory",
    title="Shared resource directory (政务信息资源目录): find, request, grant, receive",
    run=run,
    render=render,
    summary=summary,
)
