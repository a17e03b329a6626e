"""The supervisor of `govhub serve`: outages pause a service, failures restart it, nothing
stops the others, and `/healthz` and the metrics say which state each service is in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
import asyncpg
import click
import nats.errors
import pytest
from aiohttp import web

from hub import cli as cli_module
from hub import serve as serve_module
from hub.collaborators import Parts
from hub.errors import InputError, PublishTimeout, ServerUnavailable, ServiceError
from hub.health import RESTARTS, SERVICE_UP, Health, State
from hub.outage import Backoff, describe, is_transient
from hub.runtime import Hub
from hub.serve import Supervisor, make_app, serve


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "OUTAGE_BACKOFF", (0.01, 0.02))
    monkeypatch.setattr(serve_module, "FAILURE_BACKOFF", (0.01, 0.02))


class Scripted:
    """A service whose runs fail with the given exceptions, one per run, then work."""

    def __init__(self, name: str, failures: Sequence[BaseException] = ()) -> None:
        self.name = name
        self.failures = list(failures)
        self.runs = 0
        self.working = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.failures:
            raise self.failures.pop(0)
        self.working.set()
        await asyncio.Event().wait()

    def routes(self) -> list[web.RouteDef]:
        return []


@contextlib.asynccontextmanager
async def supervised(services: Sequence[Scripted], health: Health) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(services, health)
    tasks = [asyncio.create_task(supervisor.run(s)) for s in services]
    try:
        yield supervisor
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state set by another task of this loop
            await asyncio.sleep(0.005)


def test_connection_losses_and_server_restarts_are_outages_and_bugs_are_not() -> None:
    outages: list[BaseException] = [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InterfaceError("cannot call Connection.execute(): connection is closed"),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoRespondersError(),
        ServerUnavailable("cannot reach NATS"),
        PublishTimeout("not acknowledged"),
        ExceptionGroup("tg", [OSError("reset"), asyncpg.ConnectionDoesNotExistError("x")]),
    ]
    failures: list[BaseException] = [
        ValueError("bad"),
        KeyError("field"),
        InputError("not JSON"),
        asyncpg.UniqueViolationError("duplicate key"),
        ExceptionGroup("tg", [OSError("reset"), KeyError("field")]),
    ]
    assert [e for e in outages if not is_transient(e)] == []
    assert [e for e in failures if is_transient(e)] == []


def test_an_outage_is_described_by_its_server_without_python_names() -> None:
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert describe(lost) == "PostgreSQL: connection was closed in the middle of operation"
    assert describe(ExceptionGroup("tg", [lost])) == describe(lost)
    assert describe(nats.errors.ConnectionClosedError()) == "NATS: connection closed"
    assert describe(ExceptionGroup("tg", [KeyError("x"), InputError("not JSON")])) == "not JSON"
    assert "Error" not in describe(ConnectionRefusedError(111, "Connect call failed"))


def test_backoff_grows_with_jitter_up_to_its_cap_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(0.2, 10.0)
    delays = [backoff.next() for _ in range(12)]
    assert 0.1 <= delays[0] <= 0.2
    assert all(0.1 * 2**i <= d <= 0.2 * 2**i for i, d in enumerate(delays[:5]))
    assert all(5.0 <= d <= 10.0 for d in delays[6:])
    assert len(set(delays[6:])) > 1, "jittered, not one fixed delay"
    backoff.reset()
    assert backoff.next() <= 0.2


async def test_a_failing_service_is_restarted_and_reported_without_stopping_the_others() -> None:
    broken = Scripted("broken", [KeyError("bug"), ValueError("bug again")])
    steady = Scripted("steady")
    health = Health(["broken", "steady"])
    restarts = RESTARTS.value("broken")
    async with supervised([broken, steady], health) as supervisor:
        await until(lambda: broken.working.is_set() and steady.working.is_set())
        assert broken.runs == 3 and steady.runs == 1, "the steady service never restarted"
        assert RESTARTS.value("broken") == restarts + 2
        assert health.to_json()["services"]["broken"]["restarts"] == 2
        assert health.ok and SERVICE_UP.value("broken") == 1.0
        assert not supervisor.stuck.is_set()


async def test_an_outage_pauses_a_service_as_degraded_until_the_servers_answer() -> None:
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    paused = Scripted("exchange", [lost])
    health = Health(["exchange"])
    health.dependency("postgres", "PostgreSQL does not answer (connection refused)")
    restarts = RESTARTS.value("exchange")
    async with supervised([paused], health):
        await until(lambda: health.status("exchange")[0] is State.DEGRADED and paused.runs == 1)
        cause = health.status("exchange")[1]
        assert cause is not None and "PostgreSQL" in cause
        assert SERVICE_UP.value("exchange") == 0.0
        await asyncio.sleep(0.1)
        assert paused.runs == 1, "no restart while the database does not answer"
        health.dependency("postgres", None)
        await paused.working.wait()
        assert health.ok and health.status("exchange") == (State.RUNNING, None)
        assert RESTARTS.value("exchange") == restarts, "an outage is not a restart"


async def test_a_wait_before_retrying_ends_early_once_the_server_answers_again() -> None:
    health = Health()
    health.dependency("postgres", "PostgreSQL does not answer (connection refused)")
    waiting = asyncio.create_task(health.retry_after(60.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    health.dependency("postgres", None)
    await asyncio.wait_for(waiting, 2.0)  # within the jitter, not after 60 s


async def test_a_service_pausing_part_of_itself_reads_degraded_until_it_resumes() -> None:
    from hub import health as health_module

    class Appender(Scripted):
        async def run(self) -> None:
            health_module.pause("appender", "PostgreSQL: connection refused")
            self.working.set()
            await asyncio.Event().wait()

    service = Appender("audit")
    health = Health(["audit"])
    async with supervised([service], health):
        await service.working.wait()
        assert health.status("audit") == (
            State.DEGRADED,
            "appender: PostgreSQL: connection refused",
        )
        health.resume("audit", "appender")
        assert health.status("audit") == (State.RUNNING, None)


async def test_when_every_service_keeps_failing_serve_says_why_in_one_sentence() -> None:
    services = [Scripted(n, [KeyError("bug")] * 10) for n in ("audit", "directory")]
    health = Health(s.name for s in services)
    async with supervised(services, health) as supervisor:
        await asyncio.wait_for(supervisor.stuck.wait(), 10)
        why = supervisor.why_stuck()
    assert why.startswith("no hub service can make progress")
    assert "audit:" in why and "directory:" in why and "\n" not in why


async def test_healthz_is_503_degraded_with_each_cause_and_200_ok_after() -> None:
    health = Health(["audit", "directory"])
    for name in ("audit", "directory"):
        health.set(name, State.RUNNING)
    runner = web.AppRunner(make_app([], health))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            health.dependency("nats", "NATS does not answer (reconnecting)")
            async with http.get("/healthz") as reply:
                body = await reply.json()
                assert reply.status == 503 and body["status"] == "degraded"
                assert body["dependencies"]["nats"]["state"] == "down"
                audit = body["services"]["audit"]
                assert audit["state"] == "degraded"
                assert audit["cause"] == "NATS does not answer (reconnecting)"
            async with http.get("/metrics") as reply:
                text = await reply.text()
                assert 'govhub_service_up{service="audit"} 0' in text
                assert 'govhub_dependency_up{dependency="nats"} 0' in text
            health.dependency("nats", None)
            async with http.get("/healthz") as reply:
                assert reply.status == 200 and (await reply.json())["status"] == "ok"
    finally:
        await runner.cleanup()


async def test_a_route_that_meets_an_outage_answers_503_with_the_cause() -> None:
    class Reader(Scripted):
        def routes(self) -> list[web.RouteDef]:
            async def read(_request: web.Request) -> web.Response:
                raise asyncpg.ConnectionDoesNotExistError("connection was closed")

            return [web.get("/read", read)]

    runner = web.AppRunner(make_app([Reader("audit")]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/read") as reply,
        ):
            assert reply.status == 503 and reply.headers["Retry-After"] == "1"
            assert (await reply.json())["error"] == "PostgreSQL: connection was closed"
    finally:
        await runner.cleanup()


class AlwaysBroken(Scripted):
    def __init__(self, _parts: Parts) -> None:
        super().__init__("broken")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._fail())

    async def _fail(self) -> None:
        raise KeyError("a bug")


async def test_serve_exits_with_a_service_error_not_an_exception_group_when_stuck(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(serve_module.SERVICES, "broken", f"{__name__}:AlwaysBroken")
    with pytest.raises(ServiceError, match="no hub service can make progress") as caught:
        await asyncio.wait_for(serve(hub.parts, only=["broken"], port=0), 60)
    assert "broken: 'a bug'" in str(caught.value)


def test_the_command_line_never_shows_an_exception_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @click.command("explode")
    def explode() -> None:
        raise ExceptionGroup("unhandled errors in a TaskGroup", [InputError("the file is empty")])

    cli_module.cli.add_command(explode)
    try:
        with pytest.raises(SystemExit) as exited:
            cli_module.main(["explode"])
    finally:
        cli_module.cli.commands.pop("explode")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "govhub: the file is empty" in err and "TaskGroup" not in err
