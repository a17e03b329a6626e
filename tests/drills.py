"""Outage drills with real processes: a PostgreSQL a drill may crash, `govhub serve` children,
steady load whose acknowledged ids are counted, and checks that nothing was lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from hub.directory.events import ENTRY_SCHEMA, Kind, dir_subject
from hub.directory.validation import parse_entry
from hub.embedded import EmbeddedPostgres, ServerInfo
from hub.envelope import Envelope
from hub.errors import PublishTimeout, Retryable, ServerUnavailable
from hub.exchange.send import Sender, SendRequest
from hub.home import Home, Settings
from hub.ports import free_port
from hub.runtime import Hub
from hub.topology import HUB_STREAM
from hub.waits import poll, poll_blocking
from tests.directory_support import entry_file

GOVHUB = str(Path(sys.executable).parent / "govhub")
NOTICE = "gov.common.v1.Notice"
AGENT_FOR = "akto.office"


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    *,
    timeout: float = 60.0,
    every: float = 0.1,
) -> None:
    """Wait for a condition in another process's hands (there is no event to wait on)."""
    if not await poll(condition, timeout=timeout, every=every):
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class Postgres:
    """An embedded PostgreSQL on a data folder of its own, which a drill may crash.

    Never the machine's shared server: killing that would take every other test with it.
    """

    def __init__(self, folder: Path) -> None:
        self._embedded = EmbeddedPostgres(Home(folder))
        self.info: ServerInfo | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """The DSN (stable across restarts)."""
        return f"postgresql://postgres@127.0.0.1:{self._port}/govhub"

    def start(self) -> None:
        """Start, or restart on the same port after a crash (PostgreSQL replays its WAL)."""
        self.info = self._embedded.start({"port": self._port} if self._port else None)
        assert not self._port or self.info.port == self._port, "restarted on another port"
        self._port = self.info.port

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash of the server would."""
        assert self.info is not None
        doomed = [self.info.pid, *_children(self.info.pid)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Until init has reaped them: PostgreSQL takes even a zombie postmaster for a live one
        # and would refuse to start on the same data folder.
        # Reaped by init, not by us: nothing to wait on.
        gone = poll_blocking(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in doomed), timeout=30, every=0.05
        )
        assert gone, "PostgreSQL processes outlived SIGKILL"
        self.info = None

    def stop(self) -> None:
        """Graceful stop (idempotent)."""
        if self.info is not None:
            self._embedded.stop(self.info)
            self.info = None


class Serve:
    """One `govhub serve` process with every service, its HTTP port and its log."""

    def __init__(self, settings: Settings, log: Path, *, agent: Sequence[str] = (AGENT_FOR,)):
        self.port = free_port()
        self.log = log
        self.env = {
            **os.environ,
            "GOVHUB_HOME": str(settings.home.root),
            "GOVHUB_NATS_URL": settings.nats_url or "",
            "GOVHUB_PG_DSN": settings.pg_dsn or "",
            "GOVHUB_EXCHANGE_AGENT": ",".join(agent),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (its log is appended to across restarts)."""
        with self.log.open("ab") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [GOVHUB, "serve", "--http", f"127.0.0.1:{self.port}"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def health(self) -> tuple[int, dict[str, Any]] | None:
        """`/healthz` as (status, document), or None while nothing answers."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=aiohttp.ClientTimeout(total=5)
                ) as reply,
            ):
                return reply.status, await reply.json()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def wait_health(self, status: str, *, cause: str = "", timeout: float = 60.0) -> None:
        """Wait until `/healthz` says `status` (with `cause` in some service's cause)."""

        async def reached() -> bool:
            assert self.running, f"govhub serve exited:\n{self.tail()}"
            answer = await self.health()
            if answer is None or answer[1]["status"] != status:
                return False
            assert answer[0] == (200 if status == "ok" else 503)
            causes = [s["cause"] or "" for s in answer[1]["services"].values()]
            return not cause or any(cause in c for c in causes)

        await wait_until(reached, f"/healthz to say {status} {cause}".strip(), timeout=timeout)

    async def metric(self, name: str) -> float:
        """The sum of a metric over its label sets."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as reply,
        ):
            text = await reply.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in "{ "
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would stop it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Load:
    """Events at a steady rate from a few concurrent senders; `acked` holds the ids JetStream
    acknowledged. A send that times out is retried with the same envelope, so the same id:
    the duplicate window, not luck, keeps it once."""

    def __init__(self, hub: Hub, events: Sequence[Envelope], rate: float, workers: int = 4):
        self._hub, self._events, self._rate, self._workers = hub, list(events), rate, workers
        self.acked: list[str] = []
        self.duplicates = 0

    @classmethod
    def notices(cls, hub: Hub, count: int, rate: float, tag: str) -> Load:
        envs = [
            hub.seal("akto.civil", NOTICE, {"title": f"{tag}-{i}", "body": "b"})
            for i in range(count)
        ]
        return cls(hub, envs, rate)

    async def run(self) -> None:
        start = time.monotonic()
        queue = iter(enumerate(self._events))

        async def worker() -> None:
            for index, env in queue:
                await asyncio.sleep(max(0.0, start + index / self._rate - time.monotonic()))
                while True:
                    try:
                        ack = await self._hub.publisher.publish(env)
                        break
                    except (PublishTimeout, ServerUnavailable):
                        continue
                self.duplicates += ack.duplicate
                self.acked.append(env.event_id)

        async with asyncio.TaskGroup() as group:
            for _ in range(self._workers):
                group.create_task(worker())

    async def reached(self, count: int, timeout: float = 60.0) -> None:
        async def enough() -> bool:
            return len(self.acked) >= count

        await wait_until(enough, f"{count} acknowledged events", timeout=timeout)


def directory_events(hub: Hub, codes: Sequence[int]) -> list[Envelope]:
    """Signed publications of akto.stats entries (what `dir publish` emits), one per code."""
    envs = []
    for number in codes:
        entry = parse_entry(entry_file(code=f"101001-{number:06d}"), schemas=hub.schemas)
        subject = dir_subject("akto.stats", Kind.PUBLISHED, entry.code)
        envs.append(hub.seal("akto.stats", ENTRY_SCHEMA, entry.to_record(), subject=subject))
    return envs


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"通知-{i}.pdf" for i in range(count)]
    for path in paths:
        path.write_bytes(os.urandom(3000))
    return paths


async def send_documents(hub: Hub, folder: Path, count: int, every: float) -> list[str]:
    """Send `count` small documents from pref.office to the agent's participant."""
    paths = await asyncio.to_thread(_files, folder, count)
    sent = []
    for i, path in enumerate(paths):
        request = SendRequest("pref.office", (AGENT_FOR,), path, f"通知 {i}")
        while True:
            try:
                sent.append(
                    (
                        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request)
                    ).doc_id
                )
                break
            except Retryable:
                continue  # the same file again: the send resumes, under the same document id
        await asyncio.sleep(every)
    return sent


async def stream_messages(hub: Hub) -> int:
    return int((await hub.nc.jetstream().stream_info(HUB_STREAM)).state.messages)


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _behind(hub: Hub, dsn: str, docs: Sequence[str], dir_events: int) -> str | None:
    """What is not there yet (None once everything is): stream messages logged, documents
    delivered, directory events materialized."""
    try:
        (row,) = await query(
            dsn,
            "SELECT (SELECT size FROM audit_state) AS size,"
            " (SELECT count(*) FROM doc_recipients WHERE doc_id = ANY($1)"
            "  AND state = 'delivered') AS delivered,"
            " (SELECT count(*) FROM directory_events) AS dir",
            list(docs),
        )
        messages = await stream_messages(hub)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"no answer ({exc})"
    have = (row["size"], row["delivered"], row["dir"])
    if have == (messages, len(docs), dir_events):
        return None
    return (
        f"{have[0]}/{messages} messages logged, {have[1]}/{len(docs)} documents delivered, "
        f"{have[2]}/{dir_events} directory events applied"
    )


async def wait_converged(
    hub: Hub, dsn: str, docs: Sequence[str], dir_events: int, *, timeout: float = 90.0
) -> None:
    """Wait until every stream message is logged, every document delivered, every directory
    event materialized."""
    last: list[str | None] = [None]

    async def done() -> bool:
        last[0] = await _behind(hub, dsn, docs, dir_events)
        return last[0] is None

    try:
        await wait_until(done, "the hub services to catch up", timeout=timeout)
    except pytest.fail.Exception as exc:
        raise AssertionError(f"{exc}: {last[0]}") from None


async def assert_nothing_lost_or_doubled(
    hub: Hub, dsn: str, acked: Mapping[str, Sequence[str]], docs: Sequence[str]
) -> None:
    """Acknowledged vs stored: each acknowledged id once in the stream's log, leaves gap-free,
    each document once in one state, each directory event once."""
    ids = [i for group in acked.values() for i in group]
    assert len(ids) == len(set(ids))
    (tree,) = await query(
        dsn,
        "SELECT count(*) AS leaves, count(DISTINCT event_key) AS keys, max(idx) AS top,"
        " count(DISTINCT stream_seq) AS seqs, (SELECT count(*) FROM audit_gaps) AS gaps"
        " FROM audit_leaves",
    )
    messages = await stream_messages(hub)
    assert tree["leaves"] == tree["keys"] == tree["top"] + 1 == tree["seqs"] == messages
    assert tree["gaps"] == 0
    logged = await query(
        dsn,
        "SELECT event_id, count(*) AS n FROM audit_leaves WHERE event_id = ANY($1)"
        " GROUP BY event_id",
        ids,
    )
    assert {r["event_id"] for r in logged} == set(ids), "an acknowledged event is not logged"
    assert all(r["n"] == 1 for r in logged), "an acknowledged event is logged twice"
    states = await query(
        dsn,
        "SELECT d.doc_id, count(r.*) AS recipients, min(r.state) AS state FROM doc_documents d"
        " JOIN doc_recipients r USING (doc_id) WHERE d.doc_id = ANY($1) GROUP BY d.doc_id",
        list(docs),
    )
    assert sorted(r["doc_id"] for r in states) == sorted(docs)
    assert all(r["recipients"] == 1 and r["state"] == "delivered" for r in states)
    directory = await query(
        dsn,
        "SELECT event_id, count(*) AS n, min(outcome) AS outcome FROM directory_events"
        " GROUP BY event_id",
    )
    assert sorted(r["event_id"] for r in directory) == sorted(acked.get("directory", []))
    assert all(r["n"] == 1 for r in directory)
    assert all(r["outcome"] == "applied" for r in directory)
    entries = await query(dsn, "SELECT count(*) FROM directory_entries WHERE status = 'active'")
    assert entries[0][0] == len(acked.get("directory", []))
