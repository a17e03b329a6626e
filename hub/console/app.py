"""The console's aiohttp application and the `console` service of `govhub serve`.

Every response carries a strict Content-Security-Policy (scripts, styles and connections from
this origin only; no inline script or style at all, so no nonce or hash is needed), and pages
are never cached or framed. The middleware order is the security order: headers on every
answer, then sign-in (anything under /console/ but the sign-in pages, static files and the
public tlog-tiles API needs a session), then CSRF on every POST. A govhub error raised by a
service is shown as its one sentence, escaped like every other value.

The service listens on its own address (`govhub serve --console HOST:PORT`, env
`GOVHUB_CONSOLE_HTTP`, default 127.0.0.1:8490) beside the hub's HTTP API.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from hub.audit import api
from hub.audit.service import AuditLog
from hub.collaborators import Parts
from hub.console import auth
from hub.console.auth import SESSION_KEY
from hub.console.context import AUDIT_KEY, AUTH_KEY, PARTS_KEY, AuditHolder
from hub.console.frame import page, problem, t
from hub.console.html import h
from hub.errors import (
    GovhubError,
    NotInLog,
    ServerUnavailable,
    UnknownDocument,
    UnknownRequest,
    UnknownResource,
)
from hub.listen import parse_address, start_site
from hub.outage import describe, is_transient

log = structlog.get_logger("hub.console")

ADDRESS_ENV = "GOVHUB_CONSOLE_HTTP"
DEFAULT_ADDRESS = "127.0.0.1:8490"
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # A sign-in link must not leak through a Referer to another site; "no-referrer" would also
    # make the browser send `Origin: null` on our own forms, which the origin check refuses.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PUBLIC_PREFIXES = ("/console/login", "/console/static/", "/console/log/")
PUBLIC_PATHS = frozenset({"/healthz", "/", "/console/login"})
MULTIPART_CSRF_CHECKED = frozenset({"/console/office/send"})
"""POST routes that read a multipart body and check its leading `csrf` part themselves."""
NOT_FOUND = (NotInLog, UnknownDocument, UnknownRequest, UnknownResource)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith(("/console/static/", "/console/log/")):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        session = await request.app[AUTH_KEY].session(request.cookies.get(auth.COOKIE))
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Sessions are in PostgreSQL: while it is away nobody's sign-in can be checked, which
        # is an outage to wait out (503), not a reason to send a signed-in person to sign in.
        return _away(request, exc)
    if session is not None:
        request[SESSION_KEY] = session
    if session is None and not _public(request.path):
        if request.method == "GET":
            raise web.HTTPSeeOther("/console/login")
        raise web.HTTPUnauthorized(text="sign in first: govhub console login --as ID --url URL\n")
    if request.method == "POST" and session is not None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="refused: this form was sent from another origin\n")
        if request.content_type == "multipart/form-data":
            if request.path not in MULTIPART_CSRF_CHECKED:
                raise web.HTTPForbidden(text="refused: unexpected multipart form\n")
        elif request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            if not auth.csrf_ok(session, form.get("csrf")):
                raise web.HTTPForbidden(text="refused: missing or wrong CSRF token\n")
        else:
            raise web.HTTPForbidden(text="refused: a console POST is a form with a CSRF token\n")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GovhubError as exc:
        if isinstance(exc, ServerUnavailable):
            return _away(request, exc)
        return problem(request, str(exc), status=404 if isinstance(exc, NOT_FOUND) else 400)
    except Exception as exc:
        if not is_transient(exc):
            raise
        return _away(request, exc)


def _away(request: web.Request, exc: BaseException) -> web.Response:
    """A page needs a server that is away: 503 with the cause, to be retried."""
    response = problem(request, f"try again in a moment: {describe(exc)}", status=503)
    response.headers["Retry-After"] = "1"
    return response


def make_console_app(parts: Parts, audit_log: AuditLog | None = None) -> web.Application:
    """The console application over a connected hub's collaborators."""
    from hub.console import audit_pages, directory, login, office, quarantine

    app = web.Application(middlewares=[_headers, _signed_in, _errors], client_max_size=64 << 20)
    app[PARTS_KEY] = parts
    app[AUTH_KEY] = auth.Auth(parts.pool, parts.trust.participants)
    app[AUDIT_KEY] = AuditHolder(audit_log)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "service": "console"})

    async def root(_request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/console/")

    async def home(request: web.Request) -> web.Response:
        links = [
            (t(request, "Audit"), "/console/audit"),
            (t(request, "Office"), "/console/office"),
            (t(request, "Directory"), "/console/directory"),
            (t(request, "Quarantine"), "/console/quarantine"),
        ]
        return page(
            request,
            t(request, "govhub console"),
            h("ul", {"class": "cards"}, [h("li", None, h("a", {"href": u}, n)) for n, u in links]),
        )

    async def switch_lang(request: web.Request) -> web.Response:
        lang = "en" if request.match_info["lang"] == "en" else "zh"
        await request.app[AUTH_KEY].set_lang(request[SESSION_KEY], lang)
        raise web.HTTPSeeOther("/console/")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", root)
    app.router.add_get("/console/", home)
    app.router.add_get("/console/lang/{lang:(en|zh)}", switch_lang)
    app.router.add_static("/console/static/", STATIC)
    app.router.add_routes(api.routes(parts.pool, prefix="/console/log"))
    for module in (login, audit_pages, office, directory, quarantine):
        app.router.add_routes(module.routes())
    return app


def console_address() -> tuple[str, int]:
    """Where the console listens: `GOVHUB_CONSOLE_HTTP` or the default."""
    return parse_address(os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS)


class ConsoleService:
    """`govhub serve`'s console: the web application on its own address."""

    name = "console"

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self.host, self.port = console_address()

    async def run(self) -> None:
        """Serve the console until cancelled."""
        runner = web.AppRunner(make_console_app(self._parts), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await start_site(site, self.host, self.port, "the console")
            log.info("console.started", url=f"http://{self.host}:{self.port}/console/")
            await _forever()
        finally:
            await runner.cleanup()

    def routes(self) -> list[web.RouteDef]:
        """The console has no routes on the hub's API address."""
        return []


async def _forever() -> None:
    import asyncio

    await asyncio.Event().wait()


def create(parts: Parts) -> ConsoleService:
    """Factory named in `hub.serve.SERVICES`."""
    return ConsoleService(parts)
