"""`govhub schema check|register|list|show` and `govhub bench schema`, run as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.home import Settings
from schemas import SCHEMA_DIR

GOVHUB = str(Path(sys.executable).parent / "govhub")
NAME = "akto.civil.v1.BenefitPaid"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def govhub(settings: Settings | None, *args: str, cwd: Path | None = None) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    if settings is not None:
        env.update(
            GOVHUB_HOME=str(settings.home.root),
            GOVHUB_NATS_URL=settings.nats_url or "",
            GOVHUB_PG_DSN=settings.pg_dsn or "",
        )
    done = await asyncio.to_thread(
        subprocess.run,
        [GOVHUB, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{name}: 字段.", "label_zh": "字段", **extra}


def benefit(folder: Path, *fields: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.avsc"
    schema = {
        "type": "record",
        "name": "BenefitPaid",
        "namespace": "akto.civil.v1",
        "doc": "低保发放: a benefit payment.",
        "label_zh": "低保发放",
        "fields": list(fields),
    }
    path.write_text(json.dumps(schema, ensure_ascii=False))
    return path


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


V1 = (fld("person_id", "string"), fld("amount", "long"))
V2 = (*V1, fld("note", ["null", "string"], default=None))
BREAKING = (fld("person_id", "string"), fld("amount", "string"))


# --- check ---------------------------------------------------------------------------------------


async def test_check_passes_on_the_shipped_schemas_without_a_registry(tmp_path: Path) -> None:
    result = await govhub(
        None,
        "--home",
        str(tmp_path / "h"),
        "schema",
        "check",
        "--offline",
        str(SCHEMA_DIR),
        "--json",
    )
    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] and report["checked"] == len(list(SCHEMA_DIR.glob("*.avsc")))
    assert report["registry"] == "not checked (--offline)"


async def test_check_fails_ci_on_a_change_incompatible_with_the_last_commit(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "dept-repo"
    path = benefit(repo / "schemas", *V1)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first version")
    benefit(repo / "schemas", *BREAKING)
    home = str(tmp_path / "h")
    result = await govhub(None, "--home", home, "schema", "check", cwd=repo)
    assert result.code == 1
    assert "govhub: schema check failed: 1 of 1 file would break the contract" in result.err
    assert "git HEAD: INCOMPATIBLE" in result.out
    assert (
        "fields[1].type (field amount): reader (new schema) expects string, writer (the version "
        "at HEAD) has long; BACKWARD requires the writer's type to be the reader's type or "
        "promotable to it" in result.out
    )
    assert "do not change a field's type in place" in result.out
    assert "next namespace version" in result.out

    as_json = await govhub(None, "--home", home, "schema", "check", str(path), "--json", cwd=repo)
    assert as_json.code == 1
    [file] = as_json.json()["files"]
    assert [c["status"] for c in file["comparisons"]] == ["skipped", "incompatible"]
    assert "no hub here" in file["comparisons"][0]["detail"]


async def test_check_reports_every_broken_file_in_one_run(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "akto.civil.v1.Broken.avsc").write_text('{"type": "record",')
    (folder / "akto.civil.v1.Wrong.avsc").write_text(
        json.dumps({"type": "record", "name": "Other", "namespace": "akto.civil.v1", "fields": []})
    )
    benefit(folder, {"name": "amount", "type": "long"})  # no doc, no label_zh
    result = await govhub(
        None, "--home", str(tmp_path / "h"), "schema", "check", "--offline", str(folder), "--json"
    )
    assert result.code == 1
    problems = {Path(f["path"]).name: f["problems"] for f in result.json()["files"]}
    assert "not valid JSON" in problems["akto.civil.v1.Broken.avsc"][0]
    assert "must be named akto.civil.v1.Other.avsc" in problems["akto.civil.v1.Wrong.avsc"][0]
    assert any('field amount has no "label_zh"' in p for p in problems[f"{NAME}.avsc"])
    assert "3 of 3 files" in result.err


async def test_check_compares_with_what_is_registered(
    hub_settings: Settings, tmp_path: Path
) -> None:
    registered = await govhub(
        hub_settings,
        "schema",
        "register",
        str(benefit(tmp_path / "v1", *V1)),
        "--as",
        "akto.civil",
        "--json",
    )
    assert registered.code == 0, registered.err
    good = await govhub(
        hub_settings, "schema", "check", str(benefit(tmp_path / "v2", *V2)), "--json"
    )
    assert good.code == 0, good.err
    [comparison, _] = good.json()["files"][0]["comparisons"]
    assert comparison["status"] == "compatible"
    assert comparison["detail"] == f"BACKWARD compatible with registered version 1 of {NAME}"
    bad = await govhub(hub_settings, "schema", "check", str(benefit(tmp_path / "v3", *BREAKING)))
    assert bad.code == 1
    assert "registry: INCOMPATIBLE — not BACKWARD compatible with registered version 1" in bad.out


# --- register ------------------------------------------------------------------------------------


async def test_register_prints_the_version_and_is_idempotent(
    hub_settings: Settings, tmp_path: Path
) -> None:
    path = str(benefit(tmp_path, *V1))
    first = await govhub(hub_settings, "schema", "register", path, "--as", "akto.civil", "--json")
    assert first.code == 0, first.err
    data = first.json()
    assert (data["subject"], data["version"], data["created"]) == (NAME, 1, True)
    assert data["registered_by"] == "akto.civil" and len(data["event_ids"]) == 1
    again = await govhub(hub_settings, "schema", "register", path, "--as", "akto.civil", "--json")
    assert again.code == 0, again.err
    assert (again.json()["version"], again.json()["created"]) == (1, False)
    human = await govhub(hub_settings, "schema", "register", path, "--as", "akto.civil")
    assert human.out.startswith(f"already registered: {NAME} as version 1 of {NAME}")


async def test_register_refuses_an_incompatible_schema_with_the_reasons_on_stderr(
    hub_settings: Settings, tmp_path: Path
) -> None:
    await govhub(
        hub_settings, "schema", "register", str(benefit(tmp_path / "a", *V1)), "--as", "akto.civil"
    )
    refused = await govhub(
        hub_settings,
        "schema",
        "register",
        str(benefit(tmp_path / "b", *BREAKING)),
        "--as",
        "akto.civil",
    )
    assert refused.code == 1
    assert f"is not BACKWARD compatible with version 1 of subject {NAME}" in refused.err
    assert "  - fields[1].type (field amount): reader (new schema) expects string" in refused.err
    assert "next namespace version" in refused.err
    assert refused.out == ""


async def test_compatibility_sets_the_subjects_mode_and_subject_renames_it(
    hub_settings: Settings, tmp_path: Path
) -> None:
    path = str(benefit(tmp_path, *V1))
    done = await govhub(
        hub_settings,
        "schema",
        "register",
        path,
        "--as",
        "akto.civil",
        "--subject",
        "akto.civil.payments",
        "--compatibility",
        "full_transitive",
        "--json",
    )
    assert done.code == 0, done.err
    assert (done.json()["subject"], done.json()["compatibility"]) == (
        "akto.civil.payments",
        "FULL_TRANSITIVE",
    )
    listed = await govhub(hub_settings, "schema", "list", "--json")
    rows = {r["subject"]: r for r in listed.json()["subjects"]}
    assert rows["akto.civil.payments"]["compatibility"] == "FULL_TRANSITIVE"
    assert rows["akto.civil.payments"]["owner"] == "akto.civil"


async def test_register_refuses_another_participants_subject(
    hub_settings: Settings, tmp_path: Path
) -> None:
    path = str(benefit(tmp_path, *V1))
    refused = await govhub(hub_settings, "schema", "register", path, "--as", "artux.civil")
    assert refused.code == 1
    assert refused.err.startswith(
        f"govhub: artux.civil may not register {NAME}: it belongs to akto.civil"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        (
            '{"type": "record", "name": "BenefitPaid", "namespace": "akto.civil.v1"}',
            "not a valid Avro schema",
        ),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "BenefitPaid",
                    "namespace": "akto.civil.v1",
                    "fields": [{"name": "amount", "type": "long", "default": "zero"}],
                }
            ),
            "not a valid Avro schema",
        ),
    ],
    ids=["invalid-json", "record-without-fields", "default-of-the-wrong-type"],
)
async def test_register_refuses_a_bad_file_before_touching_the_hub(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / f"{NAME}.avsc"
    path.write_text(text)
    home = tmp_path / "h"
    result = await govhub(None, "--home", str(home), "schema", "register", str(path))
    assert result.code == 1
    assert message in result.err and str(path) in result.err
    assert not (home / "run" / "servers.json").exists()  # no server was started for it


def amount_in(scale: int) -> tuple[dict[str, Any], ...]:
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": scale}
    return (fld("person_id", "string"), fld("amount", decimal))


async def test_register_refuses_a_decimal_scale_change_the_fingerprint_cannot_see(
    hub_settings: Settings, tmp_path: Path
) -> None:
    # Before, the second registration answered created: false, version 1, exit 0, and events
    # written with scale 3 were read by everyone with scale 2.
    def register(path: Path) -> Any:
        return govhub(
            hub_settings,
            "schema",
            "register",
            str(path),
            "--subject",
            "akto.civil.payments",
            "--compatibility",
            "NONE",
            "--as",
            "akto.civil",
            "--json",
        )

    first = await register(benefit(tmp_path / "a", *amount_in(2)))
    assert first.code == 0, first.err
    rescaled = benefit(tmp_path / "b", *amount_in(3))
    refused = await register(rescaled)
    assert refused.code == 1
    data = refused.json()
    assert (data["registered"], data["refusal"]) == (False, "indistinguishable")
    assert data["reasons"] == [
        "fields[1].type (field amount): decimal scale 3 in the new schema, scale 2 in the "
        "registered one"
    ]
    fingerprint = first.json()["fingerprint"]
    assert (
        "cannot be told apart from version 1 of akto.civil.payments: both have fingerprint "
        f"{fingerprint}" in refused.err
    )
    assert (
        "add a new field with the new decimal instead, or publish the type as "
        "akto.civil.v2.BenefitPaid" in refused.err
    )

    # the CI gate finds it too, although the file's own subject is not the one that holds it
    checked = await govhub(hub_settings, "schema", "check", str(rescaled), "--json")
    assert checked.code == 1
    [registry, _] = checked.json()["files"][0]["comparisons"]
    assert registry["status"] == "incompatible"
    assert registry["reasons"] == data["reasons"]
    assert registry["advice"][0].startswith("add a new field with the new decimal")


async def test_show_gives_each_version_its_own_schema_and_every_version_of_a_fingerprint(
    hub_settings: Settings, tmp_path: Path
) -> None:
    no_default = (*V1, fld("note", "string"))
    with_default = (*V1, fld("note", "string", default=""))
    for folder, fields in (("a", no_default), ("b", with_default)):
        done = await govhub(
            hub_settings,
            "schema",
            "register",
            str(benefit(tmp_path / folder, *fields)),
            "--as",
            "akto.civil",
            "--json",
        )
        assert done.code == 0 and done.json()["created"], done.err
    shown = [
        (await govhub(hub_settings, "schema", "show", NAME, "--version", v, "--json")).json()
        for v in ("1", "2")
    ]
    assert shown[0]["fingerprint"] == shown[1]["fingerprint"]
    assert ["default" in js["schema"]["fields"][2] for js in shown] == [False, True]
    by_fp = await govhub(hub_settings, "schema", "show", shown[0]["fingerprint"], "--json")
    assert [(v["version"], v["digest"]) for v in by_fp.json()["versions"]] == [
        (1, shown[0]["digest"]),
        (2, shown[1]["digest"]),
    ]


# --- list and show -----------------------------------------------------------------------------


async def test_list_and_show_by_name_and_by_fingerprint(
    hub_settings: Settings, tmp_path: Path
) -> None:
    listed = await govhub(hub_settings, "schema", "list", "--json")
    assert listed.code == 0, listed.err
    subjects = {r["subject"]: r for r in listed.json()["subjects"]}
    notice = subjects["gov.common.v1.Notice"]
    assert (notice["versions"], notice["owner"]) == (1, "pref.egov")

    by_name = await govhub(hub_settings, "schema", "show", "gov.common.v1.Notice", "--json")
    assert by_name.code == 0, by_name.err
    shown = by_name.json()
    assert shown["fingerprint"] == notice["fingerprint"]
    assert shown["schema"]["label_zh"] == "通知公告"

    by_fp = await govhub(hub_settings, "schema", "show", notice["fingerprint"], "--json")
    assert by_fp.json()["subjects"] == [{"subject": "gov.common.v1.Notice", "version": 1}]
    assert by_fp.json()["canonical"] == shown["canonical"]

    human = await govhub(hub_settings, "schema", "show", "gov.common.v1.ContactPoint")
    assert "通讯地址" in human.out  # Chinese field labels for people

    missing = await govhub(hub_settings, "schema", "show", "akto.civil.v1.Nothing")
    assert missing.code == 1
    assert "no subject or fingerprint 'akto.civil.v1.Nothing' is registered" in missing.err


# --- bench ---------------------------------------------------------------------------------------


async def test_bench_schema_runs_and_reports_both_figures(tmp_path: Path) -> None:
    result = await govhub(
        None,
        "--home",
        str(tmp_path / "h"),
        "bench",
        "schema",
        "--lookups",
        "2000",
        "--rounds",
        "1",
        "--schemas",
        "5",
        "--json",
    )
    assert result.code == 0, result.err
    figures = result.json()
    assert figures["lookup"]["govhub_per_s"] > 0 and figures["lookup"]["raw_dict_per_s"] > 0
    assert figures["check"]["mode"] == "FULL_TRANSITIVE" and figures["check"]["median_ms"] > 0
