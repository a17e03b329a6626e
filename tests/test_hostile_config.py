"""Hostile TOML: adapter files, scenario files and the audit config refuse bad input clearly.

Each valid shipped file is damaged as text (so TOML itself breaks) and as data (valid TOML whose
values have the wrong type, are huge, negative, NaN, dates, deeply nested, or hold control
characters and surrogates); only ConfigError may come out, naming what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hub.audit.config import parse_config
from hub.audit.note import ALG_COSIGNATURE_V1, Signer
from hub.directory.deadlines import parse_policy
from hub.errors import ConfigError
from hub.integration.adapter import parse_adapter_file
from hub.scenario import Scenario, load_scenario, parse_scenario
from hub.subjects import check_participant_id
from ops import SCENARIO_DIR
from tests.hostile import hostile_text, mutated_json, scaled, toml_text, toml_values, typed

ADAPTERS_PATH = Path(__file__).parent.parent / "ops" / "adapters" / "kezhou.toml"
ADAPTERS = ADAPTERS_PATH.read_text(encoding="utf-8")
SCENARIO_PATH = SCENARIO_DIR / "kezhou.toml"
SCENARIO = SCENARIO_PATH.read_text(encoding="utf-8")
KEZHOU = load_scenario("kezhou")
WITNESS_VKEY = Signer.generate("witness.wuqia.example", ALG_COSIGNATURE_V1).verifier.vkey()
AUDIT = f"""
origin = "kezhou.govhub.example/audit"
batch_size = 500
flush_interval = 0.05
checkpoint_interval = 2.0
[witnesses]
k = 2
local = ["artux", "akto"]
timeout = 3.0
[[witnesses.remote]]
vkey = "{WITNESS_VKEY}"
url = "https://witness.wuqia.example/"
"""


def toml_documents(text: str) -> st.SearchStrategy[str]:
    """The text damaged as text, or its data damaged and written back as valid TOML."""
    data = tomllib.loads(text)
    return st.one_of(hostile_text(text), mutated_json(data, toml_values).map(_as_toml))


def _as_toml(data: Any) -> str:
    return toml_text(data) if isinstance(data, dict) else f"x = {data!r}\n"


# --- adapter files --------------------------------------------------------------------------


def test_the_shipped_adapter_file_is_valid() -> None:
    assert len(parse_adapter_file(ADAPTERS, ADAPTERS_PATH).adapters) == 6


@scaled(0.5)
@given(text=toml_documents(ADAPTERS))
@example(text='[[adapters]]\nname = "x\\n"\nadapter = "events"\nparticipant = "akto.civil"\n')
def test_a_damaged_adapter_file_is_a_config_error(text: str) -> None:
    checked = typed(lambda: parse_adapter_file(text, ADAPTERS_PATH))
    if not isinstance(checked, ConfigError):
        for adapter in checked.adapters:
            assert adapter.name.isascii() and adapter.name.isprintable(), adapter.name
            check_participant_id(adapter.entry.participant)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("name", "akto-civil\n", "name 'akto-civil\\n' must be lowercase letters"),
        ("participant", "akto.civil\n", "participant id 'akto.civil\\n' must be"),
    ],
)
def test_a_name_or_participant_with_a_final_newline_is_refused(
    key: str, value: str, message: str
) -> None:
    entry = {"name": "a", "adapter": "events", "participant": "akto.civil", key: value}
    text = toml_text({"adapters": [{**entry, "connector": {"type": "folder", "path": "/srv/x"}}]})
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_adapter_file(text, ADAPTERS_PATH)


def test_a_table_name_with_a_final_newline_is_refused() -> None:
    entry = {"name": "a", "adapter": "civil_assistance", "participant": "akto.civil"}
    connector = {"type": "postgres", "dsn": {"env": "DSN"}, "table": "outbox\n"}
    text = toml_text({"adapters": [{**entry, "connector": connector}]})
    with pytest.raises(ConfigError, match="must be letters, digits and '_'"):
        parse_adapter_file(text, ADAPTERS_PATH)


# --- scenario files -------------------------------------------------------------------------


def test_the_shipped_scenario_parses_as_it_loads() -> None:
    assert parse_scenario(SCENARIO, SCENARIO_PATH) == KEZHOU


@scaled(0.5)
@given(text=toml_documents(SCENARIO))
@example(text='[hub]\nunit = "pref"\noperator = "pref.egov"\n[[units]]\nunit = 1\n')
@example(text='hub = "pref"\n')
@example(text='units = [{unit = "pref", participants = [{id = 7}]}]\n'
         '[hub]\nunit = "pref"\noperator = "pref.egov"\n')  # fmt: skip
def test_a_damaged_scenario_file_is_a_config_error(text: str) -> None:
    scenario = typed(lambda: parse_scenario(text, SCENARIO_PATH))
    if isinstance(scenario, Scenario):
        assert scenario.operator in {p.id for p in scenario.participants}


@pytest.mark.parametrize("data", [b"\xff\xfe[hub]\n", b"[hub]\nunit = \xc3\n"])
def test_a_scenario_file_that_is_not_utf8_is_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_scenario(str(path))


# --- the audit log's config.toml ------------------------------------------------------------


def test_a_complete_audit_config_is_read_as_written() -> None:
    config = parse_config(AUDIT, "config.toml", KEZHOU)
    assert (config.batch_size, config.witness_k, config.local_witnesses) == (
        500,
        2,
        ("artux", "akto"),
    )


@given(text=toml_documents(AUDIT))
@example(text="batch_size = inf\n")
@example(text="flush_interval = nan\n")
@example(text="batch_size = 1.5\n")
@example(text='[witnesses]\nlocal = ["../../etc"]\n')
def test_a_damaged_audit_config_is_a_config_error(text: str) -> None:
    config = typed(lambda: parse_config(text, "config.toml", KEZHOU))
    if not isinstance(config, ConfigError):
        numbers = (config.flush_interval, config.checkpoint_interval, config.witness_timeout)
        assert all(0 < n < float("inf") for n in numbers), numbers
        assert set(config.local_witnesses) <= set(KEZHOU.units)


# --- the directory's config.toml (answer deadlines) -----------------------------------------

DIRECTORY = """
[deadlines]
working_days = 10
reminder_days = 2
utc_offset_hours = 8
[deadlines.units]
akto = 5
[calendar]
holidays = ["2026-10-01", "2026-10-02"]
workdays = ["2026-09-27"]
"""


def test_a_complete_directory_config_is_read_as_written() -> None:
    policy = parse_policy(DIRECTORY, "config.toml")
    assert (policy.days_for("akto"), policy.days_for("artux"), policy.reminder_days) == (5, 10, 2)


@given(text=toml_documents(DIRECTORY))
@example(text='[calendar]\nholidays = ["2026-13-01"]\n')  # once "Invalid isoformat string"
@example(text="[deadlines]\nworking_days = 1000000000\n")  # once counted day by day
@example(text="[deadlines]\nutc_offset_hours = 100\n")
def test_a_damaged_directory_config_is_a_config_error(text: str) -> None:
    policy = typed(lambda: parse_policy(text, "config.toml"))
    if not isinstance(policy, ConfigError):
        policy.deadline("akto", datetime(2026, 9, 30, tzinfo=UTC))  # a deadline can be counted


PARSERS = {
    "adapter file": lambda text: parse_adapter_file(ADAPTERS + text, ADAPTERS_PATH),
    "scenario": lambda text: parse_scenario(SCENARIO + text, SCENARIO_PATH),
    "audit config": lambda text: parse_config(AUDIT + text, "config.toml", KEZHOU),
    "directory config": lambda text: parse_policy(DIRECTORY + text, "config.toml"),
}


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
def test_toml_nested_past_the_stack_is_a_config_error(parse: Any) -> None:
    with pytest.raises(ConfigError, match="it nests too deeply$"):
        parse("\nx = " + "[" * 2000 + "]" * 2000 + "\n")
