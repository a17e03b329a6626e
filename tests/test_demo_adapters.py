"""The adapters chapter of `govhub demo` tells the truth: every fact it prints is checked here."""

from __future__ import annotations

from rich.console import Console

from hub.demo import Story
from hub.demo.adapters import CHAPTER, DECISIONS
from hub.runtime import Hub


async def test_the_adapters_chapter_runs_three_departments_end_to_end(hub: Hub) -> None:
    facts = await CHAPTER.run(hub, Story())
    adapters = facts["adapters"]
    assert len(adapters) == 6 and all(a["state"] == "stopped" for a in adapters.values())

    civil = facts["civil"]
    assert len(civil["register"]) == len(DECISIONS)
    assert {r["source"] for r in civil["register"]} == {"akto.civil"}
    assert [r["govhub_error"] for r in civil["dead_letters"]] == [
        "program '五保' is not one of 低保, 特困, 临时救助"
    ]
    assert adapters["akto-civil-outbox"]["filtered"] == 1

    office = facts["office"]
    assert "冬季安全生产通知.pdf" in office["sent"]
    assert "no recipients" in office["failed"]["会议纪要.docx"]
    assert office["waiting"] == ["扫描中.pdf.part"]
    assert sorted(office["inbox"]) == ["冬季安全生产通知.pdf", "冬季安全生产通知.pdf.toml"]
    assert office["arrived"] == ["冬季安全生产通知.pdf"]

    posts = {p["post"]: p for p in facts["stats"]["posts"]}
    assert posts["monthly release"]["status"] == 202
    assert posts["the same release re-posted"]["event_id"] == posts["monthly release"]["event_id"]
    assert posts["signed with a wrong key"]["status"] == 401
    assert posts["period 2026-13"]["status"] == 422
    (received,) = facts["stats"]["api_received"]
    assert received["event_id"] == posts["monthly release"]["event_id"]
    assert facts["stats"]["api_keys"] == [received["event_id"]]

    console = Console(record=True, width=140)
    CHAPTER.render(console, facts)
    text = console.export_text()
    assert "AKT-" in text and "akto-office/inbox" in text and "401" in text
    assert dict(CHAPTER.summary(facts))["adapter dead letters"] == "2"
