"""A real `govhub serve` with the console on free ports, and signing in to it as a participant."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from hub.console.app import ADDRESS_ENV
from hub.console.auth import COOKIE, sign_challenge
from hub.ports import free_port
from hub.runtime import Hub
from hub.serve import serve

SERVICES = ["audit", "directory", "exchange", "console"]
NOTICE = "gov.common.v1.Notice"


@dataclass
class Console:
    hub: Hub
    url: str

    async def ticket_link(self, participant: str) -> str:
        """The one-time sign-in link, by the challenge flow `govhub console login` runs."""
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.url}/console/login/challenge", json={"participant": participant}
            ) as r:
                assert r.status == 200, await r.text()
                challenge = await r.json()
            signed = sign_challenge(
                self.hub.keystore.current(participant), challenge["challenge"], self.url
            )
            async with http.post(
                f"{self.url}/console/login/answer",
                json={"challenge_id": challenge["challenge_id"], **signed},
            ) as r:
                assert r.status == 200, await r.text()
                return str((await r.json())["link"])

    async def session(self, participant: str) -> aiohttp.ClientSession:
        """An HTTP client signed in as `participant` (close it)."""
        link = await self.ticket_link(participant)
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            async with http.get(link) as r:
                assert r.status == 200
            ticket = link.rsplit("/", 1)[1]
            async with http.post(
                f"{self.url}/console/login/ticket", data={"ticket": ticket}, allow_redirects=False
            ) as r:
                assert r.status == 303, await r.text()
                assert COOKIE in r.cookies
        except BaseException:
            await http.close()
            raise
        return http


def csrf_of(page: str) -> str:
    """The CSRF token a console page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def wait_for_checkpoint(console: Console, size: int, timeout: float = 60.0) -> None:
    """Until the published checkpoint covers `size` leaves."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{console.url}/console/log/checkpoint") as r:
                if r.status == 200 and int((await r.text()).split("\n")[1]) >= size:
                    return
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    """`govhub serve` (audit, directory, exchange, console) in this process."""
    port = free_port()
    monkeypatch.setenv(ADDRESS_ENV, f"127.0.0.1:{port}")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub.parts, only=SERVICES, port=free_port(), stop=stop))
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60), aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                if task.done():
                    task.result()
                await asyncio.sleep(0.1)
        yield Console(hub, url)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
