"""`govhub serve`: the hub services in one process, supervised, with health, metrics and routes.

A service is an object with a `name`, an async `run()` that works until cancelled, and
optional aiohttp `routes()`; a service that takes work from a stream also has
`stop_intake()` (hub/intake.py), after which its `run()` finishes what it holds and
returns. `SERVICES` maps names to factories `(parts) -> Service`; more
`govhub serve` processes share the work through durable consumers, and single-writer services
(the audit appender, the directory materializer) take a PostgreSQL advisory lock and wait as
standby.

Supervision: every service runs in a restart loop of its own, so no failure of one stops
another. A failure that is an outage (`hub.outage.is_transient`: PostgreSQL or NATS away) is
a pause: the service reads `degraded` with the cause, waits a jittered backoff (up to 10 s)
and until both servers answer the probes, then runs again. Any other failure is logged,
counted and the service restarted after a longer backoff (up to 60 s). `serve` ends with an
error only when it cannot make progress at all: it cannot listen on its HTTP address, or every
service failed `GIVE_UP_AFTER` times in a row for reasons that are not outages. The HTTP
routes answer 503 with the cause while a server they need is away.

Shutdown: SIGTERM or SIGINT stops intake (every service's `stop_intake()`: no more fetching,
no restarts), gives the services `GRACE_S` to finish and acknowledge the work they hold, then
cancels whatever still runs, and stops the HTTP server last, so `/healthz` answers meanwhile.
The exchange tracker, the recipient agent, the approval service and the single writers of the
audit log and the directory drain this way (a standby writer returns at once); the others are
cancelled once those are done. A service cancelled mid-batch loses nothing either (what it did
not acknowledge is delivered again and collapses onto what was applied), but draining spares
that redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from aiohttp import web

from hub.collaborators import Parts
from hub.errors import ConfigError, ServiceError
from hub.health import Health, State, probe_servers
from hub.listen import start_site
from hub.metrics import REGISTRY
from hub.outage import Backoff, describe, is_transient, kinds
from hub.waits import wait_event

log = structlog.get_logger("hub.serve")

# name -> "module:factory"; the factory takes the collaborators (hub/collaborators.py Parts)
# and returns a Service.
SERVICES: dict[str, str] = {
    "audit": "hub.audit.service:create",
    "directory": "hub.directory.service:create",
    "federation": "hub.federation.monitor:create",
    "exchange": "hub.exchange.tracker:create",
    "exchange-agent": "hub.exchange.agent:create",
    "approval": "hub.approval.service:create",
    "console": "hub.console.app:create",
}

HTTP = "http"
"""The health entry of the HTTP API itself (its routes belong to the services)."""
GRACE_S = 10.0
"""Seconds the services have, once intake stops, to finish what they hold before cancellation."""
OUTAGE_BACKOFF = (0.2, 10.0)
"""First and longest wait (seconds) before a service runs again after an outage."""
FAILURE_BACKOFF = (1.0, 60.0)
"""First and longest wait (seconds) before a service restarts after another failure."""
STEADY_S = 30.0
"""A service that ran this long before failing starts again from the shortest backoff."""
GIVE_UP_AFTER = 5
"""`serve` stops when every service has failed this many times in a row (outages aside)."""


class Service(Protocol):
    """One hub service; it may also have `stop_intake()`: fetch nothing more, and let `run()`
    return once the work already taken is done (see the module docstring, Shutdown)."""

    name: str

    async def run(self) -> None:
        """Work until cancelled; clean up in `finally`."""

    def routes(self) -> Sequence[web.RouteDef]:
        """HTTP routes this service serves (may be empty)."""


def build_services(parts: Parts, only: Sequence[str] = ()) -> list[Service]:
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
        services.append(getattr(importlib.import_module(module), factory)(parts))
    return services


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _outages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A route that needs a server which is away answers 503 with the cause, not 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        return web.json_response(
            {"error": describe(exc), "retry": True}, status=503, headers={"Retry-After": "1"}
        )


def make_app(services: Sequence[Service], health: Health | None = None) -> web.Application:
    """The HTTP application: /healthz, /metrics and every service's routes."""
    health = health or Health(s.name for s in services)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response(health.to_json(), status=200 if health.ok else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=REGISTRY.render(), content_type="text/plain", charset="utf-8")

    app = web.Application(middlewares=[_outages])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for service in services:
        routes = getattr(service, "routes", None)
        if routes is not None:
            app.router.add_routes(routes())
    return app


class Supervisor:
    """Runs each service in its own restart loop and reports every turn into `health`."""

    def __init__(self, services: Sequence[Service], health: Health) -> None:
        self._services = list(services)
        self._health = health
        self._failures = {s.name: 0 for s in services}
        self._causes: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self.stuck = asyncio.Event()
        """Set when every service keeps failing for reasons that are not outages."""

    def stop_intake(self) -> list[Service]:
        """Stop every service's intake and all restarts; returns the services that drain."""
        self._stopping.set()
        draining = []
        for service in self._services:
            stop_intake = getattr(service, "stop_intake", None)
            if callable(stop_intake):
                stop_intake()
                draining.append(service)
        return draining

    def why_stuck(self) -> str:
        """The sentence `serve` exits with when it cannot make progress."""
        causes = "; ".join(f"{name}: {cause}" for name, cause in self._causes.items())
        return f"no hub service can make progress, each failed {GIVE_UP_AFTER} times: {causes}"

    async def run(self, service: Service) -> None:
        """Run one service until cancelled, pausing on outages and restarting on failures."""
        name = service.name
        outage, failure = Backoff(*OUTAGE_BACKOFF), Backoff(*FAILURE_BACKOFF)
        while not self._stopping.is_set():
            self._health.set(name, State.RUNNING)
            started = time.monotonic()
            try:
                with self._health.reporting(name):
                    await service.run()
            except asyncio.CancelledError:
                self._health.set(name, State.STOPPED)
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    log.error("serve.service.failed_stopping", service=name, error=describe(exc))
                    break
                if time.monotonic() - started >= STEADY_S:
                    outage.reset()
                    failure.reset()
                    self._failures[name] = 0
                if is_transient(exc):
                    await self._pause(name, exc, outage.next())
                else:
                    await self._restart(name, exc, failure.next())
                continue
            break
        self._health.set(name, State.STOPPED)
        log.info("serve.service.stopped", service=name)

    async def _pause(self, name: str, exc: Exception, delay: float) -> None:
        cause = describe(exc)
        self._health.set(name, State.DEGRADED, cause)
        log.warning("serve.service.paused", service=name, cause=cause, retry_in=round(delay, 2))
        waiting = asyncio.ensure_future(self._wait_servers(delay))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stopping.cancel()

    async def _wait_servers(self, delay: float) -> None:
        await self._health.retry_after(delay)
        await self._health.servers_up()

    async def _restart(self, name: str, exc: Exception, delay: float) -> None:
        cause = describe(exc)
        self._health.set(name, State.RESTARTING, cause)
        self._health.restarted(name)
        self._failures[name] += 1
        self._causes[name] = cause
        log.error(
            "serve.service.failed",
            service=name,
            error=cause,
            error_type=kinds(exc),
            restart_in=round(delay, 2),
            exc_info=exc if os.environ.get("GOVHUB_DEBUG") else None,
        )
        if all(count >= GIVE_UP_AFTER for count in self._failures.values()):
            self.stuck.set()
        await wait_event(self._stopping, delay)


async def serve(
    parts: Parts,
    *,
    only: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 8480,
    stop: asyncio.Event | None = None,
) -> None:
    """Run services until `stop` is set or SIGTERM/SIGINT arrives.

    Raises ServiceError only when no service can make progress (see the module docstring).
    """
    services = build_services(parts, only)
    health = Health([s.name for s in services] + [HTTP])
    supervisor = Supervisor(services, health)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(services, health))
    await runner.setup()
    tasks: dict[str, asyncio.Task[None]] = {}
    try:
        await start_site(web.TCPSite(runner, host, port), host, port, "the hub's HTTP API")
        health.set(HTTP, State.RUNNING)
        log.info("serve.started", services=[s.name for s in services], http=f"http://{host}:{port}")
        tasks = {s.name: asyncio.create_task(supervisor.run(s), name=s.name) for s in services}
        tasks["probe"] = asyncio.create_task(
            probe_servers(health, parts.pg_dsn, parts.bus.nc), name="probe"
        )
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(supervisor.stuck.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if supervisor.stuck.is_set() and not stop.is_set():
            raise ServiceError(
                supervisor.why_stuck(),
                hint="Fix that cause and start it again; GOVHUB_DEBUG=1 logs each traceback.",
            )
    finally:
        await _shut_down(supervisor, tasks)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("serve.stopped")


async def _shut_down(supervisor: Supervisor, tasks: dict[str, asyncio.Task[None]]) -> None:
    """Stop intake, let the draining services finish within `GRACE_S`, then cancel the rest."""
    draining = [tasks[s.name] for s in supervisor.stop_intake() if s.name in tasks]
    log.info("serve.stopping", draining=[t.get_name() for t in draining], grace_s=GRACE_S)
    if draining:
        _, late = await asyncio.wait(draining, timeout=GRACE_S)
        if late:
            log.warning("serve.grace.expired", cancelled=sorted(t.get_name() for t in late))
    for task in tasks.values():
        task.cancel()
    if tasks:
        await asyncio.wait(tasks.values(), timeout=GRACE_S)
