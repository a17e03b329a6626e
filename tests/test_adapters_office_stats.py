"""Reference adapters on a real hub: the office drop folder (documents), the statistics webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.stats import SAMPLE
from connectors.http import signed_headers
from hub.integration.adapter import parse_adapter_file
from hub.integration.host import build
from hub.ports import free_port
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.connector_contract import eventually
from tests.test_adapters import read_stream, start
from tests.test_connector_folder import drop_file

SECRET = "stats-webhook-secret"


OFFICE = """
[[adapters]]
name = "pref-office-out"
adapter = "office_documents"
participant = "pref.office"
[adapters.connector]
type = "folder"
path = "{root}/pref-office"
settle_seconds = 0.2
scan_interval = 0.1
[adapters.options]
default_to = ["akto.office"]

[[adapters]]
name = "akto-office-in"
adapter = "office_documents"
participant = "akto.office"
direction = "from_hub"
subjects = ["doc.*.*.sent.*"]
[adapters.connector]
type = "folder"
path = "{root}/akto-office"
"""


async def stop_all(running: list[tuple[asyncio.Event, asyncio.Task[None]]]) -> None:
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_a_dropped_file_reaches_the_recipients_inbox_with_a_delivery_receipt(
    hub: Hub, tmp_path: Path
) -> None:
    config = parse_adapter_file(OFFICE.format(root=tmp_path), tmp_path / "office.toml")
    out, inbox = (build(hub.parts, item) for item in config.adapters)
    running = [await start(out), await start(inbox)]
    root = tmp_path / "pref-office"
    try:
        drop_file(
            root,
            "冬季安全生产通知.pdf",
            b"%PDF-1.7 " + "冬季安全生产".encode() * 2000,
            sidecar='title = "关于做好冬季安全生产工作的通知"\n'
            'doc_number = "克政办发〔2026〕12号"\nurgency = "urgent"\n',
        )
        drop_file(root, "没有收件人.pdf", b"x", sidecar="to = []\n")
        drop_file(root, "坏的.pdf", b"y", sidecar='title = "t"\ncolour = "red"\n')
        await eventually(lambda: out.stats.delivered == 1, "the document sent")
        await eventually(lambda: out.stats.dead_lettered == 2, "two files refused")
        await eventually(lambda: inbox.stats.delivered == 1, "the document received")
    finally:
        await stop_all(running)

    sent = root / "sent"
    assert (sent / "冬季安全生产通知.pdf").exists()
    assert "doc " in (sent / "冬季安全生产通知.pdf.result.txt").read_text(encoding="utf-8")
    failed = root / "failed"
    assert "no recipients" in (failed / "没有收件人.pdf.reason.txt").read_text(encoding="utf-8")
    assert "colour" in (failed / "坏的.pdf.reason.txt").read_text(encoding="utf-8")

    received = tmp_path / "akto-office" / "inbox" / "冬季安全生产通知.pdf"
    assert received.read_bytes() == (sent / "冬季安全生产通知.pdf").read_bytes()
    sidecar = (received.parent / "冬季安全生产通知.pdf.toml").read_text(encoding="utf-8")
    assert "克政办发〔2026〕12号" in sidecar and 'sender = "pref.office"' in sidecar
    receipts = await read_stream(hub, HUB_STREAM, ["doc.akto.office.delivered.*"])
    assert len(receipts) == 1 and receipts[0].event is not None
    assert receipts[0].event.record["stored_by"] == "adapter:adapter_akto_office_in"
    letters = await read_stream(hub, QUARANTINE_STREAM, ["quarantine.unmappable"])
    assert len(letters) == 2


STATS = """
[[adapters]]
name = "artux-stats-webhook"
adapter = "monthly_statistics"
participant = "artux.stats"
[adapters.connector]
type = "http"
listen = "127.0.0.1:{port}"
path = "/figures"
hmac_secret = {{ env = "GOVHUB_TEST_STATS_SECRET" }}

[[adapters]]
name = "pref-stats-api"
adapter = "monthly_statistics"
participant = "pref.stats"
direction = "from_hub"
[adapters.connector]
type = "http"
url = "{api}"
"""


class StatsApi:
    """The prefecture statistics bureau's own API, receiving figures from the hub."""

    def __init__(self) -> None:
        self.received: dict[str, Any] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received[request.headers["Idempotency-Key"]] = await request.json()
        return web.json_response({"ok": True}, status=201)

    async def __aenter__(self) -> StatsApi:
        app = web.Application()
        app.router.add_post("/figures", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/figures"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def stats_api() -> AsyncIterator[StatsApi]:
    async with StatsApi() as api:
        yield api


async def post(url: str, body: bytes, secret: str = SECRET) -> tuple[int, dict[str, Any]]:
    headers = {**signed_headers(secret.encode(), body), "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_posted_figures_become_one_event_each_and_reach_the_consumers_api(
    hub: Hub, tmp_path: Path, stats_api: StatsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_STATS_SECRET", SECRET)
    port = free_port()
    text = STATS.format(port=port, api=stats_api.url)
    webhook, forward = (
        build(hub.parts, i) for i in parse_adapter_file(text, tmp_path / "s.toml").adapters
    )
    running = [await start(webhook), await start(forward)]
    url = f"http://127.0.0.1:{port}/figures"
    try:
        body = json.dumps(SAMPLE).encode()
        status, answer = await post(url, body)
        again_status, again = await post(url, body)  # the statistics system re-posts
        bad_status, bad = await post(url, json.dumps({**SAMPLE, "period": "2026-13"}).encode())
        forged_status, _ = await post(url, body, secret="not-the-secret")
        await eventually(lambda: len(stats_api.received) == 1, "the API to receive the figures")
    finally:
        await stop_all(running)
    assert (status, again_status) == (202, 202)
    assert answer["event_id"] == again["event_id"]
    assert bad_status == 422 and "2026-13" in bad["error"]
    assert forged_status == 401
    events = await read_stream(hub, HUB_STREAM, ["evt.artux.stats.>"])
    assert [d.envelope.event_id for d in events] == [answer["event_id"]]
    assert events[0].event is not None and events[0].event.record["unit"] == "artux"
    (delivered,) = stats_api.received.values()
    assert delivered["event_id"] == answer["event_id"]
    assert delivered["data"]["figures"]["A01"] == {
        "name": "地区生产总值",
        "value": 58.2,
        "unit": "亿元",
    }
    assert await read_stream(hub, QUARANTINE_STREAM, ["quarantine.>"]) == []
