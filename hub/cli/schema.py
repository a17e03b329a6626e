"""`govhub schema check|register|list|show`: the schema registry and its CI gate."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hub.avro.compat import Mode
from hub.cli.common import emit, json_option, run, say, settings
from hub.display import Part, console, line
from hub.errors import SchemaError, SchemaIncompatible, SchemaIndistinguishable
from hub.home import Settings
from hub.jsonout import dumps
from hub.runtime import open_hub
from hub.schema.files import collect, load_schema_path
from hub.schema.gate import (
    Comparison,
    GateReport,
    RegisteredSubject,
    RegisteredWriter,
    check_files,
)
from hub.schema.watch import Subject

MODES = [m.value for m in Mode]
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{16}$")


@click.group()
def schema() -> None:
    """The schema registry: versioned Avro contracts with enforced compatibility."""


def _hub_configured(s: Settings) -> bool:
    """Whether there is a registry to compare with, without creating a hub just for that."""
    return bool(s.nats_url or s.pg_dsn) or s.home.initialized_marker.exists()


async def _registered(
    s: Settings, names: list[str], fingerprints: list[bytes]
) -> tuple[dict[str, RegisteredSubject], dict[str, RegisteredWriter]]:
    """What the registry holds for these subjects, and the writers of these fingerprints."""
    async with open_hub(s) as hub:
        registry = hub.registry
        found: dict[str, RegisteredSubject] = {}
        for name in dict.fromkeys(names):
            doc = await registry.subject(name)
            if doc is None:
                continue
            history = await registry.history(name)
            found[name] = RegisteredSubject(
                name,
                Mode(doc.compatibility),
                tuple((v.version, v.fingerprint, js) for v, js in history),
            )
        writers: dict[str, RegisteredWriter] = {}
        for fp in dict.fromkeys(fingerprints):
            stored = await registry.schema(fp)
            holders = await registry.subjects_of(fp)
            if stored is not None and holders:
                subject, version = holders[0]
                writers[fp.hex()] = RegisteredWriter(
                    f"version {version} of {subject}", stored.schema
                )
        return found, writers


def _fingerprints(files: list[Path]) -> list[bytes]:
    """The fingerprints of the files that load (check_files reports the others)."""
    found = []
    for path in files:
        with contextlib.suppress(SchemaError):
            found.append(load_schema_path(path).schema.fingerprint)
    return found


@schema.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--compatibility",
    type=click.Choice(MODES, case_sensitive=False),
    default=None,
    help="Check with this mode instead of each subject's registered one (default BACKWARD).",
)
@click.option("--offline", is_flag=True, help="Do not compare with the registry.")
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    paths: tuple[Path, ...],
    compatibility: str | None,
    offline: bool,
    as_json: bool,
) -> None:
    """CI gate: parse every schema file, check it against the registry and git HEAD.

    PATH is a .avsc file or a directory of them (default: ./schemas). Exits non-zero, with
    the reasons, when a file does not parse, breaks the conventions of schemas/README.md, or
    is incompatible with what is registered or committed.
    """
    if not paths:
        if not Path("schemas").is_dir():
            raise SchemaError("no schema files given: name .avsc files or a directory of them")
        paths = (Path("schemas"),)
    files = collect(paths)
    if not files:
        raise SchemaError(f"no .avsc files in {', '.join(str(p) for p in paths)}")
    s = settings(ctx)
    registered: dict[str, RegisteredSubject] | None = None
    writers: dict[str, RegisteredWriter] = {}
    note = "not checked (--offline)"
    if not offline and _hub_configured(s):
        names = [p.name.removesuffix(".avsc") for p in files]
        registered, writers = run(_registered(s, names, _fingerprints(files)))
    elif not offline:
        note = "not checked: no hub here (set GOVHUB_NATS_URL and GOVHUB_PG_DSN, or --home)"
    mode = Mode(compatibility.upper()) if compatibility else None
    report = check_files(files, registered, registry_note=note, mode=mode, writers=writers)
    emit(as_json, report.to_json(), lambda: _print_report(report))
    if not report.ok:
        failed = len(report.failed)
        raise SchemaError(
            f"schema check failed: {failed} of {len(report.files)} file"
            f"{'s' if len(report.files) != 1 else ''} would break the contract"
        )


_MARK = {
    "compatible": ("compatible", "green"),
    "unchanged": ("unchanged", "green"),
    "new": ("new", "cyan"),
    "skipped": ("skipped", "dim"),
    "incompatible": ("INCOMPATIBLE", "red"),
}


def _print_report(report: GateReport) -> None:
    for f in report.files:
        if f.ok:
            states: list[Part] = []
            for c in f.comparisons:
                states += ["; " if states else "", f"{c.against} ", _MARK[c.status]]
            console.print(line(("✓", "green"), f" {f.path} {f.fingerprint or ''}  ", *states))
            continue
        console.print(line((f"✗ {f.path}", "red"), f" {f.name or ''} {f.fingerprint or ''}"))
        for problem in f.problems:
            console.print(f"    • {problem}")
        for c in f.comparisons:
            _print_comparison(c)
    console.print(
        f"{len(report.files)} checked, {len(report.failed)} failed; registry: {report.registry}"
    )


def _print_comparison(c: Comparison) -> None:
    console.print(line(f"    {c.against}: ", _MARK[c.status], f" — {c.detail}"))
    for reason in c.reasons:
        console.print(f"      - {reason}")
    for advice in c.advice:
        console.print(f"      → {advice}")


@schema.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--subject", default=None, help="Subject to register under (default: full name).")
@click.option(
    "--compatibility",
    type=click.Choice(MODES, case_sensitive=False),
    default=None,
    help="Set the subject's mode before checking (default: keep it; BACKWARD when new).",
)
@click.option(
    "--as", "as_id", default=None, help="Register as this participant (default: hub operator)."
)
@json_option
@click.pass_context
def register(
    ctx: click.Context,
    path: Path,
    subject: str | None,
    compatibility: str | None,
    as_id: str | None,
    as_json: bool,
) -> None:
    """Register a schema file as the next version of its subject (signed and audited)."""
    schema_file = load_schema_path(path)
    mode = Mode(compatibility.upper()) if compatibility else None

    async def go() -> dict[str, Any]:
        async with open_hub(settings(ctx)) as hub:
            registration = await hub.registry.register(
                schema_file.schema, subject=subject, compatibility=mode, as_id=as_id
            )
        return registration.to_json()

    try:
        data = run(go())
    except SchemaIncompatible as exc:
        if as_json:
            refusal = (
                "indistinguishable" if isinstance(exc, SchemaIndistinguishable) else "incompatible"
            )
            click.echo(
                dumps(
                    {
                        "registered": False,
                        "refusal": refusal,
                        "error": str(exc),
                        "reasons": exc.reasons,
                    }
                )
            )
        say(f"govhub: {exc}")
        for reason in exc.reasons:
            say(f"  - {reason}")
        say(f"        {exc.diagnostics()}")
        sys.exit(1)

    def human() -> None:
        what = "registered" if data["created"] else "already registered:"
        console.print(
            f"{what} {data['name']} as version {data['version']} of {data['subject']} "
            f"({data['compatibility']}, fingerprint {data['fingerprint']}, "
            f"by {data['registered_by']})"
        )

    emit(as_json, data, human)


@schema.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List every subject with its mode and latest version."""

    async def go() -> list[Subject]:
        async with open_hub(settings(ctx)) as hub:
            return await hub.registry.subjects()

    subjects = run(go())
    rows = [_summary(s) for s in subjects]

    def human() -> None:
        table = Table("subject", "owner", "mode", "versions", "latest fingerprint", "by")
        for r in rows:
            table.add_row(
                r["subject"],
                r["owner"],
                r["compatibility"],
                str(r["versions"]),
                r["fingerprint"] or "",
                r["registered_by"] or "",
            )
        console.print(table)

    emit(as_json, {"subjects": rows, "count": len(rows)}, human)


def _summary(s: Subject) -> dict[str, Any]:
    latest = s.latest
    return {
        "subject": s.subject,
        "owner": s.owner,
        "compatibility": s.compatibility,
        "versions": len(s.versions),
        "latest_version": latest.version if latest else None,
        "name": latest.name if latest else None,
        "fingerprint": latest.fingerprint if latest else None,
        "registered_by": latest.registered_by if latest else None,
        "registered_at": latest.registered_at if latest else None,
    }


@schema.command()
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="A version of the subject.")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, version: int | None, as_json: bool) -> None:
    """Show a subject (its versions and latest schema) or one schema by FINGERPRINT."""

    async def go() -> dict[str, Any]:
        async with open_hub(settings(ctx)) as hub:
            registry = hub.registry
            if _FINGERPRINT.match(name) and version is None:
                fp = bytes.fromhex(name.lower())
                stored = await registry.schema(fp)
                if stored is not None:
                    subjects = await registry.subjects_of(fp)
                    versions = await registry.versions_of(fp)
                    return {
                        **stored.to_json(),
                        "subjects": [{"subject": s, "version": v} for s, v in subjects],
                        "versions": [v.to_json() for v in versions],
                    }
            doc = await registry.subject(name)
            if doc is None or not doc.versions:
                raise SchemaError(
                    f"no subject or fingerprint {name!r} is registered; "
                    "`govhub schema list` shows what is"
                )
            chosen = doc.latest if version is None else None
            for v in doc.versions:
                if v.version == version:
                    chosen = v
            if chosen is None:
                raise SchemaError(f"subject {name} has no version {version}")
            stored = await registry.schema(bytes.fromhex(chosen.fingerprint))
            own = await registry.version(name, chosen.version)
            assert stored is not None and own is not None
            return {
                **doc.to_json(),
                "version": chosen.version,
                "fingerprint": chosen.fingerprint,
                "digest": own.digest,
                "name": stored.name,
                "canonical": stored.canonical,
                "schema": own.schema,
            }

    data = run(go())
    emit(as_json, data, lambda: _print_schema(data))


def _print_schema(data: dict[str, Any]) -> None:
    head = Table(show_header=False, box=None)
    for key in ("subject", "name", "version", "fingerprint", "compatibility", "owner"):
        if data.get(key) is not None:
            head.add_row(key, str(data[key]))
    for s in data.get("subjects", []):
        head.add_row("subject", f"{s['subject']} v{s['version']}")
    console.print(head)
    js = data["schema"]
    console.print(line((js.get("label_zh", ""), "bold"), f" {js.get('doc', '')}"))
    if js.get("type") == "record":
        table = Table("field", "中文", "type", "doc")
        for f in js.get("fields", []):
            table.add_row(
                f.get("name", ""),
                f.get("label_zh", ""),
                type_text(f.get("type")),
                f.get("doc", ""),
            )
        console.print(table)
    else:
        console.print(json.dumps(js, ensure_ascii=False, indent=2))


def type_text(js: Any) -> str:
    """A field type as a person reads it: `null | gov.common.v1.Address`, `array<string>`."""
    if isinstance(js, str):
        return js
    if isinstance(js, list):
        return " | ".join(type_text(branch) for branch in js)
    if not isinstance(js, dict):
        return json.dumps(js, ensure_ascii=False)
    kind = js.get("type")
    if kind in ("record", "enum", "fixed", "error"):
        namespace = js.get("namespace")
        name = str(js.get("name", ""))
        return f"{namespace}.{name}" if namespace and "." not in name else name
    if kind == "array":
        return f"array<{type_text(js.get('items'))}>"
    if kind == "map":
        return f"map<{type_text(js.get('values'))}>"
    logical = js.get("logicalType")
    return f"{type_text(kind)} ({logical})" if logical else type_text(kind)


COMMANDS = [schema]
