"""Parallel approval on one hub: opinions in parallel, refusals, 补正, withdrawal, forgery."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.approval.model import Decision, Kind
from hub.approval.views import progress
from hub.approval.workflow import Approvals
from hub.runtime import Hub
from tests.approval_support import COMPANY, LEAD, REVIEWERS, open_permit, review


async def test_four_departments_decide_in_parallel_and_the_lead_signs_the_decision_that_follows(
    hub: Hub, tmp_path: Path
) -> None:
    approvals = Approvals(hub)
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

    view = await progress(hub, approvals.config, done["case_number"])
    assert view["status"] == "已办结" and view["outcome"] == "附条件准予许可"
    assert {d["status"] for d in view["departments"]} == {"同意", "有条件同意"}
    assert view["departments"][0]["department"] == "州发展和改革委员会"
