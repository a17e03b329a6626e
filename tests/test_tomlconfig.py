"""Config checked once at the edge: types, unknown keys, secrets by reference, all with paths.

Every file an operator edits (home, audit, scenario, federation plan, case types and holiday
calendars, adapter files, directory deadlines) goes through the one loader, so each names the
file and key path of a misspelt key with a suggestion, and of a value of the wrong type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest

from hub import suites
from hub.approval.casetypes import load_config as approval_config
from hub.audit.config import load_config as audit_config
from hub.directory.deadlines import load_policy
from hub.errors import ConfigError
from hub.federation.plan import Plan, local_plan
from hub.home import Home, configured_suite, record_suite
from hub.integration.adapter import load_adapter_file, parse_adapter_file
from hub.scenario import load_scenario
from hub.tomlconfig import Between, Secret, load, parse, read, suggest
from ops import OPS_DIR, SCENARIO_DIR


@dataclass(frozen=True, kw_only=True)
class Inner:
    port: int = 8491
    mode: Literal["fast", "safe"] = "safe"


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    token: Secret | None = None
    tags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)
    ratio: float = 1.0
    folder: Path | None = None


def test_a_complete_table_becomes_a_frozen_dataclass() -> None:
    value = load(
        Outer,
        {
            "name": "a",
            "tags": ["x", "y"],
            "inner": {"port": 1, "mode": "fast"},
            "ratio": 2,
            "token": {"env": "TOKEN"},
            "folder": "~/share",
        },
        "adapters[0]",
    )
    assert value == Outer(
        name="a",
        tags=("x", "y"),
        inner=Inner(port=1, mode="fast"),
        ratio=2.0,
        token=Secret(env="TOKEN"),
        folder=Path("~/share").expanduser(),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, 'adapters[0]: missing key "name"'),
        ({"name": "a", "nmae": "b"}, 'adapters[0].nmae: unknown key "nmae" (did you mean "name"?)'),
        ({"name": 1}, "adapters[0].name: expected a string, got 1"),
        ({"name": "a", "inner": {"port": "80"}}, "adapters[0].inner.port: expected an integer"),
        ({"name": "a", "inner": {"mode": "slow"}}, "adapters[0].inner.mode: 'slow' is not one of"),
        ({"name": "a", "tags": "x"}, "adapters[0].tags: expected a list"),
        ({"name": "a", "token": "hunter2"}, "adapters[0].token: secrets are given by reference"),
        ({"name": "a", "token": {"value": "x"}}, 'adapters[0].token: expected { env = "NAME" }'),
        ({"name": "a", "ratio": True}, "adapters[0].ratio: expected a number"),
    ],
)
def test_each_mistake_names_its_key_path(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(Outer, data, "adapters[0]")
    assert str(raised.value).startswith(message)


def test_a_secret_is_read_when_used_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    from_file = Secret(file=tmp_path / "secret")
    assert from_file.reveal() == "s3cret"
    monkeypatch.setenv("GOVHUB_TEST_TOKEN", "t0ken")
    from_env = Secret(env="GOVHUB_TEST_TOKEN")
    assert from_env.reveal() == "t0ken"
    assert "t0ken" not in repr(from_env) and "s3cret" not in repr(from_file)
    with pytest.raises(ConfigError, match="GOVHUB_TEST_MISSING is not set"):
        Secret(env="GOVHUB_TEST_MISSING").reveal()
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        Secret(file=tmp_path / "absent").reveal()


def test_a_number_outside_its_bounds_or_not_finite_is_named() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Bounded:
        days: Annotated[int, Between(1, 366)] = 10
        wait: Annotated[float, Between(0.1)] = 1.0
        per_unit: dict[str, Annotated[int, Between(1, 366)]] = field(default_factory=dict)

    assert load(Bounded, {"days": 366, "wait": 0.1}).days == 366
    for data, message in [
        ({"days": 0}, "days: expected an integer from 1 to 366, got 0"),
        ({"wait": 0.01}, "wait: expected a number of at least 0.1, got 0.01"),
        ({"wait": math.inf}, "wait: expected a finite number, got inf"),
        ({"wait": math.nan}, "wait: expected a finite number, got nan"),
        ({"per_unit": {"akto": 400}}, "per_unit.akto: expected an integer from 1 to 366, got 400"),
    ]:
        with pytest.raises(ConfigError) as raised:
            load(Bounded, data)
        assert str(raised.value) == message


def test_the_suggestion_is_the_closest_known_key_or_nothing() -> None:
    assert suggest("tabel", ["table", "dsn"]) == ' (did you mean "table"?)'
    assert suggest("zzz", ["table", "dsn"]) == ""


def test_every_error_of_a_file_starts_with_its_name_once(tmp_path: Path) -> None:
    path = tmp_path / "outer.toml"
    path.write_text('name = "a"\n[inner]\nprot = 1\n')
    with pytest.raises(ConfigError) as raised:
        read(Outer, path, "the outer file")
    assert str(raised.value) == f'{path}: inner.prot: unknown key "prot" (did you mean "port"?)'
    path.write_text("name = [\n")
    with pytest.raises(ConfigError) as raised:
        read(Outer, path, "the outer file")
    assert str(raised.value).startswith(f"{path} is not valid TOML: ")
    with pytest.raises(ConfigError) as raised:
        parse(Outer, "", "outer.toml")
    assert str(raised.value) == 'outer.toml: missing key "name"'


# --- every config an operator edits goes through the loader ---------------------------------

KEZHOU = load_scenario("kezhou")
SCENARIO = (SCENARIO_DIR / "kezhou.toml").read_text(encoding="utf-8")
ADAPTERS = (OPS_DIR / "adapters" / "kezhou.toml").read_text(encoding="utf-8")
ROAD_PERMIT = """
title = "道路挖掘许可"
lead = "pref.transport"
supervisor = "pref.office"
[[reviewers]]
department = "pref.police"
label = "交通组织审查"
working_days = 3
"""
HOLIDAYS = 'year = 2027\nsource = "test"\n[[holidays]]\nname = "元旦"\ndays = ["2027-01-01"]\n'
PLAN = json.dumps(local_plan(KEZHOU).to_json())


@dataclass(frozen=True)
class Kind:
    """One kind of config file: where a home keeps it, and its module's loader."""

    file: str
    read: Callable[[Path], object]
    valid: str


def _plan(root: Path) -> object:
    return Plan.load(root / "federation" / "plan.json")


KINDS = {
    "home": Kind("config.toml", lambda root: configured_suite(Home(root)), '[hub]\nsuite = "gm"\n'),
    "audit": Kind(
        "audit/config.toml",
        lambda root: audit_config(Home(root), KEZHOU),
        '[witnesses]\nk = 2\nlocal = ["akto", "akqi"]\n',
    ),
    "scenario": Kind(
        "scenarios/kezhou.toml",
        lambda root: load_scenario(str(root / "scenarios/kezhou.toml")),
        SCENARIO,
    ),
    "federation plan": Kind("federation/plan.json", _plan, PLAN),
    "case type": Kind(
        "approval/road-permit.toml", lambda root: approval_config(Home(root)), ROAD_PERMIT
    ),
    "holiday calendar": Kind(
        "approval/holidays-2027.toml", lambda root: approval_config(Home(root)), HOLIDAYS
    ),
    "adapter file": Kind(
        "adapters.toml", lambda root: load_adapter_file(root / "adapters.toml"), ADAPTERS
    ),
    "directory deadlines": Kind(
        "directory/config.toml",
        lambda root: load_policy(Home(root)),
        "[deadlines]\nworking_days = 10\n[deadlines.units]\nakto = 5\n",
    ),
}

# (kind, (old, new) in the valid text, the message after the file name)
MISTAKES = [
    ("scenario", ('operator = "pref.egov"\n', ""), 'hub: missing key "operator"'),
    ("case type", ('label = "交通组织审查"\n', ""), 'reviewers[0]: missing key "label"'),
    ("adapter file", ('name = "akto-civil-outbox"\n', ""), 'adapters[0]: missing key "name"'),
    ("home", ("suite", "suit"), 'hub.suit: unknown key "suit" (did you mean "suite"?)'),
    ("home", ("[hub]", "[hbu]"), 'hbu: unknown key "hbu" (did you mean "hub"?)'),
    ("home", ('"gm"', "1"), "hub.suite: expected a string, got 1"),
    ("home", ('"gm"', '"rot13"'), "hub.suite: 'rot13' is not one of 'intl', 'gm'"),
    ("audit", ("k = 2", "kk = 2"), 'witnesses.kk: unknown key "kk" (did you mean "k"?)'),
    (
        "audit",
        ("k = 2", "k = 2\ntimout = 1"),
        'witnesses.timout: unknown key "timout" (did you mean "timeout"?)',
    ),
    (
        "audit",
        ("[witnesses]", "batch_sise = 5\n[witnesses]"),
        'batch_sise: unknown key "batch_sise" (did you mean "batch_size"?)',
    ),
    ("audit", ("k = 2", 'k = "two"'), "witnesses.k: expected an integer, got 'two'"),
    (
        "audit",
        ("[witnesses]", "batch_size = 0\n[witnesses]"),
        "batch_size: expected an integer of at least 1, got 0",
    ),
    (
        "audit",
        ("[witnesses]", "flush_interval = nan\n[witnesses]"),
        "flush_interval: expected a finite number, got nan",
    ),
    (
        "scenario",
        ("operator =", "operater ="),
        'hub.operater: unknown key "operater" (did you mean "operator"?)',
    ),
    (
        "scenario",
        ('role = "office" },\n]', 'rol = "office" },\n]'),
        'upstream.participants[0].rol: unknown key "rol" (did you mean "role"?)',
    ),
    ("scenario", ('unit = "xj"', "unit = 7"), "upstream.unit: expected a string, got 7"),
    (
        "federation plan",
        ('"client_port"', '"client_prot"'),
        'hub_nodes[0].client_prot: unknown key "client_prot" (did you mean "client_port"?)',
    ),
    (
        "federation plan",
        ('"scenario": "kezhou"', '"scenario": 5'),
        "scenario: expected a string, got 5",
    ),
    (
        "case type",
        ("supervisor", "superviser"),
        'superviser: unknown key "superviser" (did you mean "supervisor"?)',
    ),
    (
        "case type",
        ("working_days = 3", 'working_days = "3"'),
        "reviewers[0].working_days: expected an integer, got '3'",
    ),
    (
        "case type",
        ("working_days = 3", "working_days = 0"),
        "reviewers[0].working_days: expected an integer from 1 to 366, got 0",
    ),
    (
        "holiday calendar",
        ("[[holidays]]", "[[holiday]]"),
        'holiday: unknown key "holiday" (did you mean "holidays"?)',
    ),
    ("holiday calendar", ("year = 2027", 'year = "2027"'), "year: expected an integer, got '2027'"),
    (
        "adapter file",
        ('table = "outbox"', 'tabel = "outbox"'),
        'adapters[0].connector.tabel: unknown key "tabel" (did you mean "table"?)',
    ),
    (
        "adapter file",
        ('name = "akto-civil-outbox"', "name = 1"),
        "adapters[0].name: expected a string, got 1",
    ),
    (
        "directory deadlines",
        ("working_days", "working_day"),
        'deadlines.working_day: unknown key "working_day" (did you mean "working_days"?)',
    ),
    (
        "directory deadlines",
        ("akto = 5", 'akto = "5"'),
        "deadlines.units.akto: expected an integer, got '5'",
    ),
    (
        "directory deadlines",
        ("akto = 5", "akto = 0"),
        "deadlines.units.akto: expected an integer from 1 to 366, got 0",
    ),
]


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_each_config_kind_loads_its_valid_file(tmp_path: Path, kind: Kind) -> None:
    path = tmp_path / kind.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kind.valid, encoding="utf-8")
    assert kind.read(tmp_path) is not None


@pytest.mark.parametrize(
    ("name", "change", "message"), MISTAKES, ids=[f"{k}: {m.split(':')[0]}" for k, _, m in MISTAKES]
)
def test_each_config_kind_names_the_file_the_key_path_and_the_fix(
    tmp_path: Path, name: str, change: tuple[str, str], message: str
) -> None:
    kind = KINDS[name]
    old, new = change
    assert old in kind.valid
    path = tmp_path / kind.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kind.valid.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        kind.read(tmp_path)
    assert str(raised.value) == f"{path}: {message}"


def test_the_shipped_and_written_files_load_with_the_same_meaning(tmp_path: Path) -> None:
    assert KEZHOU.hub_unit == "pref" and KEZHOU.operator == "pref.egov"
    assert len(KEZHOU.participants) == 56 and KEZHOU.upstream_unit == "xj"
    shipped = approval_config(None)
    assert set(shipped.types) == {"construction-permit", "food-business"}
    assert 2026 in shipped.calendar.years
    assert len(parse_adapter_file(ADAPTERS, OPS_DIR / "adapters" / "kezhou.toml").adapters) == 6
    plan = local_plan(KEZHOU)
    plan.save(tmp_path / "plan.json")
    assert Plan.load(tmp_path / "plan.json") == plan
    assert Plan.load(tmp_path / "absent.json") is None
    home = Home(tmp_path / "home")
    assert configured_suite(home) is None
    record_suite(home, suites.by_name("gm"))
    assert configured_suite(home) == suites.by_name("gm")
    defaults = audit_config(home, KEZHOU)
    assert defaults.local_witnesses == tuple(KEZHOU.county_units)
    assert (defaults.witness_k, defaults.batch_size) == (len(KEZHOU.county_units) // 2 + 1, 1000)
    assert load_policy(home).days_for("akto") == 10
