"""Demo chapter: a construction permit reviewed by four departments in parallel (网上并联审批).

The prefecture housing bureau (the lead, 牵头部门) opens the case at its window with three
materials sent as exchange documents, and assigns it to four departments at once. The land
bureau asks for more material (补正) and its clock stops until the lead supplies it; the
development commission reads the applicant's registration through a directory grant; the
emergency bureau approves with conditions; Akto county's land bureau surveys the site. When
the last opinion is in, the lead signs the decision that follows from them, and the audit log
proves, leaf by leaf, who decided what and when.

On the federated topology (`govhub demo --federated`) Akto's uplink is cut while its land
bureau signs: its county's stream stores the opinion, the hub receives it when the uplink
returns, and it counts from when the county stored it.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.approval.model import REVIEW_ZH, Decision
from hub.approval.views import case_view, progress
from hub.approval.workflow import Approvals
from hub.audit import bundle
from hub.audit.service import AuditLog
from hub.audit.verify import BUNDLE_FORMAT, load_trust, verify_bundle
from hub.demo import Chapter, Story
from hub.directory.model import template
from hub.directory.store import list_requests
from hub.directory.workflow import Directory
from hub.display import line, styled
from hub.errors import ApprovalError
from hub.federation.arrival import wait_at_hub
from hub.runtime import Hub

LEAD = "pref.housing"
COUNTY = "akto.natres"
RESOURCE = "302001-000101"
PROVIDER = "pref.market"
READER = "pref.drc"
MATERIALS = {
    "application": "建筑工程施工许可申请表\n建设单位：克州城建投资有限公司\n",
    "site-plan": "建设工程规划许可证及附图\n项目地点：阿克陶县城南新区\n",
    "safety-plan": "安全生产措施方案\n一、安全生产责任制……\n",
}
MISSING = "建设用地规划许可证附图（加盖公章，标注红线坐标）"
CONDITIONS = ["开工前完成安全技术交底", "施工现场设置临时消防设施"]
ARRIVAL_S = 120.0


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode() + os.urandom(2048).hex().encode())
    return path


def _resource_entry() -> dict[str, Any]:
    entry = template()
    for key in ("data_items", "provider_code"):
        entry.pop(key)
    entry.update(
        code=RESOURCE,
        provider=PROVIDER,
        title="市场主体登记信息",
        title_en="Business registration records",
        abstract="全州企业、个体工商户登记信息（名称、统一社会信用代码、登记状态），供审批核验。",
        abstract_en="Registration records of businesses, for checks in approvals.",
        classification={"category": "department", "code": "302001", "name": "市场监管/主体登记"},
        keywords=["市场主体", "企业登记", "business registration"],
        schema="gov.common.v1.Notice",
        sharing={
            "type": "conditional",
            "conditions": "仅限行政审批核验使用",
            "legal_basis": "《优化营商环境条例》第三十七条",
            "methods": ["event_stream"],
        },
        spatial="克孜勒苏柯尔克孜自治州",
        contact="州市场监督管理局登记注册科",
    )
    return entry


async def _grant(hub: Hub, case_number: str) -> str:
    """The development commission's access to the business register, through the directory."""
    directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    await directory.catch_up()
    active = await hub.pool.fetchval(
        "SELECT status = 'active' FROM directory_entries WHERE code = $1", RESOURCE
    )
    if not active:
        await directory.publish(PROVIDER, _resource_entry())
    for earlier in await list_requests(hub.pool, READER, role="requester", code=RESOURCE):
        if earlier["state"] == "granted":
            return str(earlier["state"])  # a demo run again in the same home keeps its grant
        if earlier["state"] == "pending":
            await directory.deny(PROVIDER, earlier["request_id"], "演示重新开始 (demo rerun)")
    asked = await directory.request(
        READER, RESOURCE, f"并联审批 {case_number} 核验建设单位登记信息"
    )
    until = datetime.now(UTC) + timedelta(days=365)
    granted = await directory.grant(PROVIDER, asked["request_id"], until=until)
    return str(granted["state"])


async def _county_opinion(
    hub: Hub, approvals: Approvals, case_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Akto's land bureau signs its opinion; on the federated topology with its uplink cut."""
    federation = hub.federation
    if federation is None or federation.servers is None:
        done = await approvals.opinion(
            COUNTY, case_id, Decision.APPROVE, reasons="现场踏勘符合要求"
        )
        return done, None
    unit = COUNTY.split(".")[0]
    offline = Approvals(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, approvals.config, arrival_wait_s=1.0
    )
    federation.servers.uplink(unit, enabled=False)
    try:
        queued = await offline.opinion(
            COUNTY, case_id, Decision.APPROVE, reasons="现场踏勘符合要求"
        )
    finally:
        federation.servers.uplink(unit, enabled=True)
    events = [(e["subject"], e["event_id"]) for e in queued.get("events", [])]
    if not await wait_at_hub(hub.nc, events, timeout=ARRIVAL_S):
        raise ApprovalError(f"{COUNTY}'s opinion did not reach the hub in time")
    await approvals.catch_up()
    done = await case_view(hub.pool, approvals.config, case_id)
    opinion = next(
        h for h in done["history"] if h["kind"] == "opinion" and h["signed_by"].startswith(COUNTY)
    )
    drill = {
        "county": unit,
        "state_while_cut": queued["state"],
        "stored_by": queued["events"][-1]["stream"] if queued.get("events") else None,
        "timed_by": opinion["timed_by"],
        "counted_at": opinion["at"],
        "reached_hub": opinion["stored_at"],
    }
    return done, drill


async def _proofs(hub: Hub, events: list[str]) -> dict[str, Any]:
    """Inclusion proofs of the case's signed steps, verified offline like an auditor does."""
    log = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    checkpoint = await log.catch_up()
    proofs = [await bundle.proof_for_event(hub.pool, e) for e in events]
    trust = {**log.trust(), "participant_keys": await bundle.participant_keys(hub.pool)}
    evidence = {
        "format": BUNDLE_FORMAT,
        "origin": log.config.origin,
        **trust,
        "checkpoints": [proofs[-1]["checkpoint"]],
        "consistency": [],
        "entries": [
            {"leaf_index": p["leaf_index"], "leaf": p["leaf"], "inclusion": p["inclusion"]}
            for p in proofs
        ],
    }
    report = verify_bundle(evidence, load_trust(trust, "trust file"))
    leaves = []
    for p in proofs:
        leaf = json.loads(base64.b64decode(p["leaf"]))
        leaves.append(
            {
                "leaf_index": p["leaf_index"],
                "signed_by": leaf["headers"]["govhub-key"],
                "type": leaf["headers"]["ce-type"].rsplit(".", 1)[-1],
                "received_at": leaf["received_at"],
            }
        )
    return {
        "tree_size": checkpoint.size,
        "leaves": leaves,
        "verified_offline": report.accepted_verified == len(events) and not report.warnings,
    }


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Open, assign, ask for material, supply it, decide in parallel, prove it."""
    folder = hub.settings.home.root / "demo" / "approval"
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    await approvals.catch_up()
    opened = await approvals.open(
        LEAD,
        "construction-permit",
        title="阿克陶县城南新区第一中学教学楼建设项目施工许可",
        applicant_name="克州城建投资有限公司",
        applicant_code="91653000MA78XQ0R4W",
        unit="akto",
        documents={n: _write(folder, f"{n}.txt", t) for n, t in MATERIALS.items()},
    )
    case_id, number = opened["case_id"], opened["case_number"]
    asked = await approvals.request_material(
        "pref.natres", case_id, [MISSING], reason="规划附图缺少用地红线坐标"
    )
    waiting = await progress(hub.pool, hub.trust, approvals.config, number)
    supplied = await approvals.supply_material(
        LEAD,
        case_id,
        asked["request_id"],
        {"site-plan-sealed": _write(folder, "site-plan-sealed.txt", MISSING)},
        note="申请人已补正",
    )
    access = await _grant(hub, number)
    await approvals.opinion(READER, case_id, Decision.APPROVE, legal_basis="《建筑法》第八条")
    await approvals.opinion(
        "pref.emergency", case_id, Decision.APPROVE_WITH_CONDITIONS, conditions=CONDITIONS
    )
    await approvals.opinion("pref.natres", case_id, Decision.APPROVE)
    done, drill = await _county_opinion(hub, approvals, case_id)
    final = await progress(hub.pool, hub.trust, approvals.config, number)
    steps = [h for h in done["history"] if h["kind"] in ("opinion", "decided")]
    audit = await _proofs(hub, [h["event_id"] for h in steps])
    reviews = {r["reviewer"]: r for r in done["reviews"]}
    facts: dict[str, Any] = {
        "case_id": case_id,
        "case_number": number,
        "materials": [a["label"] for a in opened["attachments"]],
        "reviewers": {
            r: {
                "label": v["label"],
                "state": v["state"],
                "working_days": v["working_days"],
                "late": v["late"],
                "paused_working_days": v["paused_working_days"],
                "timed_by": v["timed_by"],
            }
            for r, v in reviews.items()
        },
        "material": {
            "items": [MISSING],
            "status_while_waiting": next(
                d["status"] for d in waiting["departments"] if d["matter"] == "用地规划审查"
            ),
            "paused_while_waiting": next(
                r["paused"] for r in asked["reviews"] if r["reviewer"] == "pref.natres"
            ),
            "state_after_supply": next(
                r["state"] for r in supplied["reviews"] if r["reviewer"] == "pref.natres"
            ),
        },
        "resource": {
            "code": RESOURCE,
            "reader": READER,
            "access": access,
            "as_seen_in_case": next(
                (x["access"] for x in reviews[READER]["resources"] if x["code"] == RESOURCE), None
            ),
        },
        "state": done["state"],
        "outcome": done["outcome"],
        "progress": {
            "status": final["status"],
            "outcome": final["outcome"],
            "departments": [(d["department"], d["status"]) for d in final["departments"]],
        },
        "all_in_time": all(v["late"] is False for v in reviews.values()),
        "audit": audit,
    }
    if drill is not None:
        facts["cut_off"] = drill
    return facts


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    console.print(
        f"{LEAD} (州住房和城乡建设局) opens case {facts['case_number']}: a construction permit "
        f"with {len(facts['materials'])} materials ({', '.join(facts['materials'])}), each sent "
        "as a signed exchange document, and assigns it to four departments at once."
    )
    m = facts["material"]
    console.print(
        f"pref.natres asks for more material (补正: {m['items'][0]}); the applicant sees "
        f"「{m['status_while_waiting']}」 and the bureau's clock stops; the lead supplies it and "
        f"the clock runs again ({m['state_after_supply']})."
    )
    r = facts["resource"]
    console.print(
        f"{r['reader']} reads the applicant's registration ({r['code']}) under a directory "
        f"grant: {r['access']}."
    )
    cut = facts.get("cut_off")
    columns = ["department", "matter", "working days", "opinion", "in time"]
    table = Table(*columns, *(["counted from"] if cut else []))
    for who, v in facts["reviewers"].items():
        style = "green" if v["state"].startswith("approved") else "red"
        paused = f" (+{v['paused_working_days']} 补正)" if v["paused_working_days"] else ""
        cells = [
            who,
            v["label"],
            f"{v['working_days']}{paused}",
            styled(REVIEW_ZH.get(v["state"], v["state"]), style),
            "yes" if v["late"] is False else "NO",
        ]
        table.add_row(*cells, *([v["timed_by"] or ""] if cut else []))
    console.print(table)
    if cut is None:
        console.print(
            "(On the federated topology, `govhub demo --federated`, akto.natres signs with its "
            "county's uplink cut and its opinion counts from when its county stored it.)"
        )
    else:
        console.print(
            f"{cut['county']}'s uplink was cut while akto.natres signed: {cut['state_while_cut']} "
            f"in {cut['stored_by']}; after reconnect it counts from {cut['counted_at']} "
            f"({cut['timed_by']}), not from its arrival at the hub {cut['reached_hub']}."
        )
    p = facts["progress"]
    console.print(
        line(
            f"{LEAD} signs the decision that follows from the opinions: ",
            (f"{facts['outcome']} ({p['outcome']})", "bold"),
            f"; the applicant's progress view (办件进度) says {p['status']}.",
        )
    )
    a = facts["audit"]
    table = Table("leaf", "signed by (key)", "event", "received by the hub (UTC)")
    for leaf in a["leaves"]:
        who, _, key = leaf["signed_by"].partition("/")
        table.add_row(
            str(leaf["leaf_index"]),
            f"{who}/{key[:8]}",
            leaf["type"],
            leaf["received_at"][:19].replace("T", " "),
        )
    console.print(table)
    verdict = ("verified offline", "green") if a["verified_offline"] else ("FAILED", "red")
    console.print(
        line(f"Who decided what and when, from the audit log ({a['tree_size']} leaves): ", verdict)
    )


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    in_time = sum(1 for v in facts["reviewers"].values() if v["late"] is False)
    rows = [
        (
            f"permit case {facts['case_number']}",
            f"{facts['outcome']} ({facts['progress']['outcome']})",
        ),
        (
            "reviews decided in time",
            f"{in_time} of {len(facts['reviewers'])}",
        ),
        (
            "opinions proven from the audit log",
            "yes" if facts["audit"]["verified_offline"] else "NO",
        ),
    ]
    cut = facts.get("cut_off")
    if cut is not None:
        rows.append((f"review from cut-off {cut['county']}", f"counted from {cut['timed_by']}"))
    return rows


CHAPTER = Chapter(
    name="approval",
    title="Parallel approval (网上并联审批): four departments, one permit",
    run=run,
    render=render,
    summary=summary,
)
