"""The demo chapter on schema evolution tells the truth, and can be told twice on one hub."""

from __future__ import annotations

from rich.console import Console

from hub.demo import Story
from hub.demo.schemas import CHAPTER, V1, V2
from hub.runtime import Hub


async def test_the_schema_chapter_registers_refuses_and_reads_across_versions(hub: Hub) -> None:
    facts = await CHAPTER.run(hub, Story())
    assert [(r["version"], r["created"]) for r in facts["registered"]] == [(1, True), (2, True)]
    assert [r["registered_by"] for r in facts["registered"]] == ["akto.civil", "akto.civil"]
    [breaking, foreign] = facts["refused"]
    assert "not BACKWARD compatible with version 2" in breaking["error"]
    assert breaking["reasons"][0].startswith("fields[1].type (field amount_fen)")
    assert "artux.civil may not register" in foreign["error"]
    newer, older = facts["reads"]["pref.civil"], facts["reads"]["pref.finance"]
    assert [r["written_with"] for r in newer] == [V1.fingerprint_hex, V2.fingerprint_hex]
    assert [r["record"].get("channel") for r in newer] == [None, "农村信用社"]
    assert all("channel" not in r["record"] for r in older)
    assert [r["record"]["amount_fen"] for r in older] == [53_000, 48_500]

    again = await CHAPTER.run(hub, Story())
    assert [(r["version"], r["created"]) for r in again["registered"]] == [(1, False), (2, False)]
    assert len(again["reads"]["pref.civil"]) == 2

    console = Console(record=True, width=140)
    CHAPTER.render(console, facts)
    text = console.export_text()
    assert "低保金发放" in text and "农村信用社" in text and "— (not in its version)" in text
    assert ("schema registrations refused", "2") in CHAPTER.summary(facts)
