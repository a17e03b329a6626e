"""The approval chapter of `govhub demo` tells the truth, and the CLI speaks for it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from hub.cli import cli
from hub.demo import Story
from hub.demo.approval import CHAPTER, MISSING
from hub.display import literal
from hub.errors import NotAssigned
from hub.home import Settings
from hub.runtime import Hub


async def test_the_chapter_decides_a_permit_across_four_departments_in_time_and_proves_it(
    hub: Hub,
) -> None:
    facts = await CHAPTER.run(hub, Story())
    assert (facts["state"], facts["outcome"]) == ("decided", "approved_with_conditions")
    assert set(facts["reviewers"]) == {"pref.drc", "pref.natres", "pref.emergency", "akto.natres"}
    assert facts["all_in_time"]
    assert facts["material"] == {
        "items": [MISSING],
        "status_while_waiting": "待补正",
        "paused_while_waiting": True,
        "state_after_supply": "reviewing",
    }
    assert facts["resource"]["access"] == facts["resource"]["as_seen_in_case"] == "granted"
    assert facts["progress"]["outcome"] == "附条件准予许可"
    leaves = facts["audit"]["leaves"]
    assert [leaf["type"] for leaf in leaves].count("Opinion") == 4
    assert leaves[-1]["type"] == "CaseDecided" and leaves[-1]["signed_by"].startswith(
        "pref.housing/"
    )
    assert facts["audit"]["verified_offline"]
    assert "cut_off" not in facts  # a single node has no uplink to cut
    out = io.StringIO()
    CHAPTER.render(Console(file=out, width=140), facts)
    assert "govhub demo --federated" in out.getvalue() and "verified offline" in out.getvalue()
    assert dict(CHAPTER.summary(facts))["reviews decided in time"] == "4 of 4"
    again = await CHAPTER.run(hub, Story())  # a demo run again in the same home
    assert again["outcome"] == "approved_with_conditions" and again["case_id"] != facts["case_id"]


TITLE = "美食城[red]餐饮店[/red]\x1b[2J食品经营许可"


@pytest.fixture
def run(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--home", str(hub_settings.home.root), *args], catch_exceptions=False
        )

    return invoke


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_case_goes_through_the_cli_and_the_supervisor_and_applicant_see_it(
    run: Any, tmp_path: Path
) -> None:
    types = _json(run("approval", "types", "--json"))
    assert {t["name"] for t in types["types"]} >= {"construction-permit", "food-business"}
    assert "2026" in types["calendar"]
    docs = []
    for name in ("application", "premises"):
        (tmp_path / f"{name}.pdf").write_bytes(b"%PDF-1.7 " + name.encode())
        docs += ["--doc", f"{name}={tmp_path / f'{name}.pdf'}"]
    case = _json(
        run(
            "approval", "open", "--as", "pref.market", "--type", "food-business",
            "--title", TITLE, "--applicant", "阿图什市美食城餐饮有限公司",
            "--unit", "artux", *docs, "--json",
        )
    )  # fmt: skip
    cid = case["case_id"]
    with pytest.raises(NotAssigned, match="pref.drc is not a reviewer of case"):
        run("approval", "opinion", cid, "--as", "pref.drc", "--decision", "approve")
    _json(run("approval", "opinion", cid, "--as", "pref.health", "--decision", "approve", "--json"))
    done = _json(
        run(
            "approval", "opinion", cid, "--as", "artux.market", "--decision",
            "approve-with-conditions", "--condition", "三个月内完成后厨改造", "--json",
        )
    )  # fmt: skip
    assert (done["state"], done["outcome"]) == ("decided", "approved_with_conditions")
    shown = run("approval", "progress", case["case_number"])
    assert shown.exit_code == 0, shown.output
    assert "已办结" in shown.stdout and "有条件同意" in shown.stdout and "审查部门" in shown.stdout
    # The applicant's title is data: it prints literally, markup and escapes shown as written.
    for command in ("progress", "show"):
        out = run("approval", command, cid).stdout
        assert literal(TITLE) in out  # markup and the escape shown as written
        assert "\x1b" not in out  # no control sequence reaches the terminal
    listed = _json(run("approval", "cases", "--as", "pref.health", "--json"))
    assert [c["case_id"] for c in listed] == [cid]
    bench = _json(
        run("bench", "approval", "--cases", "20", "--paced", "10", "--rate", "50", "--json")
    )
    assert bench["cases"] == 20 and bench["refused"] == 0
    assert bench["completed"]["cases_per_s"] > 0
    assert bench["paced"]["last_opinion_to_decision_stored"]["p99_ms"] > 0
