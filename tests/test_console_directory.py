"""The directory pages over HTTP: Chinese search, an entry, request, grant with conditions, deny."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub.directory.workflow import Directory
from hub.runtime import Hub
from tests.console_support import Console, csrf_of, running_console
from tests.directory_support import entry_file, register_population_schema

CODE = entry_file()["code"]


@pytest.fixture
async def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    await register_population_schema(hub)
    await Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer).publish(
        "akto.stats", entry_file()
    )
    async with running_console(hub, monkeypatch) as running:
        yield running


async def request_access(http: aiohttp.ClientSession, console: Console, purpose: str) -> str:
    async with http.get(f"{console.url}/console/directory/entry/{CODE}") as r:
        page = await r.text()
    assert "常住人口" in page  # the data items with their label_zh
    async with http.post(
        f"{console.url}/console/directory/entry/{CODE}/request",
        data={"csrf": csrf_of(page), "purpose": purpose, "fields": "township", "until": ""},
    ) as r:
        assert r.status == 200
        page = await r.text()
    found = re.search(r"<td>([^<]+)</td><td><a href=\"/console/directory/entry/", page)
    assert found, page
    return found.group(1)


async def test_a_chinese_search_finds_the_entry(console: Console) -> None:
    http = await console.session("akto.civil")
    async with http, http.get(f"{console.url}/console/directory", params={"q": "常住人口"}) as r:
        page = await r.text()
    assert CODE in page and "阿克陶县常住人口统计" in page


async def test_a_request_granted_with_conditions_shows_granted_to_both(console: Console) -> None:
    requester = await console.session("akto.civil")
    provider = await console.session("akto.stats")
    async with requester, provider:
        request_id = await request_access(requester, console, "低保核查")
        async with provider.get(f"{console.url}/console/directory/requests") as r:
            page = await r.text()
        assert request_id in page and "pending" in page
        async with provider.post(
            f"{console.url}/console/directory/requests/{request_id}/grant",
            data={"csrf": csrf_of(page), "fields": "township", "until": "2027-06-30"},
        ) as r:
            assert r.status == 200
        async with requester.get(f"{console.url}/console/directory/requests") as r:
            page = await r.text()
        assert "granted" in page and "2027-06-30" in page


async def test_a_denial_needs_a_reason_and_only_the_provider_may_answer(console: Console) -> None:
    requester = await console.session("akto.civil")
    provider = await console.session("akto.stats")
    async with requester, provider:
        request_id = await request_access(requester, console, "核查")
        base = f"{console.url}/console/directory/requests/{request_id}"
        async with requester.get(f"{console.url}/console/directory/requests") as r:
            token = csrf_of(await r.text())
        async with requester.post(f"{base}/grant", data={"csrf": token}) as r:
            assert r.status == 400  # the requester is not the provider
        async with provider.get(f"{console.url}/console/directory/requests") as r:
            token = csrf_of(await r.text())
        async with provider.post(f"{base}/deny", data={"csrf": token, "reason": ""}) as r:
            assert r.status == 400
        async with provider.post(f"{base}/deny", data={"csrf": token, "reason": "不符合条件"}) as r:
            assert r.status == 200
            assert "denied" in await r.text()
