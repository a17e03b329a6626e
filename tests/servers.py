"""Real nats-server processes for tests, started from the pinned wheel on free loopback ports."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hub.embedded import EmbeddedNats, ServerInfo
from hub.home import Home


class NatsServer:
    """One nats-server that a test can stop, kill and restart on the same port and store."""

    def __init__(self, folder: Path) -> None:
        self._embedded = EmbeddedNats(Home(folder))
        self.info: ServerInfo | None = None
        self._port = 0
        self._monitor = 0

    @property
    def store_dir(self) -> Path:
        """The JetStream store (copy one in before `start` to begin from its streams)."""
        return self._embedded.dir / "jetstream"

    @property
    def url(self) -> str:
        """The client URL (stable across restarts)."""
        return f"nats://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Start (or restart on the same ports) and wait for JetStream to be ready."""
        previous = {"port": self._port, "monitor_port": self._monitor} if self._port else None
        self.info = self._embedded.start(previous)
        self._port = self.info.port
        assert self.info.monitor_url is not None
        self._monitor = int(self.info.monitor_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Graceful stop."""
        if self.info is not None:
            self._embedded.stop(self.info)
            self.info = None

    def kill(self) -> None:
        """SIGKILL, as a crash or power cut would stop it."""
        if self.info is not None:
            os.kill(self.info.pid, signal.SIGKILL)
            os.waitpid(self.info.pid, 0)
            self.info = None
