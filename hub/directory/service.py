"""The `directory` service of `govhub serve`: materializer, deadline sweeps, HTTP routes.

Wiring only. The materializer keeps the PostgreSQL directory and its KV copy current (one
writer; other serve processes stand by). Where this home holds the hub operator's key, the
service also sweeps deadlines every `SWEEP_INTERVAL` seconds (reminders, escalations). The
routes serve search and entries to people and portals, the DCAT catalog, and the provider-side
sharing agent for a department's own adapters: `POST /directory/share/{code}` seals records
to the grantees with the provider's key, for a caller holding the provider's agent token
(hub/directory/agenttoken.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from hub import health
from hub.collaborators import Bus, Parts, Signer, Trust
from hub.directory import agenttoken
from hub.directory.dcat import default_base, export_catalog
from hub.directory.materializer import Materializer
from hub.directory.sharing import share
from hub.directory.store import SearchFilters, entry_document, search
from hub.directory.workflow import Directory
from hub.errors import (
    AgentRefused,
    ConfigError,
    GovhubError,
    InputError,
    KeyStoreError,
    NotProvider,
    UnknownResource,
)
from hub.home import Settings
from hub.jsonout import dumps
from hub.outage import Backoff, describe, is_transient

log = structlog.get_logger("hub.directory.service")

SWEEP_INTERVAL = 60.0


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=dumps(data), status=status, content_type="application/json", headers=headers
    )


class DirectoryService:
    """`govhub serve`'s directory service."""

    name = "directory"

    def __init__(
        self,
        pool: asyncpg.Pool,
        pg_dsn: str,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        signer: Signer,
    ) -> None:
        """Assemble the materializer and the write side."""
        self._pool = pool
        self._home = settings.home
        self._trust = trust
        self._signer = signer
        self.directory = Directory(pool, pg_dsn, settings, trust, bus, signer)
        self.materializer = Materializer(
            pool, pg_dsn, settings, trust, bus, policy=self.directory.policy
        )

    def _operator_here(self) -> bool:
        try:
            self._signer.keystore.current(self._trust.scenario.operator)
        except KeyStoreError:
            return False
        return True

    def stop_intake(self) -> None:
        """Materialize no new batch and start no new sweep; `run()` returns once the batch in
        hand is committed and acked and a sweep under way is done."""
        self.materializer.stop_intake()

    async def run(self) -> None:
        """Materialize, and sweep deadlines where the operator's key is, until cancelled or
        `stop_intake()`."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.materializer.run(), name="directory-materializer")
            if self._operator_here():
                group.create_task(self._sweeps(), name="directory-deadlines")

    async def _sweeps(self) -> None:
        retry = Backoff(1.0, SWEEP_INTERVAL)
        delay = SWEEP_INTERVAL
        intake = self.materializer.intake
        while await intake.rest(delay):
            delay = SWEEP_INTERVAL
            try:
                done = await self.directory.sweep()
            except Exception as exc:
                if is_transient(exc):
                    # An outage: sweep again soon rather than at the next interval.
                    health.pause("deadlines", describe(exc))
                    delay = retry.next()
                elif isinstance(exc, GovhubError):
                    log.warning("directory.sweep.failed", error=str(exc))
                else:
                    raise
                continue
            retry.reset()
            health.resume("deadlines")
            if done["reminded"] or done["escalated"]:
                log.info(
                    "directory.sweep.done",
                    reminded=len(done["reminded"]),
                    escalated=len(done["escalated"]),
                )

    def routes(self) -> list[web.RouteDef]:
        """Search, entries, the DCAT catalog, and the provider's sharing agent."""
        return [
            web.get("/directory/search", self._search),
            web.get("/directory/entries/{code}", self._entry),
            web.get("/directory/catalog.jsonld", self._catalog),
            web.post("/directory/share/{code}", self._share),
        ]

    async def _search(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            filters = SearchFilters(
                provider=q.get("provider"),
                unit=q.get("unit"),
                class_code=q.get("class_code"),
                category=q.get("category"),
                sharing_type=q.get("sharing_type"),
                open_only=q.get("open") == "1",
            )
            result = await search(
                self._pool, q.get("q", ""), filters, limit=int(q.get("limit", "20"))
            )
        except (InputError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result.to_json())

    async def _entry(self, request: web.Request) -> web.Response:
        try:
            return _json(await entry_document(self._pool, request.match_info["code"]))
        except UnknownResource as exc:
            return _json({"error": str(exc)}, 404)

    async def _catalog(self, _request: web.Request) -> web.Response:
        catalog = await export_catalog(
            self._pool,
            self._trust.participants,
            base=default_base(self._trust.scenario.name),
            title=f"{self._trust.scenario.hub_name} 开放数据目录",
            publisher=self._trust.scenario.operator,
        )
        return web.Response(
            text=json.dumps(catalog, ensure_ascii=False), content_type="application/ld+json"
        )

    async def _share(self, request: web.Request) -> web.Response:
        # Signing as the provider needs the provider's agent token (hub/directory/agenttoken.py
        # says why loopback alone is not enough). JSON only: a browser's cross-site form can
        # post text/plain without asking first, and nothing here should parse such a body.
        if request.content_type != "application/json":
            return _json({"error": "the body must be JSON (Content-Type: application/json)"}, 415)
        try:
            body = await request.json()
        except ValueError:
            return _json({"error": "the body is not JSON"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("provider"), str):
            return _json({"error": 'expected {"provider": ID, "records": [...]}'}, 400)
        provider = body["provider"]
        try:
            agenttoken.check(self._home, provider, request.headers.get("Authorization"))
        except AgentRefused as exc:
            return _json(
                {"error": str(exc), "hint": exc.diagnostics()},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="govhub sharing agent"'},
            )
        except ConfigError as exc:
            return _json({"error": str(exc)}, 400)
        if not isinstance(body.get("records"), list):
            return _json({"error": 'expected {"provider": ID, "records": [...]}'}, 400)
        try:
            result = await share(
                self._pool,
                self._trust,
                self._signer,
                provider,
                request.match_info["code"],
                body["records"],
            )
        except (NotProvider, KeyStoreError) as exc:
            return _json({"error": str(exc)}, 403)
        except UnknownResource as exc:
            return _json({"error": str(exc)}, 404)
        except GovhubError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result)


def create(parts: Parts) -> DirectoryService:
    """Factory named in `hub.serve.SERVICES`."""
    return DirectoryService(
        parts.pool, parts.pg_dsn, parts.settings, parts.trust, parts.bus, parts.signer
    )
