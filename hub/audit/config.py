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

Unknown keys are errors naming the key path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.audit.note import ALG_COSIGNATURE_V1, KeyFormatError, Verifier
from hub.errors import ConfigError
from hub.home import Home
from hub.scenario import Scenario
from hub.userfiles import parse_toml

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


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{where}{key}: unknown key {key!r} (known: {', '.join(sorted(allowed))})"
            )


def _number(table: dict[str, Any], key: str, default: float, where: str, low: float) -> float:
    value = table.get(key, default)
    # TOML has nan and inf: neither is a batch size or a number of seconds to wait.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
    ):
        raise ConfigError(f"{where}{key}: must be a finite number of at least {low:g}")
    return float(value)


def _integer(table: dict[str, Any], key: str, default: int, where: str, low: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where}{key}: must be an integer of at least {low}")
    return value


def load_config(home: Home, scenario: Scenario) -> AuditConfig:
    """Read ``<home>/audit/config.toml`` (defaults when absent) and check it."""
    path = audit_dir(home) / "config.toml"
    text = ""
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"cannot read {path}: it is not UTF-8 text") from None
    return parse_config(text, path.name, scenario)


def parse_config(text: str, name: str, scenario: Scenario) -> AuditConfig:
    """Check the text of an audit config file called ``name`` (empty text: all defaults)."""
    data = parse_toml(text, name)
    where = f"{name}: "
    _check_keys(
        data, {"origin", "batch_size", "flush_interval", "checkpoint_interval", "witnesses"}, where
    )
    counties = tuple(scenario.county_units)
    wit = data.get("witnesses", {})
    if not isinstance(wit, dict):
        raise ConfigError(f"{where}witnesses: must be a table")
    _check_keys(wit, {"k", "local", "remote", "timeout"}, f"{where}witnesses.")
    local = wit.get("local", list(counties))
    if not isinstance(local, list) or not all(isinstance(u, str) and u for u in local):
        raise ConfigError(f"{where}witnesses.local: must be a list of unit names")
    if len(set(local)) != len(local):
        raise ConfigError(f"{where}witnesses.local: lists a unit twice")
    for unit in local:
        # A local witness keeps its key and state in <home>/audit/witnesses/<unit>/: only a
        # unit of the scenario may name that folder.
        if unit not in scenario.units:
            raise ConfigError(
                f"{where}witnesses.local: {unit[:40]!r} is not a unit of scenario {scenario.name}"
            )
    remote = []
    items = wit.get("remote", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}witnesses.remote: must be a list of tables")
    for i, item in enumerate(items):
        at = f"{where}witnesses.remote[{i}]."
        if not isinstance(item, dict):
            raise ConfigError(f"{at[:-1]}: must be a table")
        _check_keys(item, {"vkey", "url"}, at)
        try:
            verifier = Verifier.from_vkey(str(item.get("vkey", "")))
        except KeyFormatError as exc:
            raise ConfigError(f"{at}vkey: {exc}") from exc
        if verifier.alg != ALG_COSIGNATURE_V1:
            raise ConfigError(f"{at}vkey: must be a cosignature key (type 0x04)")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{at}url: must be an http(s) URL")
        remote.append(RemoteWitness(verifier=verifier, url=url))
    count = len(local) + len(remote)
    k = wit.get("k", count // 2 + 1 if count else 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= count:
        raise ConfigError(f"{where}witnesses.k: must be an integer from 0 to {count}")
    origin = data.get("origin", default_origin(scenario))
    # The origin is the first line of every checkpoint and the log key's name (signed notes
    # allow neither spaces, '+' nor control characters there).
    if (
        not isinstance(origin, str)
        or not origin.isprintable()
        or not origin
        or any(c.isspace() or c == "+" for c in origin)
    ):
        raise ConfigError(f"{where}origin: must be a non-empty name without spaces or '+'")
    return AuditConfig(
        origin=origin,
        batch_size=_integer(data, "batch_size", 1000, where, 1),
        flush_interval=_number(data, "flush_interval", 0.1, where, 0.001),
        checkpoint_interval=_number(data, "checkpoint_interval", 1.0, where, 0.01),
        local_witnesses=tuple(local),
        remote_witnesses=tuple(remote),
        witness_k=k,
        witness_timeout=_number(wit, "timeout", 5.0, f"{where}witnesses.", 0.1),
    )
