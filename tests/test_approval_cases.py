"""Parallel approval on one hub: opinions in parallel, refusals, 补正, withdrawal, forgery."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.approval import agent
from hub.approval.casetypes import load_config
from hub.approval.model import (
    ASSIGNED_SCHEMA,
    OPENED_SCHEMA,
    OPINION_SCHEMA,
    Decision,
    Kind,
    case_subject,
)
from hub.approval.projection import Batch
from hub.approval.tracker import rebuild
from hub.approval.views import case_view, list_cases, progress
from hub.approval.workflow import Approvals
from hub.bus import jetstream
from hub.envelope import new_event_id
from hub.errors import CaseClosed, InputError, NotAssigned, NotLead, UnknownCase, UnknownCaseType
from hub.runtime import Hub
from hub.serve import build_services, make_app
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.approval_support import (  # noqa: F401  (module_hub is this module's `hub`)
    COMPANY,
    LEAD,
    PERMIT,
    REVIEWERS,
    materials,
    module_hub,
    open_permit,
    opinion_record,
    publish_as,
    review,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_four_departments_decide_in_parallel_and_the_lead_signs_the_decision_that_follows(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path, applicant_code=COMPANY)
    assert case["state"] == "open"
    assert [r["reviewer"] for r in case["reviews"]] == list(REVIEWERS)
    assert {r["state"] for r in case["reviews"]} == {"reviewing"}
    # The materials went to every reviewer as signed documents of the exchange.
    assert {a["name"] for a in case["attachments"]} == {"application", "site-plan", "safety-plan"}
    assert all(set(a["deliveries"]) == set(REVIEWERS) for a in case["attachments"])

    cid = case["case_id"]
    await approvals.opinion("pref.drc", cid, Decision.APPROVE, legal_basis="《建筑法》第八条")
    await approvals.opinion(
        "pref.emergency",
        cid,
        Decision.APPROVE_WITH_CONDITIONS,
        conditions=["施工前完成安全技术交底", "设置临时消防设施"],
    )
    middle = await approvals.opinion("akto.natres", cid, Decision.APPROVE)
    assert middle["state"] == "open" and middle["ready_outcome"] is None
    done = await approvals.opinion("pref.natres", cid, Decision.APPROVE)

    assert done["state"] == "decided"
    assert done["outcome"] == "approved_with_conditions"
    decided = [h for h in done["history"] if h["kind"] == Kind.DECIDED]
    assert len(decided) == 1 and decided[0]["signed_by"].startswith(f"{LEAD}/")
    record = await hub.pool.fetchval(
        "SELECT record FROM apr_events WHERE event_id = $1", done["decided_event_id"]
    )
    assert "设置临时消防设施" in record
    opinions = [h["event_id"] for h in done["history"] if h["kind"] == Kind.OPINION]
    assert all(o in record for o in opinions) and len(opinions) == 4

    view = await progress(hub.pool, hub.trust, approvals.config, done["case_number"])
    assert view["status"] == "已办结" and view["outcome"] == "附条件准予许可"
    assert {d["status"] for d in view["departments"]} == {"同意", "有条件同意"}
    assert view["departments"][0]["department"] == "州发展和改革委员会"


async def test_a_binding_refusal_decides_the_case_at_once_and_a_later_opinion_changes_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    await approvals.opinion("pref.drc", cid, Decision.APPROVE)
    done = await approvals.opinion(
        "pref.natres",
        cid,
        Decision.REFUSE,
        reasons="项目用地不符合国土空间规划",
        legal_basis="《土地管理法》",
    )
    assert (done["state"], done["outcome"]) == ("decided", "refused")
    assert {r["reviewer"]: r["state"] for r in done["reviews"]} == {
        "pref.drc": "approved",
        "pref.natres": "refused",
        "pref.emergency": "closed",
        "akto.natres": "closed",
    }
    with pytest.raises(CaseClosed, match="already decided"):
        await approvals.opinion("pref.emergency", cid, Decision.APPROVE)
    # The same opinion signed and published without the check is kept, changing nothing.
    late = await publish_as(
        hub, "pref.emergency", Kind.OPINION, cid, opinion_record(case, "pref.emergency", "APPROVE")
    )
    await approvals.catch_up()
    outcome = await hub.pool.fetchval(
        "SELECT outcome FROM apr_events WHERE event_id = $1", late.event_id
    )
    assert outcome == "after_decision"
    view = await progress(hub.pool, hub.trust, approvals.config, cid)
    assert view["outcome"] == "不予许可"
    refused = [d for d in view["departments"] if d["status"] == "不同意"]
    assert refused[0]["reasons"] == "项目用地不符合国土空间规划"


async def test_a_refusal_that_does_not_end_the_case_waits_for_every_opinion(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    docs = materials(tmp_path)
    case = await approvals.open(
        "pref.market",
        "food-business",
        title="克州美食城餐饮店食品经营许可",
        applicant_name="阿图什市美食城餐饮有限公司",
        unit="artux",
        documents={"application": docs["application"], "premises": docs["site-plan"]},
    )
    cid = case["case_id"]
    first = await approvals.opinion(
        "pref.health", cid, Decision.REFUSE, reasons="从业人员未取得健康证明"
    )
    assert first["state"] == "open"  # every department's reasons are collected first
    done = await approvals.opinion(
        "artux.market", cid, Decision.REFUSE, reasons="经营场所布局不符合要求"
    )
    assert (done["state"], done["outcome"]) == ("decided", "refused")
    record = await hub.pool.fetchval(
        "SELECT record FROM apr_events WHERE event_id = $1", done["decided_event_id"]
    )
    assert json.loads(record)["refused_by"] == ["artux.market", "pref.health"]


async def test_a_material_request_pauses_the_reviewers_clock_until_the_lead_supplies_it(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    month_later = datetime.now(UTC) + timedelta(days=30)
    asked = await approvals.request_material(
        "pref.natres", cid, ["建设用地规划许可证附图（盖章）"], reason="附图缺少红线坐标"
    )
    natres = review(asked, "pref.natres")
    assert natres["state"] == "material_requested"
    # A month later the clock has not run: no deadline, not overdue, same days left.
    paused = review(
        await case_view(hub.pool, approvals.config, cid, now=month_later), "pref.natres"
    )
    assert (paused["paused"], paused["overdue"], paused["deadline"]) == (True, False, None)
    assert paused["working_days_left"] == natres["working_days_left"]
    others = review(await case_view(hub.pool, approvals.config, cid, now=month_later), "pref.drc")
    assert others["overdue"]  # the other reviewers' clocks ran on
    told = await progress(hub.pool, hub.trust, approvals.config, cid)
    natres_told = next(d for d in told["departments"] if d["matter"] == "用地规划审查")
    assert natres_told["status"] == "待补正"
    assert natres_told["to_supply"] == ["建设用地规划许可证附图（盖章）"]

    with pytest.raises(CaseClosed, match="already waits for material"):
        await approvals.request_material("pref.natres", cid, ["又一份"])
    with pytest.raises(NotAssigned, match="0 time"):
        await approvals.request_material("pref.drc", cid, ["立项批复"])
    with pytest.raises(NotLead):
        await approvals.supply_material(
            "pref.natres", cid, asked["request_id"], {"plan": tmp_path / "application.pdf"}
        )

    supply = tmp_path / "附图.pdf"
    supply.write_bytes(b"%PDF-1.7 revised")
    supplied = await approvals.supply_material(
        LEAD, cid, asked["request_id"], {"site-plan-seal": supply}, note="申请人已补充"
    )
    natres = review(supplied, "pref.natres")
    assert natres["state"] == "reviewing"
    assert natres["material"][0]["ended_by"] == "supplied"
    sent = natres["material"][0]["attachments"][0]
    recipients = await hub.pool.fetch(
        "SELECT recipient FROM doc_recipients WHERE doc_id = $1", sent["doc_id"]
    )
    assert [r["recipient"] for r in recipients] == ["pref.natres"]
    running = review(
        await case_view(hub.pool, approvals.config, cid, now=month_later), "pref.natres"
    )
    assert running["overdue"] and not running["paused"]


async def test_a_deadline_passing_warns_then_escalates_to_the_supervisor_who_sees_it_first(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    done_case = await open_permit(approvals, tmp_path / "a")
    for reviewer in REVIEWERS:
        await approvals.opinion(reviewer, done_case["case_id"], Decision.APPROVE)
    case = await open_permit(approvals, tmp_path / "b")
    cid = case["case_id"]
    await approvals.opinion("pref.emergency", cid, Decision.APPROVE)
    five_days = datetime.fromisoformat(review(case, "pref.drc")["deadline"])
    seven_days = datetime.fromisoformat(review(case, "pref.natres")["deadline"])
    assert seven_days > five_days

    # An hour before the five-day limit: no working day left for drc and akto.natres, and
    # the seven-day natres is within its two days of warning.
    warned = await agent.sweep(
        hub.pool, hub.trust, hub.signer, approvals.config, now=five_days - timedelta(hours=1)
    )
    assert _ours(warned["warned"], cid) == {"pref.drc", "akto.natres", "pref.natres"}
    assert _ours(warned["escalated"], cid) == set()
    late = five_days + timedelta(hours=1)
    escalated = await agent.sweep(hub.pool, hub.trust, hub.signer, approvals.config, now=late)
    assert _ours(escalated["escalated"], cid) == {"pref.drc", "akto.natres"}
    assert all(e["supervisor"] == "pref.office" for e in escalated["escalated"])
    await approvals.catch_up()
    again = await agent.sweep(hub.pool, hub.trust, hub.signer, approvals.config, now=late)
    assert _ours(again["warned"], cid) == _ours(again["escalated"], cid) == set()

    view = await case_view(hub.pool, approvals.config, cid, now=late)
    kinds = [(h["kind"], h["signed_by"].split("/")[0]) for h in view["history"]]
    assert kinds.count(("warning", "pref.egov")) == 3
    assert kinds.count(("escalated", "pref.egov")) == 2
    assert review(view, "pref.drc")["overdue"] and review(view, "pref.drc")["escalated_at"]
    assert not review(view, "pref.natres")["overdue"]

    listed = await list_cases(hub.pool, approvals.config, now=late)
    ours = [c for c in listed if c["case_id"] in (cid, done_case["case_id"])]
    assert ours[0]["case_id"] == cid and ours[0]["overdue"] == ["pref.drc", "akto.natres"]
    assert ours[-1]["case_id"] == done_case["case_id"]
    assert listed.index(ours[0]) < listed.index(ours[-1])
    # A department still decides after escalation: its opinion counts, on time or not.
    after = await approvals.opinion("pref.drc", cid, Decision.APPROVE)
    assert review(after, "pref.drc")["late"] is False  # stored now, before the deadline


async def test_forged_and_unauthorized_case_events_are_quarantined_with_a_reason(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    opened = case["opened_event_id"]
    forged = {
        # The lead signs an opinion in the name of the land department.
        "not_reviewer": await publish_as(
            hub, LEAD, Kind.OPINION, cid, opinion_record(case, "pref.natres", "APPROVE")
        ),
        # A department nobody assigned gives an opinion of its own.
        "not_assigned": await publish_as(
            hub,
            "pref.finance",
            Kind.OPINION,
            cid,
            opinion_record(case, "pref.finance", "REFUSE", reasons="x"),
        ),
        # A reviewer withdraws the application.
        "not_lead": await publish_as(
            hub,
            "pref.drc",
            Kind.WITHDRAWN,
            cid,
            {"case_id": cid, "opened_event_id": opened, "reason": "撤"},
        ),
        # A reviewer marks another as overdue.
        "not_operator": await publish_as(
            hub,
            "pref.natres",
            Kind.ESCALATED,
            cid,
            {
                "case_id": cid,
                "reviewer": "pref.drc",
                "supervisor": "pref.office",
                "deadline": datetime.now(UTC),
            },
        ),
        # The lead decides before anyone has given an opinion.
        "case_mismatch": await publish_as(
            hub,
            LEAD,
            Kind.DECIDED,
            cid,
            {
                "case_id": cid,
                "opened_event_id": opened,
                "outcome": "APPROVED",
                "opinion_event_ids": [],
                "conditions": [],
                "refused_by": [],
            },
        ),
        # The lead signs on the land department's own subject with its own key.
        "subject_not_allowed": await publish_as(
            hub,
            LEAD,
            Kind.OPINION,
            cid,
            opinion_record(case, "pref.natres", "APPROVE"),
            on="pref.natres",
        ),
    }
    await approvals.catch_up()
    js = jetstream(hub.nc)
    for reason, env in forged.items():
        copy = await js.get_msg(QUARANTINE_STREAM, subject=f"quarantine.{reason}", direct=True)
        assert copy.headers["govhub-orig-subject"] == env.subject, reason
        assert copy.headers["ce-id"] == env.event_id, reason
    view = await case_view(hub.pool, approvals.config, cid)
    assert view["state"] == "open" and view["ready_outcome"] is None
    assert {r["state"] for r in view["reviews"]} == {"reviewing"}
    # The case's own history names every case-rule refusal with its sentence.
    assert {r["reason"] for r in view["refused"]} == set(forged) - {"subject_not_allowed"}
    said = {r["reason"]: r["detail"] for r in view["refused"]}
    assert said["not_reviewer"] == (
        "the opinion names pref.natres as its reviewer, but pref.housing signed it"
    )
    assert said["not_lead"] == (
        f"only the lead department pref.housing may withdraw case {cid}; pref.drc signed this"
    )
    # The real land department's opinion still counts.
    real = await approvals.opinion("pref.natres", cid, Decision.APPROVE)
    assert review(real, "pref.natres")["state"] == "approved"


async def test_a_withdrawn_case_refuses_opinions_and_keeps_a_late_one_as_evidence(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    await approvals.opinion("pref.drc", cid, Decision.APPROVE)
    with pytest.raises(NotLead, match="only the lead department pref.housing may withdraw"):
        await approvals.withdraw("pref.drc", cid, "申请人撤回")
    gone = await approvals.withdraw(LEAD, cid, "申请人申请撤回（项目调整）")
    assert gone["state"] == "withdrawn" and gone["withdraw_reason"] == "申请人申请撤回（项目调整）"
    assert {r["reviewer"]: r["state"] for r in gone["reviews"]}["pref.drc"] == "approved"
    assert {r["state"] for r in gone["reviews"][1:]} == {"closed"}
    with pytest.raises(CaseClosed, match="was withdrawn"):
        await approvals.opinion("pref.natres", cid, Decision.APPROVE)
    with pytest.raises(CaseClosed, match="was withdrawn"):
        await approvals.withdraw(LEAD, cid, "again")
    # A county that signed before it heard of the withdrawal: kept, changes nothing.
    late = await publish_as(
        hub, "akto.natres", Kind.OPINION, cid, opinion_record(case, "akto.natres", "APPROVE")
    )
    await approvals.catch_up()
    view = await case_view(hub.pool, approvals.config, cid)
    assert view["state"] == "withdrawn"
    assert [h["outcome"] for h in view["history"] if h["event_id"] == late.event_id] == [
        "after_withdrawal"
    ]
    assert review(view, "akto.natres")["state"] == "closed"
    assert (await progress(hub.pool, hub.trust, approvals.config, view["case_number"]))[
        "status"
    ] == "已撤回"


async def test_steps_that_break_the_rules_are_refused_before_signing_with_one_sentence(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    docs = materials(tmp_path)
    before = await _stream_count(hub)
    refusals: list[tuple[type[Exception], str, Any]] = [
        (
            UnknownCaseType,
            "there is no case type 'road-permit'",
            lambda: approvals.open(
                LEAD, "road-permit", title="t", applicant_name="a", documents=docs
            ),
        ),
        (
            NotLead,
            "opened by their lead department pref.housing, not by pref.natres",
            lambda: approvals.open(
                "pref.natres", PERMIT, title="t", applicant_name="a", unit="akto", documents=docs
            ),
        ),
        (
            InputError,
            "say which county or city",
            lambda: approvals.open(LEAD, PERMIT, title="t", applicant_name="a", documents=docs),
        ),
        (
            InputError,
            "lacks required material: safety-plan",
            lambda: approvals.open(
                LEAD,
                PERMIT,
                title="t",
                applicant_name="a",
                unit="akto",
                documents={k: v for k, v in docs.items() if k != "safety-plan"},
            ),
        ),
        (
            InputError,
            "has no material 'photo'",
            lambda: approvals.open(
                LEAD,
                PERMIT,
                title="t",
                applicant_name="a",
                unit="akto",
                documents={**docs, "photo": docs["application"]},
            ),
        ),
        (
            InputError,
            "identity number must not go on the bus",
            lambda: approvals.open(
                LEAD,
                PERMIT,
                title="t",
                applicant_name="张三",
                applicant_code="65300119900101123X",
                unit="akto",
                documents=docs,
            ),
        ),
        (
            UnknownCase,
            "no case 01a00000-0000-7000-8000-000000000000",
            lambda: approvals.opinion(
                "pref.drc", "01a00000-0000-7000-8000-000000000000", Decision.APPROVE
            ),
        ),
        (
            InputError,
            "is not a case id",
            lambda: approvals.opinion("pref.drc", "../x", Decision.APPROVE),
        ),
    ]
    for error, sentence, step in refusals:
        with pytest.raises(error, match=re.escape(sentence)) as caught:
            await step()
        _one_sentence(str(caught.value))
    assert await _stream_count(hub) == before  # nothing was signed or sent

    case = await open_permit(approvals, tmp_path / "ok")
    cid = case["case_id"]
    for error, sentence, step in [
        (
            NotAssigned,
            "pref.finance is not a reviewer of case",
            lambda: approvals.opinion("pref.finance", cid, Decision.APPROVE),
        ),
        (
            InputError,
            "--reason is required",
            lambda: approvals.opinion("pref.drc", cid, Decision.REFUSE),
        ),
        (
            InputError,
            "needs at least one --condition",
            lambda: approvals.opinion("pref.drc", cid, Decision.APPROVE_WITH_CONDITIONS),
        ),
        (
            NotLead,
            "only the lead department pref.housing may withdraw",
            lambda: approvals.withdraw("akto.natres", cid, "x"),
        ),
    ]:
        with pytest.raises(error, match=re.escape(sentence)) as caught:
            await step()
        _one_sentence(str(caught.value))
    await approvals.opinion("pref.drc", cid, Decision.APPROVE)
    with pytest.raises(CaseClosed, match="already gave its opinion"):
        await approvals.opinion("pref.drc", cid, Decision.REFUSE, reasons="改主意")


async def test_the_projection_rebuilt_from_the_stream_is_the_same_and_signs_nothing_again(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    asked = await approvals.request_material("pref.emergency", cid, ["应急预案"])
    await approvals.supply_material(
        LEAD, cid, asked["request_id"], {"plan": tmp_path / "application.pdf"}
    )
    await publish_as(hub, LEAD, Kind.OPINION, cid, opinion_record(case, "pref.drc", "APPROVE"))
    for reviewer in REVIEWERS:
        await approvals.opinion(reviewer, cid, Decision.APPROVE)
    now = datetime.now(UTC)
    before = await case_view(hub.pool, approvals.config, cid, now=now)
    assert before["state"] == "decided" and len(before["refused"]) == 1

    await rebuild(hub.pool, hub.bus)
    assert await hub.pool.fetchval("SELECT count(*) FROM apr_cases") == 0
    await approvals.catch_up()
    after = await case_view(hub.pool, approvals.config, cid, now=now)
    assert after == before
    decisions = await _stream_count(hub, case_subject(LEAD, Kind.DECIDED, cid))
    assert decisions == 1


async def _stream_count(hub: Hub, subject: str = "evt.>") -> int:
    info = await jetstream(hub.nc).stream_info(HUB_STREAM, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


def _ours(notices: list[dict[str, Any]], case_id: str) -> set[str]:
    """The reviewers of one case among a sweep's notices (other tests' cases are open too)."""
    return {n["reviewer"] for n in notices if n["case_id"] == case_id}


def _one_sentence(message: str) -> None:
    assert message and "\n" not in message
    assert "<class" not in message and "Traceback" not in message and "Error" not in message


async def test_an_opinion_stored_after_its_deadline_counts_late_and_a_county_is_timed_by_its_stream(
    hub: Hub,
) -> None:
    """The state machine with injected storage times: assigned on the eve of National Day,
    five working days end with 13 October (China Standard Time)."""
    cst = timezone(timedelta(hours=8))
    case_id = new_event_id()
    opened = hub.seal(
        LEAD,
        OPENED_SCHEMA,
        {
            "case_id": case_id,
            "case_number": "SP-TEST-LATE",
            "case_type": PERMIT,
            "type_digest": "0" * 64,
            "title": "国庆前受理的项目",
            "applicant_name": "克州城建投资有限公司",
            "applicant_code": "",
            "unit": "akto",
            "lead": LEAD,
            "supervisor": "pref.office",
            "attachments": [],
        },
        subject=case_subject(LEAD, Kind.OPENED, case_id),
    )
    rules = {"working_days": 5, "refusal_ends_case": True, "material_requests": 1, "warn_days": 2}
    assigned = hub.seal(
        LEAD,
        ASSIGNED_SCHEMA,
        {
            "case_id": case_id,
            "opened_event_id": opened.event_id,
            "assignments": [
                {"reviewer": r, "label": "审查", "resources": [], **rules}
                for r in ("pref.drc", "pref.natres", "akto.natres")
            ],
        },
        subject=case_subject(LEAD, Kind.ASSIGNED, case_id),
    )
    record = {"case_id": case_id, "opened_event_id": opened.event_id}
    opinions = {
        r: hub.seal(
            r,
            OPINION_SCHEMA,
            opinion_record(record, r, "APPROVE"),
            subject=case_subject(r, Kind.OPINION, case_id),
        )
        for r in ("pref.drc", "pref.natres", "akto.natres")
    }
    events = [hub.verifier.verify(e) for e in (opened, assigned, *opinions.values())]
    config = load_config(hub.settings.home)
    async with hub.pool.acquire() as conn:
        # Rolled back at the end: this synthetic case is not on the stream.
        transaction = conn.transaction()
        await transaction.start()
        try:
            batch = Batch(config.clock, hub.scenario.operator, lambda p: True)
            await batch.load(conn, events)
            eve = datetime(2026, 9, 30, 10, tzinfo=cst)
            assert batch.apply(events[0], eve, 1) == batch.apply(events[1], eve, 2) == "applied"
            last_minute = datetime(2026, 10, 13, 23, 59, tzinfo=cst)
            assert batch.apply(events[2], last_minute, 3) == "applied"
            assert batch.apply(events[3], datetime(2026, 10, 14, 0, 1, tzinfo=cst), 4) == "late"
            # The county signed on the 13th with its uplink down; the hub stored it on the 15th.
            county = (datetime(2026, 10, 13, 16, tzinfo=cst), "GOV_AKTO")
            at_hub = datetime(2026, 10, 15, 9, tzinfo=cst)
            assert batch.apply(events[4], at_hub, 5, county) == "applied"
            await batch.write(conn)
            rows = {
                r["reviewer"]: (r["late"], r["timed_by"], r["opinion_at"])
                for r in await conn.fetch(
                    "SELECT reviewer, late, timed_by, opinion_at FROM apr_assignments"
                    " WHERE case_id = $1",
                    case_id,
                )
            }
            ready = await conn.fetchval(
                "SELECT ready_outcome FROM apr_cases WHERE case_id = $1", case_id
            )
        finally:
            await transaction.rollback()
    assert rows["pref.drc"] == (False, "hub", last_minute)
    assert rows["pref.natres"][0] is True
    assert rows["akto.natres"] == (False, "GOV_AKTO", county[0])
    assert ready == "approved"


async def test_serve_runs_the_approval_service_and_serves_cases_and_progress(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
    case = await open_permit(approvals, tmp_path)
    (service,) = build_services(hub.parts, ["approval"])
    async with TestClient(TestServer(make_app([service], {}))) as client:
        listed = await (await client.get("/approval/cases", params={"as": "akto.natres"})).json()
        assert case["case_id"] in [c["case_id"] for c in listed]
        shown = await client.get(f"/approval/cases/{case['case_id']}")
        assert (await shown.json())["case_number"] == case["case_number"]
        told = await (await client.get(f"/approval/progress/{case['case_number']}")).json()
        assert told["status"] == "审批中" and len(told["departments"]) == 4
        missing = await client.get("/approval/progress/SP-NO-SUCH-CASE")
        assert missing.status == 404 and "no case numbered" in (await missing.json())["error"]
        bad = await client.get("/approval/cases", params={"state": "lost"})
        assert bad.status == 400
