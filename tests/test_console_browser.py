"""The console in a real browser: Debian's Chromium through Playwright against `govhub serve`.

An auditor verifies an inclusion proof in the page (and a tampered tile makes it fail), an
office sends a document and sees the recipient's signed receipt, a directory request is
granted, and hostile titles show literally. Screenshots for docs/console.md are written when
GOVHUB_SCREENSHOTS names a folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.runtime import Hub
from tests.browser_support import chromium
from tests.console_support import NOTICE, Console, running_console, wait_for_checkpoint
from tests.directory_support import entry_file, register_population_schema

HOSTILE_TITLE = '<script>alert("x")</script><img src=x onerror=alert(1)> [/] gpj.\u202eexe'
SHOTS = os.environ.get("GOVHUB_SCREENSHOTS")


@pytest.fixture
async def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    async with running_console(hub, monkeypatch) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def signed_in(browser: Any, console: Console, participant: str) -> Any:
    """A fresh browser context signed in through the one-time link; returns its page."""
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    await page.goto(await console.ticket_link(participant))
    await page.click("#confirm")
    await page.wait_for_url("**/console/")
    assert await page.text_content("#who") == participant
    return page


async def outcome_of(page: Any) -> str:
    """The verification widget's final sentence (it says "verified" or "failed", not both)."""
    done = page.locator("section.verify .outcome.ok, section.verify .outcome.bad")
    await done.wait_for(timeout=30_000)
    return str(await done.text_content())


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        await asyncio.to_thread(Path(SHOTS).mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def logged(console: Console, count: int = 3) -> list[str]:
    hub = console.hub
    envs = [
        hub.seal("akto.civil", NOTICE, {"title": f"通知 {i}", "body": "正文"}) for i in range(count)
    ]
    await hub.publisher.publish_many(envs)
    size = (await hub.nc.jetstream().stream_info("GOVHUB")).state.messages
    await wait_for_checkpoint(console, size)
    return [e.event_id for e in envs]


async def test_an_auditor_verifies_an_inclusion_proof_in_the_browser(
    console: Console, browser: Any
) -> None:
    event_ids = await logged(console)
    page = await signed_in(browser, console, "pref.audit")
    await page.goto(f"{console.url}/console/audit")
    assert "verified in your browser" in await outcome_of(page)
    await shot(page, "audit-checkpoint")
    await page.goto(f"{console.url}/console/audit/event/{event_ids[1]}")
    assert "verified in your browser" in await outcome_of(page)
    assert "标题" in await page.text_content("#fields")
    await shot(page, "audit-event")
    await page.goto(f"{console.url}/console/audit/search?participant=akto.civil")
    assert event_ids[0] in await page.text_content("#results")
    await shot(page, "audit-search")


async def test_a_tampered_tile_fails_verification_in_the_browser(
    console: Console, browser: Any
) -> None:
    event_ids = await logged(console)
    page = await signed_in(browser, console, "pref.audit")

    async def tamper(route: Any) -> None:
        response = await route.fetch()
        body = bytearray(await response.body())
        body[0] ^= 0xFF
        for i in range(32, len(body), 32):
            body[i] ^= 0x01  # every hash of the tile, not only the first
        await route.fulfill(response=response, body=bytes(body))

    await page.route("**/console/log/tile/0/**", tamper)
    await page.goto(f"{console.url}/console/audit/event/{event_ids[0]}")
    said = await outcome_of(page)
    assert "verification failed" in said and "verified in your browser" not in said


async def test_an_older_checkpoint_is_consistent_with_the_latest_in_the_browser(
    console: Console, browser: Any
) -> None:
    await logged(console, 2)
    first = await console.hub.pool.fetchval(
        "SELECT min(size) FROM audit_checkpoints WHERE published_at IS NOT NULL AND size > 0"
    )
    await logged(console, 5)
    page = await signed_in(browser, console, "pref.audit")
    await page.goto(f"{console.url}/console/audit/consistency?old={first}")
    assert "verified in your browser" in await outcome_of(page)
    await shot(page, "audit-consistency")


async def test_an_office_sends_the_recipient_accepts_and_the_sender_sees_the_receipt(
    console: Console, browser: Any, tmp_path: Path
) -> None:
    document = tmp_path / "关于做好冬季安全生产工作的通知.txt"
    document.write_text("各县市人民政府：……", encoding="utf-8")
    sender = await signed_in(browser, console, "pref.office")
    await sender.goto(f"{console.url}/console/office")
    await sender.fill("#send input[name=title]", HOSTILE_TITLE)
    await sender.fill("#send input[name=doc_number]", "克政办发〔2026〕17号")
    await sender.fill("#send input[name=to]", "akto.office")
    await sender.fill("#send input[name=deadline]", "3d")
    await sender.set_input_files("#send input[name=file]", str(document))
    await sender.click("#send button[type=submit]")
    await sender.wait_for_load_state()
    assert "/console/office/doc/" in sender.url, (sender.url, await sender.content())
    doc_url = sender.url
    assert await sender.text_content("h1") == HOSTILE_TITLE.replace("\u202e", "⟦U+202E⟧")
    await shot(sender, "office-sent")

    recipient = await signed_in(browser, console, "akto.office")
    await recipient.goto(f"{console.url}/console/office")
    await recipient.click("#deliver")
    await recipient.wait_for_url("**/console/office")
    assert "delivered" in (await recipient.text_content("#inbox") or "")
    await shot(recipient, "office-inbox")
    await recipient.goto(doc_url)
    await recipient.click("#accept")
    await recipient.wait_for_url(doc_url)
    assert "accepted" in (await recipient.text_content("#recipients") or "")

    await sender.goto(doc_url)
    receipts = await sender.text_content("#recipients") or ""
    assert "accepted" in receipts and "akto.office/" in receipts  # the signing key
    await shot(sender, "office-receipt")
    assert sender.dialogs == [] and recipient.dialogs == []  # no markup ran


async def test_a_directory_request_is_granted_in_the_browser(
    console: Console, browser: Any
) -> None:
    from hub.directory.workflow import Directory

    hub = console.hub
    await register_population_schema(hub)
    await Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer).publish(
        "akto.stats", entry_file()
    )
    code = entry_file()["code"]

    requester = await signed_in(browser, console, "akto.civil")
    await requester.goto(f"{console.url}/console/directory?q=常住人口")
    await requester.click(f"#hits a:text('{code}')")
    await requester.fill("#request input[name=purpose]", "低保对象核查")
    await requester.fill("#request input[name=fields]", "township, residents")
    await shot(requester, "directory-entry")
    await requester.click("#request button[type=submit]")
    await requester.wait_for_url("**/console/directory/requests")
    assert "pending" in (await requester.text_content("#requests") or "")

    provider = await signed_in(browser, console, "akto.stats")
    await provider.goto(f"{console.url}/console/directory/requests")
    await shot(provider, "directory-requests")
    await provider.fill("#requests input[name=until]", "2027-06-30")
    await provider.click("#requests button.grant")
    await provider.wait_for_url("**/console/directory/requests")
    assert "granted" in (await provider.text_content("#requests") or "")

    await requester.reload()
    assert "granted" in (await requester.text_content("#requests") or "")
