"""The console over HTTP: sign-in required, CSRF refused, hostile values shown as literal text."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.console.auth import COOKIE, sign_challenge
from hub.console.html import h, text
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.console_support import NOTICE, Console, csrf_of, running_console, wait_for_checkpoint
from tests.drills import Postgres, wait_until
from tests.servers import NatsServer


@pytest.fixture
async def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    async with running_console(hub, monkeypatch) as running:
        yield running


HOSTILE = [
    "<script>alert(1)</script>",
    "[/]",
    "[bold red]x[/]",
    '"><img src=x onerror=alert(1)>',
    "gpj.\u202eexe",
    "\u2066isolate\u2069 and \u200f marks",
    "x" * 20_000,
]


def test_text_escapes_markup_and_shows_invisible_characters() -> None:
    assert text("<script>&'\"") == "&lt;script&gt;&amp;&#x27;&quot;"
    assert text("a\u202eb") == "a⟦U+202E⟧b"
    assert text("[/]") == "[/]"
    assert h("td", {"title": '"><b>'}, "<b>") == '<td title="&quot;&gt;&lt;b&gt;">&lt;b&gt;</td>'
    with pytest.raises(ValueError):
        h("td onclick=x")


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/audit",
        "/console/office",
        "/console/directory",
        "/console/quarantine",
        "/console/audit/bundle",
    ],
)
async def test_every_page_but_sign_in_needs_a_session(console: Console, path: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(console.url + path, allow_redirects=False) as r,
    ):
        assert r.status == 303
        assert r.headers["Location"] == "/console/login"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]


async def test_public_paths_answer_without_a_session(console: Console) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/console/login", "/console/static/verify.js"):
            async with http.get(console.url + path) as r:
                assert r.status == 200, path
        async with http.get(console.url + "/console/login") as r:
            csp = r.headers["Content-Security-Policy"]
            assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
            assert "<script>" not in await r.text()  # no inline script at all


async def test_a_post_without_a_session_is_unauthorized(console: Console) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{console.url}/console/office/deliver", data={"csrf": "x"}) as r,
    ):
        assert r.status == 401


async def test_session_cookie_is_httponly_and_samesite_strict(console: Console) -> None:
    link = await console.ticket_link("akto.office")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{console.url}/console/login/ticket",
            data={"ticket": link.rsplit("/", 1)[1]},
            allow_redirects=False,
        ) as r,
    ):
        morsel = r.cookies[COOKIE]
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        # The ticket is used once.
        async with http.post(
            f"{console.url}/console/login/ticket", data={"ticket": link.rsplit("/", 1)[1]}
        ) as again:
            assert again.status == 403


async def test_a_challenge_signed_by_another_key_is_refused(console: Console) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{console.url}/console/login/challenge", json={"participant": "akto.office"}
        ) as r:
            challenge = await r.json()
        other = console.hub.keystore.current("wuqia.office")
        forged = base64.b64encode(other.private_key.sign(challenge["challenge"].encode())).decode()
        key = f"akto.office/{console.hub.keystore.current('akto.office').key_id}"
        async with http.post(
            f"{console.url}/console/login/answer",
            json={"challenge_id": challenge["challenge_id"], "key": key, "signature": forged},
        ) as r:
            assert r.status == 403
            assert "does not verify" in (await r.json())["error"]
        # The challenge is gone after one answer, right or wrong.
        async with http.post(
            f"{console.url}/console/login/answer",
            json={"challenge_id": challenge["challenge_id"], "key": key, "signature": forged},
        ) as r:
            assert "unknown, used or expired" in (await r.json())["error"]


async def test_a_form_post_without_the_csrf_token_is_refused(console: Console) -> None:
    http = await console.session("akto.office")
    async with http:
        for data in ({}, {"csrf": "not-the-token"}):
            async with http.post(f"{console.url}/console/office/deliver", data=data) as r:
                assert r.status == 403
                assert "CSRF" in await r.text()
        async with http.get(f"{console.url}/console/office") as r:
            token = csrf_of(await r.text())
        async with http.post(
            f"{console.url}/console/office/deliver",
            data={"csrf": token},
            headers={"Origin": "http://evil.example"},
        ) as r:
            assert r.status == 403
        form = aiohttp.FormData({"title": "x", "csrf": token})
        form.add_field("file", b"content", filename="a.txt")
        async with http.post(f"{console.url}/console/office/send", data=form) as r:
            # A multipart form must carry its CSRF token first.
            assert r.status == 403
        async with http.post(
            f"{console.url}/console/office/deliver", data={"csrf": token}, allow_redirects=False
        ) as r:
            assert r.status == 303


async def test_hostile_titles_and_fields_show_as_literal_text(console: Console) -> None:
    hub = console.hub
    envs = [hub.seal("akto.civil", NOTICE, {"title": v, "body": v}) for v in HOSTILE]
    await hub.publisher.publish_many(envs)
    http = await console.session("pref.audit")
    async with http:
        for env, value in zip(envs, HOSTILE, strict=True):
            for _ in range(200):
                async with http.get(f"{console.url}/console/audit/event/{env.event_id}") as r:
                    if r.status == 200:
                        page = await r.text()
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"event {env.event_id} never reached the log")
            assert str(text(value)) in page
            if "<" in value:
                assert value not in page
            assert "\u202e" not in page and "\u2066" not in page
        await wait_for_checkpoint(console, 1)


async def test_the_evidence_bundle_downloads_for_the_offline_verifier(console: Console) -> None:
    hub = console.hub
    await hub.publisher.publish(hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"}))
    size = (await hub.nc.jetstream().stream_info("GOVHUB")).state.messages
    await wait_for_checkpoint(console, size)
    http = await console.session("pref.audit")
    async with http, http.get(f"{console.url}/console/audit/bundle") as r:
        assert r.status == 200
        assert "attachment" in r.headers["Content-Disposition"]
        assert (await r.json())["format"]


def test_the_helper_refuses_to_sign_a_challenge_relayed_from_another_console() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub.console.auth import SignInError, challenge_text, sign_challenge
    from hub.envelope import SigningKey

    key = SigningKey.from_private("akto.office", Ed25519PrivateKey.generate())
    text = challenge_text("http://10.0.0.9:8490", "akto.office", "n", 2e9)
    assert sign_challenge(key, text, "http://10.0.0.9:8490/console")["key"].startswith("akto.")
    with pytest.raises(SignInError, match="another console"):
        sign_challenge(key, text, "http://127.0.0.1:8490")
    with pytest.raises(SignInError, match="not akto.office"):
        sign_challenge(key, text.replace("akto.office", "pref.office"), "http://10.0.0.9:8490")
    with pytest.raises(SignInError, match="not a sign-in challenge"):
        sign_challenge(key, "govhub-sig-v1\nsubject\n", None)


async def test_govhub_console_login_prints_a_link_that_signs_the_browser_in(
    console: Console,
) -> None:
    import json

    from click.testing import CliRunner

    from hub.cli import cli

    home = str(console.hub.settings.home.root)
    args = ["--home", home, "console", "login", "--as", "akto.office", "--url", console.url]
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    link = json.loads(result.output)["link"]
    async with aiohttp.ClientSession() as http, http.get(link) as r:
        assert r.status == 200
        assert "akto.office" in await r.text()
    refused = await asyncio.to_thread(
        CliRunner().invoke, cli, ["--home", home, "console", "login", "--as", "nobody.x",
                                  "--url", console.url, "--json"]
    )  # fmt: skip
    assert refused.exit_code != 0


def _cookie(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == COOKIE)


async def _as(url: str, cookie: str, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}{path}", headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
        ) as r,
    ):
        return r.status, await r.text()


async def test_a_session_outlives_the_serve_process_that_signed_the_person_in(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_console(hub, monkeypatch) as first:
        http = await first.session("akto.office")
        cookie = _cookie(http)
        await http.close()
    async with running_console(hub, monkeypatch) as restarted:
        status, page = await _as(restarted.url, cookie, "/console/office")
    assert status == 200 and "akto.office" in page
    # What the database holds is the cookie's digest, never the cookie itself.
    stored = await hub.pool.fetch("SELECT digest FROM console_sessions")
    assert [r["digest"] for r in stored] == [hashlib.sha256(cookie.encode()).hexdigest()]


async def test_serve_processes_share_sign_ins_and_each_secret_works_once_across_them(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_console(hub, monkeypatch) as a,
        running_console(hub, monkeypatch) as b,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"{a.url}/console/login/challenge", json={"participant": "wuqia.office"}
        ) as r:
            challenge = await r.json()
        signed = sign_challenge(hub.keystore.current("wuqia.office"), challenge["challenge"])
        answer = {"challenge_id": challenge["challenge_id"], **signed}
        async with http.post(f"{b.url}/console/login/answer", json=answer) as r:
            assert r.status == 200, "a challenge opened on one process is answered on another"
            ticket = (await r.json())["link"].rsplit("/", 1)[1]
        async with http.post(f"{a.url}/console/login/answer", json=answer) as r:
            assert r.status == 403 and "unknown, used or expired" in (await r.json())["error"]
        async with http.post(
            f"{a.url}/console/login/ticket", data={"ticket": ticket}, allow_redirects=False
        ) as r:
            assert r.status == 303
            cookie = r.cookies[COOKIE].value
        async with http.post(
            f"{b.url}/console/login/ticket", data={"ticket": ticket}, allow_redirects=False
        ) as r:
            assert r.status == 403, "a ticket redeemed on one process is used up on all"
        status, page = await _as(b.url, cookie, "/console/office")
        assert status == 200, "a session opened on one process is valid on another"
        async with http.post(
            f"{b.url}/console/logout",
            data={"csrf": csrf_of(page)},
            headers={"Cookie": f"{COOKIE}={cookie}"},
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        status, _ = await _as(a.url, cookie, "/console/office")
        assert status == 303, "signed out on one process is signed out on every one"


async def test_the_chosen_language_is_kept_with_the_session(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_console(hub, monkeypatch) as first:
        http = await first.session("akto.office")
        async with http.get(f"{first.url}/console/lang/en", allow_redirects=False) as r:
            assert r.status == 303
        cookie = _cookie(http)
        await http.close()
    async with running_console(hub, monkeypatch) as restarted:
        page = (await _as(restarted.url, cookie, "/console/"))[1]
    assert "中文" in page, "the page offers Chinese: it is shown in English"


async def test_while_postgresql_is_down_a_signed_in_page_is_503_and_the_session_outlives_it(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sessions are in PostgreSQL: while it is away a sign-in cannot be checked, which must read
    # as an outage to retry, never as "signed out". This PostgreSQL is the test's own, to crash.
    postgres = Postgres(tmp_path / "pg")
    postgres.start()
    try:
        settings = Settings(Home(tmp_path / "home"), nats_server.url, postgres.url)
        async with open_hub(settings) as hub, running_console(hub, monkeypatch) as console:
            http = await console.session("akto.office")
            cookie = _cookie(http)
            await http.close()
            await asyncio.to_thread(postgres.kill)
            status, page = await _as(console.url, cookie, "/console/office")
            assert status == 503 and "PostgreSQL" in page, page
            await asyncio.to_thread(postgres.start)

            async def back() -> bool:
                return (await _as(console.url, cookie, "/console/office"))[0] == 200

            await wait_until(back, timeout=60, what="the signed-in page after the restart")
    finally:
        postgres.stop()
