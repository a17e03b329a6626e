"""The quarantine page: refused events and dead letters with their reasons, to whom they belong."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub import quarantine
from hub.envelope import Envelope
from hub.errors import Reason
from hub.integration.connector import Record
from hub.integration.deadletter import QuarantineDeadLetters
from hub.runtime import Hub
from hub.waits import poll
from tests.console_support import NOTICE, Console, running_console

HOSTILE_DETAIL = "[red]字段缺失[/red] <script>alert(1)</script>"


@pytest.fixture
async def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    async with running_console(hub, monkeypatch) as running:
        yield running


async def _quarantined(hub: Hub) -> None:
    """A forged event of akto.civil (refused by the audit service), then a dead letter of an
    akto.stats adapter, both in QUARANTINE."""

    async def entries(count: int) -> bool:
        return len(await quarantine.recent(hub.nc, limit=10)) == count

    env = hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"})
    altered = hub.schemas.by_name(NOTICE).encode({"title": "T", "body": "b"})
    await hub.publisher.publish(Envelope(env.subject, env.headers, altered))
    assert await poll(lambda: entries(1), timeout=30, every=0.1), "the audit service refuses it"
    letters = QuarantineDeadLetters(hub.publisher, adapter="stats-outbox", participant="akto.stats")
    await letters.put(
        Record(key="row <b>7</b>", value={"month": "2026-11"}), Reason.UNMAPPABLE, HOSTILE_DETAIL
    )
    assert await entries(2)


async def _page(console: Console, participant: str) -> str:
    http = await console.session(participant)
    async with http, http.get(f"{console.url}/console/quarantine") as r:
        assert r.status == 200
        return await r.text()


async def test_the_operator_sees_every_refusal_and_dead_letter_newest_first(
    console: Console,
) -> None:
    await _quarantined(console.hub)
    page = await _page(console, console.hub.scenario.operator)
    assert page.index("unmappable") < page.index("bad_signature"), "newest first"
    assert "stats-outbox" in page and "evt.akto.civil.notice" in page


async def test_a_department_sees_only_what_claims_to_come_from_it(console: Console) -> None:
    await _quarantined(console.hub)
    civil = await _page(console, "akto.civil")
    assert "bad_signature" in civil and "unmappable" not in civil
    stats = await _page(console, "akto.stats")
    assert "unmappable" in stats and "bad_signature" not in stats
    assert "隔离区为空" in await _page(console, "wuqia.office")


async def test_a_dead_letters_text_is_shown_literally_never_as_markup(console: Console) -> None:
    await _quarantined(console.hub)
    page = await _page(console, "akto.stats")
    assert "<script>alert(1)</script>" not in page and "<b>7</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[red]字段缺失[/red]" in page
    assert "row &lt;b&gt;7&lt;/b&gt;" in page


async def test_the_newest_entries_are_read_by_sequence_without_reading_the_whole_stream(
    hub: Hub,
) -> None:
    letters = QuarantineDeadLetters(hub.publisher, adapter="a", participant="akto.stats")
    for n in range(30):
        await letters.put(Record(key=f"r{n}", value={"n": n}), Reason.UNMAPPABLE, f"d{n}")
    newest = await quarantine.recent(hub.nc, limit=5)
    assert [e.fields["record_key"] for e in newest] == ["r29", "r28", "r27", "r26", "r25"]
    looked_at = await quarantine.recent(hub.nc, limit=100, window=10)
    assert len(looked_at) == 10, "no more than the window is read"
    assert await quarantine.recent(hub.nc, source="wuqia.office") == []
