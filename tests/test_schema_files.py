"""Schema files as data: the shipped files obey schemas/README.md, references resolve, bad files
are refused with a clear error, and the CI gate compares with git HEAD."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hub.avro.compat import Mode
from hub.codec import SchemaCache, load_schema_file, schema_from_json
from hub.errors import Reason, RejectedEvent, SchemaError
from hub.schema.files import conventions, defined_names, git_previous, load_schema_path
from hub.schema.gate import RegisteredSubject, RegisteredWriter, check_files
from schemas import SCHEMA_DIR

SHIPPED = sorted(SCHEMA_DIR.glob("*.avsc"))


def write(folder: Path, name: str, schema: Any) -> Path:
    path = folder / f"{name}.avsc"
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema, ensure_ascii=False))
    return path


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{name}.", "label_zh": "字段", **extra}


def record(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    ns, _, short = name.rpartition(".")
    return {
        "type": "record",
        "name": short,
        "namespace": ns,
        "doc": "测试: a test record.",
        "label_zh": "测试",
        "fields": list(fields),
    }


# --- the shipped files --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_schema_follows_the_conventions(path: Path) -> None:
    schema_file = load_schema_path(path)
    assert conventions(schema_file.raw) == []


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_schema_has_the_fingerprint_publishers_use(path: Path) -> None:
    assert load_schema_path(path).schema.fingerprint == load_schema_file(path).fingerprint


def test_no_named_type_is_defined_in_two_shipped_files() -> None:
    counts = Counter(n for p in SHIPPED for n in defined_names(json.loads(p.read_text())))
    assert [name for name, count in counts.items() if count > 1] == []


def test_the_shared_address_type_is_used_by_reference_and_inlined_with_its_labels() -> None:
    users = [p.name for p in SHIPPED if "gov.common.v1.Address" in load_schema_path(p).references]
    assert "gov.common.v1.ContactPoint.avsc" in users
    contact = load_schema_path(SCHEMA_DIR / "gov.common.v1.ContactPoint.avsc")
    address = contact.expanded["fields"][3]["type"][1]
    assert address["name"] == "Address" and address["namespace"] == "gov.common.v1"
    assert address["label_zh"] == "地址"
    assert all(f["label_zh"] for f in address["fields"])


def test_registration_events_of_the_registry_are_shipped_with_labels() -> None:
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    for name in ("gov.admin.v1.SchemaRegistered", "gov.admin.v1.SchemaCompatibilityChanged"):
        fields = cache.by_name(name).parsed["fields"]
        assert all(f.get("doc") and f.get("label_zh") for f in fields)


# --- references and bad files -------------------------------------------------------------------


def test_a_department_file_elsewhere_resolves_shared_types_from_the_shipped_schemas(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "akto.civil.v1.Household",
        record("akto.civil.v1.Household", fld("home", "gov.common.v1.Address")),
    )
    loaded = load_schema_path(path)
    assert loaded.references == ("gov.common.v1.Address",)
    # the same fingerprint as fastavro's own resolution with the shared file beside it
    shared = SCHEMA_DIR / "gov.common.v1.Address.avsc"
    (tmp_path / shared.name).write_text(shared.read_text())
    assert loaded.schema.fingerprint == load_schema_file(path).fingerprint


def test_a_sibling_file_resolves_before_the_shipped_ones(tmp_path: Path) -> None:
    write(
        tmp_path,
        "akto.civil.v1.Code",
        {
            "type": "enum",
            "name": "Code",
            "namespace": "akto.civil.v1",
            "doc": "代码.",
            "label_zh": "代码",
            "symbols": ["A"],
        },
    )
    path = write(tmp_path, "akto.civil.v1.Row", record("akto.civil.v1.Row", fld("code", "Code")))
    assert load_schema_path(path).references == ("akto.civil.v1.Code",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "record", "name": "X",', r"not valid JSON: Expecting .* at line 1 column"),
        ('["int", "string"]', "must hold one named type"),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "X",
                    "namespace": "akto.civil.v1",
                    "fields": [{"name": "a", "type": "integer"}],
                }
            ),
            r"fields\[0\]\.type uses the type akto\.civil\.v1\.integer, which is neither",
        ),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "X",
                    "namespace": "akto.civil.v1",
                    "fields": [{"name": "a", "type": "int", "default": "zero"}],
                }
            ),
            "not a valid Avro schema",
        ),
        (
            json.dumps({"type": "record", "name": "Y", "namespace": "akto.civil.v1", "fields": []}),
            r"defines akto\.civil\.v1\.Y, so the file must be named akto\.civil\.v1\.Y\.avsc",
        ),
    ],
    ids=["invalid-json", "not-a-named-type", "unknown-type", "invalid-avro", "name-mismatch"],
)
def test_bad_schema_files_are_refused_with_the_file_and_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "akto.civil.v1.X", text)
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema_path(path)
    assert str(path) in str(caught.value)


def test_conventions_name_every_missing_doc_label_and_version() -> None:
    raw = {
        "type": "record",
        "name": "X",
        "namespace": "akto.civil",
        "doc": "x",
        "fields": [
            {"name": "a", "type": "int", "label_zh": "甲"},
            {
                "name": "b",
                "type": {"type": "enum", "name": "E", "symbols": ["A"]},
                "doc": "b",
                "label_zh": "乙",
            },
            {"name": "c", "type": "int", "doc": "c", "label_zh": "no chinese"},
        ],
    }
    assert conventions(raw) == [
        "namespace 'akto.civil' must end with a version token such as .v1 (the version lives "
        "in the namespace: gov.exchange.v1)",
        '(root): X has no "label_zh" (its Chinese label)',
        'fields[0]: field a has no "doc" (say what it means)',
        'fields[2]: field c has no "label_zh" (its Chinese label)',
        'fields[1].type: enum akto.civil.E has no "doc" (say what it means)',
    ]


# --- reading with a reader schema ----------------------------------------------------------------


def test_decoding_as_a_reader_that_cannot_read_the_writer_is_a_schema_error() -> None:
    old = schema_from_json(record("a.b.v1.R", fld("x", "long")))
    new = schema_from_json(record("a.b.v1.R", fld("x", "int")))
    body = old.encode({"x": 1})
    with pytest.raises(SchemaError, match=r"a\.b\.v1\.R \(.*\) cannot read data written with"):
        old.decode_as(body, new)
    with pytest.raises(RejectedEvent) as caught:
        new.decode_as(
            new.encode({"x": 1}) + b"\x00", schema_from_json(record("a.b.v1.R", fld("x", "long")))
        )
    assert caught.value.reason is Reason.MALFORMED_BODY


# --- the gate against git HEAD ------------------------------------------------------------------


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def test_git_previous_knows_committed_new_and_untracked_places(tmp_path: Path) -> None:
    outside = write(tmp_path, "akto.civil.v1.X", record("akto.civil.v1.X", fld("a", "int")))
    assert git_previous(outside).state == "no-git"
    repo = tmp_path / "repo"
    (repo / "schemas").mkdir(parents=True)
    git(repo, "init", "-q")
    committed = write(
        repo / "schemas", "akto.civil.v1.X", record("akto.civil.v1.X", fld("a", "int"))
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "v1")
    fresh = write(repo / "schemas", "akto.civil.v1.Y", record("akto.civil.v1.Y", fld("a", "int")))
    assert git_previous(committed).state == "committed"
    assert git_previous(committed).relative == "schemas/akto.civil.v1.X.avsc"
    assert git_previous(fresh).state == "new"


def test_the_gate_refuses_an_incompatible_change_since_head_with_reasons_and_advice(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q")
    path = write(tmp_path, "akto.civil.v1.X", record("akto.civil.v1.X", fld("a", "int")))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "v1")
    write(
        tmp_path, "akto.civil.v1.X", record("akto.civil.v1.X", fld("a", "int"), fld("b", "string"))
    )
    report = check_files([path], None)
    assert not report.ok
    [_, against_git] = report.files[0].comparisons
    assert against_git.status == "incompatible"
    assert against_git.reasons == [
        "fields[1] (field b): reader (new schema) expects field b (string) with no default, "
        "writer (the version at HEAD) has no field b; BACKWARD requires a default for every reader "
        "field the writer lacks"
    ]
    assert against_git.advice[0].startswith('fields[1]: give the new field a "default"')
    assert "consumers that move to the new schema must still read" in against_git.detail


def test_the_gate_checks_every_registered_version_in_a_transitive_mode(tmp_path: Path) -> None:
    v1 = record("akto.civil.v1.X", fld("a", "int"))
    v2 = record("akto.civil.v1.X", fld("a", "int"), fld("b", "string", default=""))
    path = write(
        tmp_path,
        "akto.civil.v1.X",
        record("akto.civil.v1.X", fld("a", "int"), fld("b", ["string", "null"])),
    )
    registered = {
        "akto.civil.v1.X": RegisteredSubject(
            "akto.civil.v1.X",
            Mode.BACKWARD_TRANSITIVE,
            (
                (1, schema_from_json(v1).fingerprint_hex, v1),
                (2, schema_from_json(v2).fingerprint_hex, v2),
            ),
        )
    }
    report = check_files([path], registered, use_git=False)
    [comparison] = report.files[0].comparisons
    assert comparison.status == "incompatible"
    assert "every registered version" in comparison.detail
    assert "writer (version 1 of 2)" in comparison.reasons[0]
    relaxed = check_files([path], registered, use_git=False, mode=Mode.BACKWARD)
    assert relaxed.ok


def test_the_gate_reports_a_type_defined_in_two_files(tmp_path: Path) -> None:
    status = {"type": "enum", "name": "Status", "doc": "状态.", "symbols": ["A"]}
    a = write(tmp_path, "akto.civil.v1.A", record("akto.civil.v1.A", fld("s", status)))
    b = write(tmp_path, "akto.civil.v1.B", record("akto.civil.v1.B", fld("s", status)))
    report = check_files([a, b], None, use_git=False)
    assert [f.ok for f in report.files] == [False, False]
    assert "akto.civil.v1.Status" in report.files[0].problems[0]
    assert "belongs in its own file akto.civil.v1.Status.avsc" in report.files[0].problems[0]


DECIMAL_2 = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
DECIMAL_3 = {**DECIMAL_2, "scale": 3}


def test_the_gate_refuses_a_logical_type_change_the_fingerprint_cannot_see(tmp_path: Path) -> None:
    # Before, both comparisons said "unchanged": the fingerprint is the same.
    name = "akto.civil.v1.X"
    git(tmp_path, "init", "-q")
    path = write(tmp_path, name, record(name, fld("a", DECIMAL_2)))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "v1")
    registered_json = record(name, fld("a", DECIMAL_2))
    fp = schema_from_json(registered_json).fingerprint_hex
    write(tmp_path, name, record(name, fld("a", DECIMAL_3)))
    registered = {name: RegisteredSubject(name, Mode.NONE, ((1, fp, registered_json),))}
    report = check_files([path], registered)
    [against_registry, against_git] = report.files[0].comparisons
    for comparison, where in (
        (against_registry, f"version 1 of {name}"),
        (against_git, "the version committed at HEAD (akto.civil.v1.X.avsc)"),
    ):
        assert comparison.status == "incompatible"
        assert comparison.detail.startswith(f"{name} cannot be told apart from {where}")
        assert comparison.reasons == [
            "fields[0].type (field a): decimal scale 3 in the new schema, scale 2 in the "
            "registered one"
        ]
        assert "akto.civil.v2.X" in comparison.advice[0]


def test_the_gate_refuses_a_fingerprint_another_subject_holds_with_other_logical_types(
    tmp_path: Path,
) -> None:
    name = "akto.civil.v1.X"
    path = write(tmp_path, name, record(name, fld("a", DECIMAL_3)))
    writer = RegisteredWriter("version 4 of akto.civil.payments", record(name, fld("a", DECIMAL_2)))
    fp = schema_from_json(writer.schema).fingerprint_hex
    report = check_files([path], {}, use_git=False, writers={fp: writer})
    [comparison] = report.files[0].comparisons
    assert comparison.status == "incompatible"
    assert "cannot be told apart from version 4 of akto.civil.payments" in comparison.detail


def test_a_change_of_defaults_alone_is_checked_against_the_real_history(tmp_path: Path) -> None:
    # Before, the file was "unchanged" (its fingerprint is registered) and passed the gate.
    name = "akto.civil.v1.X"
    v1 = record(name, fld("a", "int"), fld("b", "string", default=""))
    without_default = record(name, fld("a", "int"), fld("b", "string"))
    path = write(tmp_path, name, without_default)
    fp = schema_from_json(v1).fingerprint_hex
    assert schema_from_json(without_default).fingerprint_hex == fp
    registered = {name: RegisteredSubject(name, Mode.FORWARD, ((1, fp, v1),))}
    [comparison] = check_files([path], registered, use_git=False).files[0].comparisons
    assert (comparison.status, comparison.detail) == (
        "compatible",
        f"FORWARD compatible with registered version 1 of {name}",
    )
    removed = write(tmp_path, name, record(name, fld("a", "int")))
    registered = {
        name: RegisteredSubject(name, Mode.FORWARD, ((1, fp, v1), (2, fp, without_default)))
    }
    [comparison] = check_files([removed], registered, use_git=False).files[0].comparisons
    assert comparison.status == "incompatible"
    assert comparison.reasons[0].startswith(
        "fields[1] (field b): reader (version 2, the latest) expects field b (string) with no "
        "default"
    )
