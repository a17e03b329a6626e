"""`govhub serve`: the hub services in one process, with health, metrics and HTTP routes.

A service is an object with a `name`, an async `run()` that works until cancelled, and
optional aiohttp `routes()`. `SERVICES` maps names to factories `(hub) -> Service`; more
`govhub serve` processes share the work through durable consumers, and single-writer services
(the audit appender) take a PostgreSQL advisory lock and wait as standby.

Shutdown: SIGTERM or SIGINT stops intake, gives services a grace period to finish in-flight
work, then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from aiohttp import web

from hub.errors import ConfigError
from hub.listen import start_site
from hub.metrics import REGISTRY
from hub.runtime import Hub

log = structlog.get_logger("hub.serve")

# name -> "module:factory"; the factory takes the Hub and returns a Service.
SERVICES: dict[str, str] = {
    "audit": "hub.audit.service:create",
    "directory": "hub.directory.service:create",
    "federation": "hub.federation.monitor:create",
    "exchange": "hub.exchange.tracker:ExchangeTracker",
    "exchange-agent": "hub.exchange.agent:RecipientAgent",
    "approval": "hub.approval.service:create",
}

GRACE_S = 10.0


class Service(Protocol):
    """One hub service."""

    name: str

    async def run(self) -> None:
        """Work until cancelled; clean up in `finally`."""

    def routes(self) -> Sequence[web.RouteDef]:
        """HTTP routes this service serves (may be empty)."""


def build_services(hub: Hub, only: Sequence[str] = ()) -> list[Service]:
    """Instantiate the configured services (all of them unless `only` names some)."""
    unknown = [name for name in only if name not in SERVICES]
    if unknown:
        known = ", ".join(sorted(SERVICES)) or "none"
        raise ConfigError(f"unknown service(s) {', '.join(unknown)}; known: {known}")
    services: list[Service] = []
    for name, target in SERVICES.items():
        if only and name not in only:
            continue
        module, _, factory = target.partition(":")
        services.append(getattr(importlib.import_module(module), factory)(hub))
    return services


def make_app(services: Sequence[Service], health: dict[str, Any]) -> web.Application:
    """The HTTP application: /healthz, /metrics and every service's routes."""

    async def healthz(_request: web.Request) -> web.Response:
        ok = all(state == "running" for state in health.values())
        return web.json_response({"ok": ok, "services": health}, status=200 if ok else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=REGISTRY.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for service in services:
        routes = getattr(service, "routes", None)
        if routes is not None:
            app.router.add_routes(routes())
    return app


async def serve(
    hub: Hub,
    *,
    only: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 8480,
    stop: asyncio.Event | None = None,
) -> None:
    """Run services until `stop` is set or SIGTERM/SIGINT arrives."""
    services = build_services(hub, only)
    health: dict[str, Any] = {s.name: "starting" for s in services}
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(services, health))
    await runner.setup()
    try:
        await start_site(web.TCPSite(runner, host, port), host, port, "the hub's HTTP API")
    except BaseException:
        await runner.cleanup()
        raise
    log.info("serve.started", services=[s.name for s in services], http=f"http://{host}:{port}")

    async def supervise(service: Service) -> None:
        health[service.name] = "running"
        try:
            await service.run()
            health[service.name] = "stopped"
        except asyncio.CancelledError:
            health[service.name] = "stopped"
            raise
        except Exception as exc:
            health[service.name] = f"failed: {exc}"
            log.error("serve.service.failed", service=service.name, error=str(exc))
            raise

    tasks = [asyncio.create_task(supervise(s), name=s.name) for s in services]
    try:
        stopper = asyncio.create_task(stop.wait())
        # Wake on the stop event or on a failing service; a service that simply returns must
        # not end the others. (FIRST_EXCEPTION alone never returns when the stop event is set.)
        pending: set[asyncio.Task[Any]] = {stopper, *tasks}
        while stopper in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() for t in done if t is not stopper and not t.cancelled()):
                break
        stopper.cancel()
        if not stop.is_set():
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=GRACE_S) if tasks else None
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("serve.stopped")
