"""The sign-in pages and endpoints (the flow and its reasons are in `hub.console.auth`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.console import auth
from hub.console.context import AUTH_KEY
from hub.console.frame import page, t
from hub.console.html import h, hidden

MAX_JSON = 16 << 10


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _json(request: web.Request) -> dict[str, Any]:
    # Only application/json: a cross-site HTML form cannot send it without a CORS preflight,
    # which this origin never answers.
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json\n")
    if (request.content_length or 0) > MAX_JSON:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_JSON, actual_size=request.content_length or 0
        )
    try:
        data = json.loads(await request.text())
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON\n") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise web.HTTPBadRequest(text="send one JSON object of strings\n")
    return data


def _refused(exc: auth.SignInError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=403)


def routes() -> list[web.RouteDef]:
    """Sign-in, sign-out."""

    async def login_page(request: web.Request) -> web.Response:
        origin = _origin(request)
        return page(
            request,
            t(request, "Sign in"),
            h(
                "p",
                None,
                "在持有本单位密钥的机器上运行下面的命令，然后打开它给出的一次性登录链接。"
                " Run this on the machine that holds your participant's key, then open the "
                "one-time link it prints:",
            ),
            h(
                "pre",
                {"id": "login-command"},
                f"govhub console login --as PARTICIPANT_ID --url {origin}",
            ),
        )

    async def challenge(request: web.Request) -> web.Response:
        data = await _json(request)
        hub_auth = request.app[AUTH_KEY]
        try:
            return web.json_response(
                await hub_auth.challenge(data.get("participant", ""), _origin(request))
            )
        except auth.SignInError as exc:
            return _refused(exc)

    async def answer(request: web.Request) -> web.Response:
        data = await _json(request)
        hub_auth = request.app[AUTH_KEY]
        try:
            ticket = await hub_auth.answer(
                data.get("challenge_id", ""), data.get("key", ""), data.get("signature", "")
            )
        except auth.SignInError as exc:
            return _refused(exc)
        return web.json_response({"link": f"{_origin(request)}/console/login/ticket/{ticket}"})

    async def confirm(request: web.Request) -> web.Response:
        ticket = request.match_info["ticket"]
        who = await request.app[AUTH_KEY].ticket_participant(ticket)
        if who is None:
            return page(
                request,
                t(request, "Sign in"),
                h(
                    "p",
                    {"class": "error"},
                    "此登录链接无效、已使用或已过期。This sign-in link is "
                    "unknown, used or expired; run the login again.",
                ),
                status=403,
            )
        return page(
            request,
            t(request, "Sign in"),
            h(
                "form",
                {"method": "post", "action": "/console/login/ticket"},
                hidden("ticket", ticket),
                h("p", None, "以此身份登录 Sign in as ", h("b", {"id": "ticket-who"}, who), "?"),
                h("button", {"type": "submit", "id": "confirm"}, t(request, "Sign in")),
            ),
        )

    async def redeem(request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            raise web.HTTPForbidden(text="refused\n")
        form = await request.post()
        ticket = form.get("ticket")
        hub_auth = request.app[AUTH_KEY]
        try:
            token, _session = await hub_auth.redeem(ticket if isinstance(ticket, str) else "")
        except auth.SignInError as exc:
            return page(
                request, t(request, "Sign in"), h("p", {"class": "error"}, str(exc)), status=403
            )
        # No session fixation: a session this browser held before is ended, not carried over.
        await hub_auth.close(request.cookies.get(auth.COOKIE))
        response = web.HTTPSeeOther("/console/")
        response.set_cookie(
            auth.COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            max_age=int(auth.ABSOLUTE_S),
        )
        raise response

    async def logout(request: web.Request) -> web.Response:
        await request.app[AUTH_KEY].close(request.cookies.get(auth.COOKIE))
        response = web.HTTPSeeOther("/console/login")
        response.del_cookie(auth.COOKIE, path="/")
        raise response

    return [
        web.get("/console/login", login_page),
        web.post("/console/login/challenge", challenge),
        web.post("/console/login/answer", answer),
        web.get("/console/login/ticket/{ticket}", confirm),
        web.post("/console/login/ticket", redeem),
        web.post("/console/logout", logout),
    ]
