"""Server processes a home runs on this machine: spawn, wait until ready, stop, and the locked
JSON record of their pids in the home's run folder.

The embedded single-node servers (hub/embedded.py) and the local federation's nodes
(hub/federation/servers.py) both run this way; what differs is what "ready" means for each.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.waits import poll_blocking


def process_alive(pid: int) -> bool:
    """Whether a process runs; zombies (exited, not yet reaped) count as gone."""
    if pid <= 0:
        return False  # kill(0, 0) would signal our own process group and "succeed"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is one.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    # PostgreSQL's postmaster is re-parented when pg_ctl exits; in a container whose init does
    # not reap, it lingers as a zombie after shutdown.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def spawn_server(argv: list[str], log: Path) -> int:
    """Start a server process in its own session (a terminal's Ctrl-C does not reach it),
    stderr appended to `log`; returns its pid.

    A pid, not a Popen: the server outlives the command that started it (`govhub up`), and a
    Popen dropped while its process runs warns at exit. `process_alive` reaps it once gone.
    """
    binary = shutil.which(argv[0]) or argv[0]
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        return os.posix_spawn(binary, argv, os.environ, file_actions=actions, setsid=True)
    finally:
        os.close(log_fd)


def stop_process(pid: int, *, kill: bool = False, timeout: float = 15.0) -> None:
    """Stop a server process: SIGTERM lets it flush (SIGKILL after `timeout`); `kill` is a
    crash, as a power cut would stop it. Returns once the process is gone."""
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if poll_blocking(lambda: not process_alive(pid), timeout=timeout, every=0.05):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    poll_blocking(lambda: not process_alive(pid), timeout=float("inf"), every=0.05)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def http_ok(url: str) -> bool:
    """Whether a health endpoint answers 200 (within a second)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def log_tail(path: Path, lines: int = 12) -> str:
    """The last lines of a server's log, for an error that says why it did not start."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class RunRecord:
    """`<run>/<name>.json`: what runs (pids, ports, whether `govhub up` keeps it), changed
    under `<run>/<name>.lock` so that two commands never start the same server twice."""

    def __init__(self, run: Path, name: str) -> None:
        self._run = run
        self.path = run / f"{name}.json"
        self._lock = run / f"{name}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the record's lock (an exclusive flock, released when the block ends)."""
        self._run.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> dict[str, dict[str, Any]]:
        """The record; empty when it is missing or unreadable (then nothing is known to run)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, state: dict[str, dict[str, Any]]) -> None:
        """Replace the record (through a rename, so a reader never sees half of it)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.path)
