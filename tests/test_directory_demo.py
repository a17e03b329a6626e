"""The directory chapter of `govhub demo` tells the truth: found, refused, granted, received."""

from __future__ import annotations

import io

from rich.console import Console

from hub.demo import Story
from hub.demo.directory import CHAPTER, NOVEMBER
from hub.runtime import Hub


async def test_the_chapter_finds_by_a_chinese_keyword_refuses_before_the_grant_then_delivers(
    hub: Hub,
) -> None:
    facts = await CHAPTER.run(hub, Story())
    assert facts["code"] in [hit["code"] for hit in facts["found"]]
    assert facts["request_state"] == "pending"
    assert facts["shared_before_grant"] == 0
    assert "still pending" in facts["refusal"]
    assert facts["grant_state"] == "granted"
    assert facts["received"] == [
        {"township": r["township"], "residents": r["residents"]} for r in NOVEMBER
    ]
    assert facts["open_datasets"] == 1
    out = io.StringIO()
    CHAPTER.render(Console(file=out, width=120), facts)
    assert "still pending" in out.getvalue()
    assert dict(CHAPTER.summary(facts))["data refused before the grant"] == "yes"


async def test_the_chapter_runs_again_in_the_same_home(hub: Hub) -> None:
    await CHAPTER.run(hub, Story())
    again = await CHAPTER.run(hub, Story())
    assert again["version"] == 2 and again["grant_state"] == "granted"
    assert "still pending" in again["refusal"]  # last run's grant was revoked first
    assert len(again["received"]) == len(NOVEMBER)
