"""The home folder and the settings a command runs with (embedded or external servers).

```
<home>/
  keys/ ca/ secrets/         private material (see hub/keys.py), 0700
  nats/                      embedded nats-server config, JetStream store, log
  postgres/                  embedded PostgreSQL data and log
  run/servers.json           what is running: URLs, ports, pids (read by `govhub status`)
```

`GOVHUB_NATS_URL` and `GOVHUB_PG_DSN` switch to external servers with no other change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "GOVHUB_HOME"
NATS_URL_ENV = "GOVHUB_NATS_URL"
PG_DSN_ENV = "GOVHUB_PG_DSN"
DEFAULT_HOME = ".govhub"


@dataclass(frozen=True)
class Home:
    """Paths inside a govhub home folder."""

    root: Path

    @property
    def keys(self) -> Path:
        """Encrypted participant private keys."""
        return self.root / "keys"

    @property
    def ca(self) -> Path:
        """The prefecture root key and certificate."""
        return self.root / "ca"

    @property
    def secrets(self) -> Path:
        """Generated secrets of an embedded home (key passphrase)."""
        return self.root / "secrets"

    @property
    def nats(self) -> Path:
        """Embedded nats-server files."""
        return self.root / "nats"

    @property
    def postgres(self) -> Path:
        """Embedded PostgreSQL files."""
        return self.root / "postgres"

    @property
    def run(self) -> Path:
        """Runtime state: servers.json and locks."""
        return self.root / "run"

    @property
    def servers_file(self) -> Path:
        """Where the chosen ports, URLs and pids of embedded servers are written."""
        return self.run / "servers.json"

    @property
    def initialized_marker(self) -> Path:
        """Exists once the home has been bootstrapped (registry enrolled, streams made)."""
        return self.run / "initialized.json"

    def ensure(self) -> None:
        """Create the folder structure with private permissions where it matters."""
        self.root.mkdir(parents=True, exist_ok=True)
        for private in (self.keys, self.ca, self.secrets):
            private.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Settings:
    """Where a command finds its home and servers."""

    home: Home
    nats_url: str | None = None
    pg_dsn: str | None = None

    @property
    def external(self) -> bool:
        """Both servers are external: nothing embedded is started."""
        return self.nats_url is not None and self.pg_dsn is not None

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        """Settings from `--home` (or GOVHUB_HOME) and the external-server variables."""
        root = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).resolve()
        return cls(
            home=Home(root),
            nats_url=os.environ.get(NATS_URL_ENV) or None,
            pg_dsn=os.environ.get(PG_DSN_ENV) or None,
        )
