"""Entry files: every rule of the catalog names the field that breaks it; deadlines count work."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hub.codec import SchemaCache, schema_from_json
from hub.directory.dcat import CONTEXT, dataset
from hub.directory.deadlines import WorkCalendar, load_policy
from hub.directory.model import Entry, template
from hub.directory.validation import parse_entry
from hub.errors import ConfigError, EntryInvalid
from hub.home import Home
from tests.directory_support import POPULATION_SCHEMA, entry_file, sharing


def problems(data: object, schemas: SchemaCache | None = None) -> list[tuple[str, str]]:
    with pytest.raises(EntryInvalid) as caught:
        parse_entry(data, schemas=schemas)
    return list(caught.value.problems)


def fields_of(data: object) -> set[str]:
    return {field for field, _ in problems(data)}


def test_the_template_is_a_valid_entry_and_survives_the_avro_record_round_trip() -> None:
    entry = parse_entry(template())
    assert entry.code == "101001-000017" and entry.sharing_type.value == "conditional"
    again = Entry.from_record(entry.to_record())
    assert again.to_file() == entry.to_file()
    assert parse_entry(json.loads(json.dumps(entry.to_file()))).to_file() == entry.to_file()


def test_every_missing_mandatory_field_is_named_at_once() -> None:
    data = entry_file()
    for key in ("title", "abstract", "provider", "format", "schema", "update_cycle"):
        del data[key]
    assert fields_of(data) >= {"title", "abstract", "provider", "format", "schema", "update_cycle"}


def test_the_resource_code_is_classification_code_plus_sequence() -> None:
    assert "code" in fields_of(entry_file(code="ABC"))
    wrong_class = problems(entry_file(code="101002-000017"))
    assert ("code", "must start with the classification code 101001") in wrong_class
    mismatch = entry_file(classification={"category": "theme", "code": "101001", "name": "人口"})
    assert "classification.code" in fields_of(mismatch)


def test_restricted_sharing_needs_a_legal_basis_and_conditional_needs_conditions() -> None:
    conditional = entry_file(sharing={"type": "conditional", "methods": ["event_stream"]})
    assert fields_of(conditional) == {"sharing.conditions", "sharing.legal_basis"}
    not_shared = entry_file(sharing={"type": "不予共享"})
    assert fields_of(not_shared) == {"sharing.legal_basis"}
    assert parse_entry(entry_file(sharing=sharing("unconditional"))).legal_basis is None


def test_an_unconditional_resource_cannot_carry_conditions() -> None:
    data = entry_file(sharing=sharing("unconditional", conditions="仅限本局"))
    assert fields_of(data) == {"sharing.conditions"}


def test_secret_resources_are_refused_from_the_hub() -> None:
    assert fields_of(entry_file(secrecy="涉密")) == {"secrecy"}
    assert parse_entry(entry_file(secrecy="非涉密")).secrecy == "non_secret"


def test_unknown_keys_are_named_with_a_suggestion() -> None:
    found = problems(entry_file(titel="x"))
    assert ("titel", 'unknown key (did you mean "title"?)') in found


def test_open_data_cannot_be_a_resource_that_is_not_shared() -> None:
    data = entry_file(sharing=sharing("not_shared"), open={"public": True})
    assert fields_of(data) == {"open.public"}


def test_data_items_come_from_the_registered_schema_and_must_name_its_fields() -> None:
    cache = SchemaCache([schema_from_json(POPULATION_SCHEMA)])
    entry = parse_entry(entry_file(), schemas=cache)
    assert entry.item_names == ("township", "month", "residents", "households")
    assert entry.data_items[0].label_zh == "乡镇"
    assert len(entry.schema_fingerprint) == 16
    bad = entry_file(data_items=[{"name": "township"}, {"name": "idcard"}])
    assert (
        "data_items[1].name",
        "'idcard' is not a field of akto.stats.v1.ResidentPopulation",
    ) in (problems(bad, cache))
    assert "schema" in {f for f, _ in problems(entry_file(schema="x.y.v1.Z"), cache)}


def test_working_day_deadlines_skip_weekends_and_holidays_and_count_makeup_days() -> None:
    calendar = WorkCalendar(holidays={date(2026, 10, 1), date(2026, 10, 2)})
    friday_noon = datetime(2026, 9, 25, 4, 0, tzinfo=UTC)  # 12:00 in Beijing time
    # Mon 28, Tue 29, Wed 30, (Thu 1, Fri 2 holidays), Mon 5 ... : 10th working day is Oct 13.
    deadline = calendar.add_working_days(friday_noon, 10)
    assert deadline == datetime(2026, 10, 13, 16, 0, tzinfo=UTC)  # Oct 14 00:00 +08:00
    makeup = WorkCalendar(
        holidays={date(2026, 10, 1), date(2026, 10, 2)}, workdays={date(2026, 9, 27)}
    )
    assert makeup.add_working_days(friday_noon, 10) == datetime(2026, 10, 12, 16, 0, tzinfo=UTC)
    assert calendar.working_days_left(datetime(2026, 10, 9, 4, 0, tzinfo=UTC), deadline) == 2


def test_the_deadline_config_file_sets_periods_per_unit_and_refuses_unknown_keys(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path)
    (tmp_path / "directory").mkdir()
    path = tmp_path / "directory" / "config.toml"
    path.write_text("[deadlines]\nworking_days = 10\n[deadlines.units]\nakto = 5\n")
    policy = load_policy(home)
    assert policy.days_for("akto") == 5 and policy.days_for("pref") == 10
    path.write_text("[deadlines]\nworkdays = 3\n")
    with pytest.raises(ConfigError, match='deadlines.workdays: unknown key "workdays"'):
        load_policy(home)


def test_a_dcat_dataset_carries_the_mandatory_properties() -> None:
    entry = parse_entry(entry_file(open={"public": True, "license": "CC-BY-4.0"}))
    out = dataset(
        entry, base="https://x.example/d", modified=datetime.now(UTC), publisher_name="统计局"
    )
    assert out["@type"] == "dcat:Dataset"
    for key in (
        "dct:identifier",
        "dct:title",
        "dct:description",
        "dct:publisher",
        "dcat:distribution",
    ):
        assert out[key]
    assert all(d["dcat:accessURL"]["@id"] for d in out["dcat:distribution"])
    assert out["dct:accrualPeriodicity"]["@id"].endswith("/MONTHLY")
    assert {"dcat", "dct"} <= set(CONTEXT)
