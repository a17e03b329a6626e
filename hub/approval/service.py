"""The `approval` service of `govhub serve`: the projection, the leads' decisions, the clock.

Wiring only. The tracker follows the hub stream; after every applied batch the agent signs the
decisions of ready cases whose lead's key this home holds, and where the hub operator's key is,
the clock sweeps every `SWEEP_INTERVAL` seconds (超期预警, 超期督办). The routes serve the
supervisor's list, one case, and the applicant's progress (办件进度) as JSON, for a portal or
the console; they read only, so they sign nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from hub.approval import agent
from hub.approval.casetypes import load_config
from hub.approval.tracker import ApprovalTracker
from hub.approval.views import case_view, list_cases, progress
from hub.collaborators import Bus, Parts, Signer, Trust
from hub.errors import GovhubError, UnknownCase
from hub.home import Settings
from hub.intake import Intake
from hub.jsonout import dumps

log = structlog.get_logger("hub.approval.service")

SWEEP_INTERVAL = 60.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


class ApprovalService:
    """`SERVICES["approval"]`."""

    name = "approval"

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, trust: Trust, bus: Bus, signer: Signer
    ) -> None:
        self._pool = pool
        self._trust = trust
        self._signer = signer
        self.config = load_config(settings.home)
        self.tracker = ApprovalTracker(pool, settings, trust, bus, self.config)
        self.intake = Intake()

    def stop_intake(self) -> None:
        """Fetch no more events and run no more sweeps; `run()` returns once the step in hand
        (applying a batch, deciding what became ready) is done."""
        self.intake.close()

    async def run(self) -> None:
        """Follow the stream, decide, and sweep where the operator's key is, until cancelled
        or `stop_intake()`."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow(), name="approval-tracker")
                if self._trust.scenario.operator in agent.local_participants(self._signer):
                    group.create_task(self._sweeps(), name="approval-clock")
        finally:
            await self.tracker.stop()

    async def _follow(self) -> None:
        while self.intake.open:
            if await self.tracker.step(timeout=1.0):
                await agent.decide_ready(self._pool, self._signer)

    async def _sweeps(self) -> None:
        while self.intake.open:
            try:
                await agent.sweep(self._pool, self._trust, self._signer, self.config)
            except GovhubError as exc:
                log.warning("approval.sweep.failed", error=str(exc))
            await self.intake.rest(SWEEP_INTERVAL)

    def routes(self) -> Sequence[web.RouteDef]:
        """The supervisor's list, one case, the applicant's progress."""
        return [
            web.get("/approval/cases", self._cases),
            web.get("/approval/cases/{case}", self._case),
            web.get("/approval/progress/{case}", self._progress),
        ]

    async def _cases(self, request: web.Request) -> web.Response:
        try:
            found = await list_cases(
                self._pool,
                self.config,
                participant=request.query.get("as"),
                state=request.query.get("state"),
            )
        except ValueError:
            return _json({"error": "state is one of open, decided, withdrawn"}, 400)
        return _json(found)

    async def _case(self, request: web.Request) -> web.Response:
        try:
            return _json(await case_view(self._pool, self.config, request.match_info["case"]))
        except UnknownCase as exc:
            return _json({"error": str(exc)}, 404)
        except GovhubError as exc:
            return _json({"error": str(exc)}, 400)

    async def _progress(self, request: web.Request) -> web.Response:
        try:
            return _json(
                await progress(self._pool, self._trust, self.config, request.match_info["case"])
            )
        except UnknownCase as exc:
            return _json({"error": str(exc)}, 404)
        except GovhubError as exc:
            return _json({"error": str(exc)}, 400)


def create(parts: Parts) -> ApprovalService:
    """Factory named in `hub.serve.SERVICES`."""
    return ApprovalService(parts.pool, parts.settings, parts.trust, parts.bus, parts.signer)
