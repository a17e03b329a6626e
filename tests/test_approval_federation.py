"""Parallel approval on real leaf nodes: a county department reviews with its uplink cut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hub.approval.model import Decision
from hub.approval.views import case_view
from hub.approval.workflow import Approvals
from hub.federation.arrival import wait_at_hub
from tests.approval_support import open_permit, review
from tests.federation import Topology, federated, scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def federation(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str
) -> AsyncIterator[Topology]:
    """The Kezhou federation with one hub node."""
    async with (
        scratch_database(pg_admin_dsn) as dsn,
        federated(tmp_path_factory.mktemp("approval"), dsn) as topology,
    ):
        yield topology


async def test_a_cut_off_county_keeps_reviewing_and_its_opinion_counts_from_its_own_stream(
    federation: Topology, tmp_path: Path
) -> None:
    top = federation
    approvals = Approvals(
        top.hub.pool, top.hub.settings, top.hub.trust, top.hub.bus, top.hub.signer
    )
    case = await open_permit(approvals, tmp_path)
    cid = case["case_id"]
    top.cut("akto")
    try:
        # Akto's land bureau signs while cut off: its own county's stream acknowledges it.
        offline = Approvals(
            top.hub.pool,
            top.hub.settings,
            top.hub.trust,
            top.hub.bus,
            top.hub.signer,
            approvals.config,
            arrival_wait_s=1.0,
        )
        queued = await offline.opinion(
            "akto.natres", cid, Decision.APPROVE, reasons="现场踏勘符合要求"
        )
        assert queued["state"] == "queued"
        assert [e["stream"] for e in queued["events"]] == ["GOV_AKTO"]
        # Meanwhile the prefecture's departments decide at the hub.
        for reviewer in ("pref.drc", "pref.natres", "pref.emergency"):
            meanwhile = await approvals.opinion(reviewer, cid, Decision.APPROVE)
        assert meanwhile["state"] == "open"
        assert review(meanwhile, "akto.natres")["state"] == "reviewing"
    finally:
        top.restore("akto")
    arrived = [(e["subject"], e["event_id"]) for e in queued["events"]]
    assert await wait_at_hub(top.hub.nc, arrived, timeout=60)
    await approvals.catch_up()
    done = await case_view(top.hub.pool, approvals.config, cid)
    assert (done["state"], done["outcome"]) == ("decided", "approved")
    opinions = [h for h in done["history"] if h["kind"] == "opinion"]
    county = next(h for h in opinions if h["signed_by"].startswith("akto.natres/"))
    # It reached the hub last, but counts from when its county stored it: before the others.
    assert county["timed_by"] == "GOV_AKTO"
    assert county["stored_at"] == max(h["stored_at"] for h in opinions)
    assert county["at"] < min(h["at"] for h in opinions if h is not county)
    natres = review(done, "akto.natres")
    assert (natres["timed_by"], natres["opinion_at"], natres["late"]) == (
        "GOV_AKTO",
        county["at"],
        False,
    )
