"""Audit log settings: origin, batching, checkpoint interval and the witness policy.

Read from ``<home>/audit/config.toml`` when it exists, otherwise defaults from the scenario::

    origin = "kezhou.govhub.example/audit"   # checkpoint origin line and log key name
    batch_size = 1000                        # leaves per PostgreSQL transaction at most
    flush_interval = 0.1                     # seconds a batch waits to fill at low load
    checkpoint_interval = 1.0                # a checkpoint at least this often while growing
    [witnesses]
    k = 3                                    # cosignatures needed to publish a checkpoint
    local = ["artux", "akto", "akqi", "wuqia"]  # witnesses run inside `govhub serve`
    timeout = 5.0
    [[witnesses.remote]]                     # witnesses a county runs on its own machine
    vkey = "witness.akto.example+1a2b3c4d+BA..."
    url = "https://witness.akto.example/"

Mistakes are errors naming the file and the key path (hub/tomlconfig.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from hub import tomlconfig
from hub.audit.note import ALG_COSIGNATURE_V1, KeyFormatError, Verifier
from hub.errors import ConfigError
from hub.home import Home
from hub.scenario import Scenario
from hub.tomlconfig import Between
from hub.userfiles import read_text

DOMAIN = "govhub.example"


def audit_dir(home: Home) -> Path:
    """Where the audit log keeps its keys, witness state and config in a home."""
    return home.root / "audit"


def default_origin(scenario: Scenario) -> str:
    """``<scenario>.govhub.example/audit``: a schema-less URL naming this log (tlog-checkpoint)."""
    return f"{scenario.name}.{DOMAIN}/audit"


def local_witness_name(unit: str, origin: str) -> str:
    """Key name of the witness a unit runs inside `govhub serve`: ``witness.<unit>.<host>``."""
    return f"witness.{unit}.{origin.split('/', 1)[0]}"


@dataclass(frozen=True, kw_only=True)
class RemoteWitness:
    """A witness reached over HTTP (c2sp.org/tlog-witness) and its cosignature key."""

    verifier: Verifier
    url: str

    @property
    def name(self) -> str:
        """The witness key name."""
        return self.verifier.name


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """Checked audit settings."""

    origin: str
    batch_size: int = 1000
    flush_interval: float = 0.1
    checkpoint_interval: float = 1.0
    local_witnesses: tuple[str, ...] = ()
    remote_witnesses: tuple[RemoteWitness, ...] = ()
    witness_k: int = 0
    witness_timeout: float = 5.0

    @property
    def witness_count(self) -> int:
        """How many witnesses are configured."""
        return len(self.local_witnesses) + len(self.remote_witnesses)


@dataclass(frozen=True, kw_only=True)
class _RemoteEntry:
    vkey: str
    url: str


@dataclass(frozen=True, kw_only=True)
class _WitnessSection:
    k: Annotated[int, Between(0)] | None = None
    local: tuple[str, ...] | None = None
    remote: tuple[_RemoteEntry, ...] = ()
    timeout: Annotated[float, Between(0.1)] = 5.0


@dataclass(frozen=True, kw_only=True)
class _AuditFile:
    origin: str | None = None
    batch_size: Annotated[int, Between(1)] = 1000
    flush_interval: Annotated[float, Between(0.001)] = 0.1
    checkpoint_interval: Annotated[float, Between(0.01)] = 1.0
    witnesses: _WitnessSection = field(default_factory=_WitnessSection)


def load_config(home: Home, scenario: Scenario) -> AuditConfig:
    """Read ``<home>/audit/config.toml`` (defaults when absent) and check it."""
    path = audit_dir(home) / "config.toml"
    if not path.exists():
        return parse_config("", path.name, scenario)
    return parse_config(read_text(path, "the audit config", error=ConfigError), str(path), scenario)


def parse_config(text: str, name: str, scenario: Scenario) -> AuditConfig:
    """Check the text of an audit config file called ``name`` (empty text: all defaults)."""
    data = tomlconfig.parse(_AuditFile, text, name)
    with tomlconfig.in_file(name):
        return _checked(data, scenario)


def _checked(data: _AuditFile, scenario: Scenario) -> AuditConfig:
    wit = data.witnesses
    local = wit.local if wit.local is not None else tuple(scenario.county_units)
    if not all(local):
        raise ConfigError("witnesses.local: a unit name is empty")
    if len(set(local)) != len(local):
        raise ConfigError("witnesses.local: lists a unit twice")
    for unit in local:
        # A local witness keeps its key and state in <home>/audit/witnesses/<unit>/: only a
        # unit of the scenario may name that folder.
        if unit not in scenario.units:
            raise ConfigError(
                f"witnesses.local: {unit[:40]!r} is not a unit of scenario {scenario.name}"
            )
    remote = []
    for i, item in enumerate(wit.remote):
        at = f"witnesses.remote[{i}]"
        try:
            verifier = Verifier.from_vkey(item.vkey)
        except KeyFormatError as exc:
            raise ConfigError(f"{at}.vkey: {exc}") from exc
        if verifier.alg != ALG_COSIGNATURE_V1:
            raise ConfigError(f"{at}.vkey: must be a cosignature key (type 0x04)")
        if not item.url.startswith(("http://", "https://")):
            raise ConfigError(f"{at}.url: must be an http(s) URL")
        remote.append(RemoteWitness(verifier=verifier, url=item.url))
    count = len(local) + len(remote)
    k = wit.k if wit.k is not None else (count // 2 + 1 if count else 0)
    if k > count:
        raise ConfigError(f"witnesses.k: must be an integer from 0 to {count}")
    origin = data.origin if data.origin is not None else default_origin(scenario)
    # The origin is the first line of every checkpoint and the log key's name (signed notes
    # allow neither spaces, '+' nor control characters there).
    if not origin.isprintable() or not origin or any(c.isspace() or c == "+" for c in origin):
        raise ConfigError("origin: must be a non-empty name without spaces or '+'")
    return AuditConfig(
        origin=origin,
        batch_size=data.batch_size,
        flush_interval=data.flush_interval,
        checkpoint_interval=data.checkpoint_interval,
        local_witnesses=local,
        remote_witnesses=tuple(remote),
        witness_k=k,
        witness_timeout=wit.timeout,
    )
