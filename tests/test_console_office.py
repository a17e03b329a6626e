"""The office pages over HTTP: sending, receiving, answering with signed receipts, overdue marks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub.runtime import Hub
from tests.console_support import Console, csrf_of, running_console


@pytest.fixture
async def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    async with running_console(hub, monkeypatch) as running:
        yield running


async def send(http: aiohttp.ClientSession, console: Console, **fields: str) -> str:
    """Send through the form; returns the document page's URL."""
    async with http.get(f"{console.url}/console/office") as r:
        token = csrf_of(await r.text())
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", "正文".encode(), filename="通知.txt", content_type="text/plain")
    async with http.post(f"{console.url}/console/office/send", data=form) as r:
        assert r.status == 200, await r.text()
        assert "/console/office/doc/" in str(r.url)
        return str(r.url)


async def test_a_sent_document_is_received_rejected_with_a_reason_and_the_receipt_is_signed(
    console: Console,
) -> None:
    sender = await console.session("pref.office")
    recipient = await console.session("wuqia.office")
    async with sender, recipient:
        doc_url = await send(
            sender, console, title="关于报送统计数据的通知", to="wuqia.office", deadline="2d"
        )
        doc_id = doc_url.rsplit("/", 1)[1]
        async with recipient.get(f"{console.url}/console/office") as r:
            page = await r.text()
            assert "关于报送统计数据的通知" in page
        async with recipient.post(
            f"{console.url}/console/office/deliver", data={"csrf": csrf_of(page)}
        ) as r:
            assert r.status == 200
        async with recipient.get(doc_url) as r:
            page = await r.text()
        assert 'id="accept"' in page
        async with recipient.post(
            f"{doc_url}/answer",
            data={"csrf": csrf_of(page), "decision": "reject", "reason": "数据口径不符"},
        ) as r:
            assert r.status == 200
        async with sender.get(doc_url) as r:
            page = await r.text()
        assert "rejected: 数据口径不符" in page
    # The receipt is the signed event `doc receipt --reject` publishes, in the exchange record.
    row = await console.hub.pool.fetchrow(
        "SELECT headers FROM doc_events WHERE doc_id = $1 AND kind = 'rejected'", doc_id
    )
    assert json.loads(row["headers"])["govhub-key"].startswith("wuqia.office/")


async def test_a_rejection_without_a_reason_and_an_answer_by_a_non_recipient_are_refused(
    console: Console,
) -> None:
    sender = await console.session("pref.office")
    async with sender:
        doc_url = await send(sender, console, title="通知", to="akto.office")
        async with sender.get(doc_url) as r:
            page = await r.text()
        for data in ({"decision": "reject", "reason": " "}, {"decision": "accept"}):
            async with sender.post(f"{doc_url}/answer", data={"csrf": csrf_of(page), **data}) as r:
                assert r.status == 400
                assert 'class="error"' in await r.text()


async def test_a_document_past_its_deadline_is_marked_overdue_in_the_inbox(
    console: Console,
) -> None:
    from datetime import UTC, datetime, timedelta

    sender = await console.session("pref.office")
    recipient = await console.session("akqi.office")
    async with sender, recipient:
        doc_url = await send(sender, console, title="限时通知", to="akqi.office", deadline="1d")
        doc_id = doc_url.rsplit("/", 1)[1]
        # The sender's deadline passing is simulated on the stored copy, not by waiting a day.
        await console.hub.pool.execute(
            "UPDATE doc_documents SET deadline = $2 WHERE doc_id = $1",
            doc_id,
            datetime.now(UTC) - timedelta(hours=1),
        )
        async with recipient.get(f"{console.url}/console/office") as r:
            page = await r.text()
        assert 'class="overdue"' in page and "已逾期" in page


async def test_a_hostile_title_is_refused_or_shown_literally_never_as_markup(
    console: Console,
) -> None:
    sender = await console.session("pref.office")
    async with sender:
        doc_url = await send(sender, console, title="<b>加粗</b> [red]x[/]", to="akto.office")
        async with sender.get(doc_url) as r:
            page = await r.text()
        assert "&lt;b&gt;加粗&lt;/b&gt; [red]x[/]" in page
        assert "<b>加粗</b>" not in page


async def test_the_sender_recalls_from_the_recipients_that_have_not_answered_and_no_one_else_may(
    console: Console,
) -> None:
    sender = await console.session("pref.office")
    early = await console.session("akto.office")
    async with sender, early:
        doc_url = await send(
            sender, console, title="关于调整会议时间的通知", to="akto.office,wuqia.office"
        )
        doc_id = doc_url.rsplit("/", 1)[1]
        async with early.get(f"{console.url}/console/office") as r:
            page = await r.text()
        async with early.post(
            f"{console.url}/console/office/deliver", data={"csrf": csrf_of(page)}
        ) as r:
            assert r.status == 200
        async with early.get(doc_url) as r:
            page = await r.text()
        assert 'id="recall"' not in page, "only the sender is offered a recall"
        async with early.post(
            f"{doc_url}/answer", data={"csrf": csrf_of(page), "decision": "accept"}
        ) as r:
            assert r.status == 200
        async with early.post(
            f"{doc_url}/recall", data={"csrf": csrf_of(page), "reason": "不是我发的"}
        ) as r:
            assert r.status == 400
            assert "only its sender pref.office may recall" in await r.text()
        async with sender.get(doc_url) as r:
            page = await r.text()
        assert "撤回 (wuqia.office)" in page, "the form names who it withdraws from: not akto"
        async with sender.post(
            f"{doc_url}/recall", data={"csrf": csrf_of(page), "reason": "会议时间有误"}
        ) as r:
            assert r.status == 200
            page = await r.text()
        assert "会议时间有误" in page and 'id="recall"' not in page
        async with sender.post(
            f"{doc_url}/recall", data={"csrf": csrf_of(page), "reason": "again"}
        ) as r:
            assert r.status == 400
            assert "was already recalled" in await r.text()
    states = dict(
        await console.hub.pool.fetch(
            "SELECT recipient, state FROM doc_recipients WHERE doc_id = $1", doc_id
        )
    )
    assert states == {"akto.office": "accepted", "wuqia.office": "recalled"}
    # The recall is the signed event `doc recall` publishes, by the sender's key.
    row = await console.hub.pool.fetchrow(
        "SELECT headers FROM doc_events WHERE doc_id = $1 AND kind = 'recalled'", doc_id
    )
    assert json.loads(row["headers"])["govhub-key"].startswith("pref.office/")
