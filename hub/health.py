"""What `govhub serve` says about itself: each service's state and cause, and its two servers.

Every service reports into one `Health`. The supervisor (hub/serve.py) sets a service
`running`, `degraded` (it waits out an outage; the cause says which server and why),
`restarting` (it failed for another reason and starts again after a backoff) or `stopped`.
A service that rides out an outage in its own loop (the audit appender, the directory
materializer) says so with `pause(part, cause)` and `resume(part)`; these reach the Health of
the service whose task calls them, and do nothing outside `govhub serve`; their waits
(`retry_after`) end early when a server that was away answers again. `probe_servers`
asks PostgreSQL and NATS every second on connections of its own, and while one does not
answer every service reads `degraded` with that cause: `/healthz` turns `degraded` as soon as
a server goes away, even for a service that has not touched it yet, and `ok` again by itself
once it answers.

Metrics: `govhub_service_up{service}` (1 while running with both servers answering),
`govhub_service_restarts_total{service}` (restarts after failures that are not outages) and
`govhub_dependency_up{dependency}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from nats.aio.client import Client as NatsClient

from hub.metrics import Counter, Gauge
from hub.outage import detail
from hub.waits import wait_event

log = structlog.get_logger("hub.health")

POSTGRES, NATS = "postgres", "nats"
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 5.0
RECOVERY_JITTER_S = 0.5

SERVICE_UP = Gauge(
    "govhub_service_up", "1 while a hub service runs and its servers answer.", ("service",)
)
RESTARTS = Counter(
    "govhub_service_restarts_total",
    "Restarts of a hub service after a failure that was not an outage.",
    ("service",),
)
DEPENDENCY_UP = Gauge(
    "govhub_dependency_up", "1 while govhub serve reaches a server.", ("dependency",)
)


class State(enum.StrEnum):
    """A service's state as `/healthz` shows it."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass
class _Service:
    state: State = State.STARTING
    cause: str | None = None
    since: float = field(default_factory=time.time)
    restarts: int = 0
    paused: dict[str, str] = field(default_factory=dict)


class Health:
    """The states of a process's services and servers, and the gauges that mirror them."""

    def __init__(self, services: Iterable[str] = ()) -> None:
        self._services: dict[str, _Service] = {}
        self._down: dict[str, str] = {}
        self._up = asyncio.Event()
        self._up.set()
        self._recovered = asyncio.Event()
        for name in services:
            self.add(name)
        for dependency in (POSTGRES, NATS):
            DEPENDENCY_UP.set(1.0, dependency)

    def add(self, name: str) -> None:
        """Track a service (starting)."""
        self._services.setdefault(name, _Service())
        self._publish(name)

    def set(self, name: str, state: State, cause: str | None = None) -> None:
        """The supervisor's view of a service."""
        service = self._services[name]
        if service.state is not state:
            service.since = time.time()
        service.state, service.cause = state, cause
        if state is not State.RUNNING:
            service.paused.clear()  # parts report again once the service runs again
        self._publish(name)

    def restarted(self, name: str) -> None:
        """Count a restart after a failure that was not an outage."""
        self._services[name].restarts += 1
        RESTARTS.inc(name)

    def pause(self, name: str, part: str, cause: str) -> None:
        """A part of a running service waits out an outage."""
        self._services[name].paused[part] = cause
        self._publish(name)

    def resume(self, name: str, part: str) -> None:
        """That part works again."""
        if self._services[name].paused.pop(part, None) is not None:
            self._publish(name)

    def dependency(self, name: str, cause: str | None) -> None:
        """A server answers (cause None) or does not (cause says why)."""
        was = self._down.get(name)
        if cause is None:
            self._down.pop(name, None)
        else:
            self._down[name] = cause
        if was is None and cause is not None:
            log.warning("serve.dependency.down", dependency=name, cause=cause)
        elif was is not None and cause is None:
            log.info("serve.dependency.up", dependency=name)
            self._recovered.set()  # wakes every retry_after() waiting now
            self._recovered = asyncio.Event()
        DEPENDENCY_UP.set(0.0 if cause else 1.0, name)
        if self._down:
            self._up.clear()
        else:
            self._up.set()
        for service in self._services:
            self._publish(service)

    async def servers_up(self) -> None:
        """Wait until both servers answer the probes."""
        await self._up.wait()

    async def retry_after(self, delay: float) -> None:
        """Wait `delay` seconds before retrying, or less: until a server that was away answers
        again, then a random moment (up to `RECOVERY_JITTER_S`) so that the services do not
        all reconnect in the same instant."""
        recovered = self._recovered
        if not await wait_event(recovered, delay):
            return
        await asyncio.sleep(random.uniform(0, min(RECOVERY_JITTER_S, delay)))

    def status(self, name: str) -> tuple[State, str | None]:
        """A service's state and cause, servers included: a running service whose servers do
        not answer is degraded."""
        service = self._services[name]
        if service.state is not State.RUNNING:
            return service.state, service.cause
        if service.paused:
            return State.DEGRADED, "; ".join(f"{p}: {c}" for p, c in service.paused.items())
        if self._down:
            return State.DEGRADED, "; ".join(self._down.values())
        return State.RUNNING, None

    @property
    def ok(self) -> bool:
        """Every service runs and both servers answer."""
        return not self._down and all(self.status(n)[0] is State.RUNNING for n in self._services)

    def to_json(self) -> dict[str, Any]:
        """The `/healthz` document."""
        services = {}
        for name, service in self._services.items():
            state, cause = self.status(name)
            services[name] = {
                "state": state.value,
                "cause": cause,
                "since": round(service.since, 3),
                "restarts": service.restarts,
            }
        dependencies = {
            dep: {"state": "down" if dep in self._down else "up", "cause": self._down.get(dep)}
            for dep in (POSTGRES, NATS)
        }
        return {
            "status": "ok" if self.ok else "degraded",
            "ok": self.ok,
            "services": services,
            "dependencies": dependencies,
        }

    @contextlib.contextmanager
    def reporting(self, name: str) -> Iterator[None]:
        """Within this block (and tasks started in it) `pause`/`resume` report as `name`."""
        token = _CURRENT.set((self, name))
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def _publish(self, name: str) -> None:
        SERVICE_UP.set(1.0 if self.status(name)[0] is State.RUNNING else 0.0, name)


_CURRENT: ContextVar[tuple[Health, str] | None] = ContextVar("govhub_health", default=None)


def pause(part: str, cause: str) -> None:
    """Report that `part` of the calling service waits out an outage (no-op outside serve)."""
    current = _CURRENT.get()
    if current is not None:
        current[0].pause(current[1], part, cause)


async def retry_after(delay: float) -> None:
    """The calling service's wait before a retry (`Health.retry_after`; a plain sleep outside
    `govhub serve`)."""
    current = _CURRENT.get()
    if current is None:
        await asyncio.sleep(delay)
    else:
        await current[0].retry_after(delay)


def resume(part: str) -> None:
    """Report that `part` of the calling service works again (no-op outside serve)."""
    current = _CURRENT.get()
    if current is not None:
        current[0].resume(current[1], part)


async def probe_servers(health: Health, pg_dsn: str, nc: NatsClient) -> None:
    """Ask PostgreSQL and NATS every second until cancelled, and report what they answer."""
    conn: asyncpg.Connection | None = None
    try:
        while True:
            conn, cause = await _probe_postgres(pg_dsn, conn)
            health.dependency(POSTGRES, cause)
            health.dependency(NATS, await _probe_nats(nc))
            await asyncio.sleep(PROBE_INTERVAL_S)
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)


async def _probe_postgres(
    dsn: str, conn: asyncpg.Connection | None
) -> tuple[asyncpg.Connection | None, str | None]:
    # Its own connection, not the pool's: a busy pool must not read as an outage.
    try:
        if conn is None or conn.is_closed():
            conn = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
        await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # whatever the reason, the server did not answer
        if conn is not None:
            conn.terminate()
        return None, f"PostgreSQL does not answer ({detail(exc)})"
    return conn, None


async def _probe_nats(nc: NatsClient) -> str | None:
    if not nc.is_connected:
        return "NATS does not answer (reconnecting)"
    try:
        await nc.jetstream(timeout=PROBE_TIMEOUT_S).account_info()
    except Exception as exc:  # JetStream is what the services need, not just the socket
        return f"NATS does not answer ({detail(exc)})"
    return None
