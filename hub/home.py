"""The home folder and the settings a command runs with (embedded or external servers).

```
<home>/
  config.toml                `[hub] suite = "intl" | "gm"`: the crypto suite (hub/suites.py)
  keys/ ca/ secrets/         private material (see hub/keys.py), 0700
  nats/                      embedded nats-server config, JetStream store, log
  postgres/                  embedded PostgreSQL data and log
  run/servers.json           what is running: URLs, ports, pids (read by `govhub status`)
```

`GOVHUB_NATS_URL` and `GOVHUB_PG_DSN` switch to external servers with no other change.
The suite comes from `--suite` (`govhub up`, `govhub demo`), else `GOVHUB_SUITE`, else the
home's config.toml, else `intl`; `up --suite` and `demo --suite` record it in config.toml so
every later command of the home signs in the same suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from hub import suites, tomlconfig
from hub.errors import ConfigError
from hub.suites import Suite

HOME_ENV = "GOVHUB_HOME"
NATS_URL_ENV = "GOVHUB_NATS_URL"
PG_DSN_ENV = "GOVHUB_PG_DSN"
DEFAULT_HOME = ".govhub"


@dataclass(frozen=True)
class Home:
    """Paths inside a govhub home folder."""

    root: Path

    @property
    def config_file(self) -> Path:
        """The home's settings: `[hub] suite`."""
        return self.root / "config.toml"

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
    suite: Suite = suites.DEFAULT
    """The crypto suite this home signs in; receivers verify each sender in its own."""

    @property
    def external(self) -> bool:
        """Both servers are external: nothing embedded is started."""
        return self.nats_url is not None and self.pg_dsn is not None

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        """Settings from `--home` (or GOVHUB_HOME) and the external-server variables."""
        root = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).resolve()
        chosen = Home(root)
        try:
            suite = suites.from_env(configured_suite(chosen) or suites.DEFAULT)
        except suites.UnknownSuite as exc:
            raise ConfigError(f"{suites.SUITE_ENV}: {exc}") from None
        return cls(
            home=chosen,
            nats_url=os.environ.get(NATS_URL_ENV) or None,
            pg_dsn=os.environ.get(PG_DSN_ENV) or None,
            suite=suite,
        )

    def with_suite(self, name: str | None) -> Settings:
        """These settings with the suite of a `--suite` option (unchanged when None)."""
        if name is None:
            return self
        return replace(self, suite=suites.by_name(name))


@dataclass(frozen=True, kw_only=True)
class _HubSection:
    suite: str | None = None


@dataclass(frozen=True, kw_only=True)
class _HomeConfig:
    hub: _HubSection = field(default_factory=_HubSection)


def configured_suite(home: Home) -> Suite | None:
    """The suite named by `[hub] suite` in the home's config.toml, if any."""
    path = home.config_file
    if not path.exists():
        return None
    name = tomlconfig.read(_HomeConfig, path, "the home's config file").hub.suite
    if name is None:
        return None
    if name not in suites.SUITES:
        choices = ", ".join(repr(s) for s in suites.SUITES)
        raise ConfigError(f"{path}: hub.suite: {name[:40]!r} is not one of {choices}")
    return suites.by_name(name)


def record_suite(home: Home, suite: Suite) -> None:
    """Write `[hub] suite` into the home's config.toml (the file holds nothing else yet)."""
    home.root.mkdir(parents=True, exist_ok=True)
    home.config_file.write_text(
        "# govhub home settings (hub/home.py)\n[hub]\n"
        f'suite = "{suite.name}"  # crypto suite: intl (Ed25519, SHA-256) or gm (SM2, SM3, SM4)\n',
        encoding="utf-8",
    )
