"""The CI gate behind `govhub schema check`: every schema file parsed, checked against what is
registered and what is committed in git, with reasons and advice a department developer can act on.

A file fails when it does not parse, breaks the conventions of `schemas/README.md`, defines a
type another file also defines, or is incompatible, under its subject's mode, with the
registered versions or with the version committed at git `HEAD`. It fails in every mode when
it has the fingerprint of a registered (or committed) schema but other logical types, which the
registry refuses: readers could not tell the two apart.

A file is "unchanged" only when it is the same schema as a version (hub/avro/identity.py);
one that differs only in defaults, aliases or docs is checked like any other change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.avro.compat import Incompatibility, Mode, Rule, check
from hub.avro.identity import Indistinguishable, digest, indistinguishable
from hub.errors import SchemaError
from hub.schema.files import (
    SchemaFile,
    build,
    conventions,
    defined_names,
    directory_lookup,
    git_previous,
    load_schema_path,
    read_json,
)
from schemas import SCHEMA_DIR

# What to do about each broken rule; the key's bool is True when the new schema is the reader
# (a backward check: consumers on the new schema read old events).
ADVICE: dict[tuple[Rule, bool], str] = {
    (Rule.MISSING_DEFAULT, True): 'give the new field a "default" (an optional value: type '
    '["null", ...] with "default": null); events written before it existed do not carry it',
    (Rule.MISSING_DEFAULT, False): "consumers still on the old version need this field and it "
    "has no default there: keep the field (you may stop filling it with real data), or first "
    "register a version that gives it a default",
    (Rule.TYPE_MISMATCH, True): "do not change a field's type in place (only widening such as "
    "int to long is readable); add a new field with the new type and a default instead",
    (Rule.TYPE_MISMATCH, False): "consumers still on the old version cannot read the new type "
    "(a widened int to long, for one); add a new field with the new type and a default instead",
    (Rule.NAME_MISMATCH, True): "keep the type's name, or list the old full name in the new "
    'type\'s "aliases"',
    (Rule.NAME_MISMATCH, False): "consumers on the old version only know the old name: keep it",
    (Rule.ENUM_SYMBOL, True): "events written earlier may carry this symbol: do not remove enum "
    "symbols",
    (Rule.ENUM_SYMBOL, False): "consumers on the old version do not know the new symbol: first "
    'register a version whose enum has a "default" symbol, then add symbols',
    (Rule.FIXED_SIZE, True): "a fixed type cannot change its size; define a new type",
    (Rule.FIXED_SIZE, False): "a fixed type cannot change its size; define a new type",
    (Rule.INVALID_DEFAULT, True): 'the "default" must be a value of the field\'s type (for a '
    'union, of one of its branches: null for ["null", ...])',
    (Rule.INVALID_DEFAULT, False): 'the old version\'s "default" does not fit its own type; '
    "keep the field in the new schema",
    (Rule.UNION_BRANCH, True): "events written earlier may use this union branch: do not "
    "remove union branches",
    (Rule.UNION_BRANCH, False): "consumers on the old version lack this union branch: do not "
    "add branches to an existing union (add a new field instead)",
    (Rule.UNION_NO_MATCH, True): "the new union has no branch for what was written before: "
    "keep the old type as a branch",
    (Rule.UNION_NO_MATCH, False): "the old union has no branch for what the new schema writes: "
    "keep writing a type the old union holds",
    (Rule.LOGICAL_TYPE, True): "adding or changing a logical type (timestamp-millis/micros, "
    "date, uuid) changes what the same bytes mean: add a new field instead",
    (Rule.LOGICAL_TYPE, False): "adding or changing a logical type (timestamp-millis/micros, "
    "date, uuid) changes what the same bytes mean: add a new field instead",
    (Rule.DECIMAL, True): "a decimal's precision and scale are part of every value: keep them, "
    "or add a new field",
    (Rule.DECIMAL, False): "a decimal's precision and scale are part of every value: keep them, "
    "or add a new field",
}

BREAKING_CHANGE = (
    "if the break is intended, publish the type under the next namespace version "
    "(….v2, in its own file): that starts a new subject with its own history"
)


@dataclass(frozen=True)
class RegisteredSubject:
    """What the registry holds for one subject: its mode and every version's schema JSON."""

    subject: str
    mode: Mode
    versions: tuple[tuple[int, str, Any], ...]  # (version, fingerprint hex, its own schema JSON)


@dataclass(frozen=True)
class RegisteredWriter:
    """The schema the registry decodes a fingerprint's bodies with, and where it is registered."""

    where: str  # "version 1 of akto.civil.v1.X"
    schema: Any


@dataclass
class Comparison:
    """One comparison of a file: with the registry or with git HEAD."""

    against: str
    status: str  # compatible, incompatible, unchanged, new, skipped
    detail: str
    mode: str | None = None
    reasons: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As `schema check --json` prints it."""
        return {
            "against": self.against,
            "status": self.status,
            "detail": self.detail,
            "mode": self.mode,
            "reasons": self.reasons,
            "advice": self.advice,
        }


@dataclass
class FileReport:
    """The verdict on one file."""

    path: str
    name: str | None = None
    fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file passes the gate."""
        return not self.problems and all(c.status != "incompatible" for c in self.comparisons)

    def to_json(self) -> dict[str, Any]:
        """As `schema check --json` prints it."""
        return {
            "path": self.path,
            "ok": self.ok,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "problems": self.problems,
            "comparisons": [c.to_json() for c in self.comparisons],
        }


@dataclass
class GateReport:
    """The verdict on every file checked."""

    files: list[FileReport]
    registry: str

    @property
    def ok(self) -> bool:
        """Whether every file passes."""
        return all(f.ok for f in self.files)

    @property
    def failed(self) -> list[FileReport]:
        """The files that do not pass."""
        return [f for f in self.files if not f.ok]

    def to_json(self) -> dict[str, Any]:
        """The one JSON document of `schema check --json`."""
        return {
            "ok": self.ok,
            "checked": len(self.files),
            "failed": len(self.failed),
            "registry": self.registry,
            "files": [f.to_json() for f in self.files],
        }


def check_files(
    paths: Sequence[Path],
    registered: Mapping[str, RegisteredSubject] | None,
    *,
    registry_note: str = "not checked",
    use_git: bool = True,
    mode: Mode | None = None,
    writers: Mapping[str, RegisteredWriter] | None = None,
) -> GateReport:
    """Check schema files; `registered` maps subjects to what the registry holds (None: skip).

    `writers` maps fingerprints (hex) registered in any subject to their writer schema, so a
    file whose fingerprint another subject registered with other logical types fails too.
    """
    reports: list[FileReport] = []
    loaded: dict[Path, SchemaFile] = {}
    for path in paths:
        report = FileReport(str(path))
        reports.append(report)
        try:
            loaded[path] = load_schema_path(path)
        except SchemaError as exc:
            report.problems.append(str(exc))
            continue
        report.name = loaded[path].schema.name
        report.fingerprint = loaded[path].schema.fingerprint_hex
        report.problems += [f"{path}: {p}" for p in conventions(loaded[path].raw)]
    _duplicates(reports, loaded)
    for report, path in zip(reports, paths, strict=True):
        if (schema_file := loaded.get(path)) is None:
            continue
        subject = registered.get(schema_file.schema.name) if registered is not None else None
        if registered is None:
            report.comparisons.append(Comparison("registry", "skipped", registry_note))
        else:
            writer = (writers or {}).get(schema_file.schema.fingerprint_hex)
            report.comparisons.append(_against_registry(schema_file, subject, mode, writer))
        if use_git:
            report.comparisons.append(_against_git(schema_file, subject, mode))
    return GateReport(reports, registry_note if registered is None else "checked")


def _duplicates(reports: list[FileReport], loaded: Mapping[Path, SchemaFile]) -> None:
    defined = {path: defined_names(f.raw) for path, f in loaded.items()}
    counts = Counter(name for names in defined.values() for name in names)
    for report in reports:
        path = Path(report.path)
        for name in defined.get(path, []):
            if counts[name] > 1:
                others = [str(p) for p, names in defined.items() if name in names and p != path]
                report.problems.append(
                    f"{path}: defines {name}, which {', '.join(others)} also defines; a type "
                    f"used by several schemas belongs in its own file {name}.avsc"
                )


def _against_registry(
    schema_file: SchemaFile,
    subject: RegisteredSubject | None,
    mode: Mode | None,
    writer: RegisteredWriter | None,
) -> Comparison:
    schema = schema_file.schema
    name = subject.subject if subject is not None else schema.name
    for version, fp, js in subject.versions if subject is not None else ():
        if digest(js) == schema.digest:
            return Comparison("registry", "unchanged", f"registered as version {version} of {name}")
        if writer is None and fp == schema.fingerprint_hex:
            writer = RegisteredWriter(f"version {version} of {name}", js)
    if writer is not None:
        refusal = indistinguishable(
            schema.name, schema.fingerprint_hex, schema_file.expanded, writer.schema, writer.where
        )
        if refusal is not None:
            return _refused("registry", refusal)
    if subject is None or not subject.versions:
        return Comparison("registry", "new", f"subject {schema.name} has no registered version yet")
    chosen = mode or subject.mode
    latest = subject.versions[-1][0]
    scope = "every registered version" if chosen.transitive else f"registered version {latest}"
    findings = check(schema_file.expanded, [js for _, _, js in subject.versions], chosen)
    return _verdict("registry", f"{scope} of {subject.subject}", chosen, findings, scoped=True)


def _against_git(
    schema_file: SchemaFile, subject: RegisteredSubject | None, mode: Mode | None
) -> Comparison:
    previous = git_previous(schema_file.path)
    if previous.state == "no-git":
        return Comparison("git HEAD", "skipped", "not in a git work tree")
    if previous.state == "new":
        return Comparison("git HEAD", "new", "the file is not in HEAD (a new file)")
    fallback = directory_lookup(schema_file.path.parent, SCHEMA_DIR)
    try:
        raw = read_json(Path(f"HEAD:{previous.relative}"), previous.text)
        old = build(raw, schema_file.path, previous.lookup(fallback))
    except SchemaError as exc:
        return Comparison("git HEAD", "skipped", f"the version in HEAD does not parse: {exc}")
    new = schema_file.schema
    if old.schema.digest == new.digest:
        return Comparison("git HEAD", "unchanged", "the same schema as in HEAD")
    if old.schema.fingerprint == new.fingerprint:
        where = f"the version committed at HEAD ({previous.relative})"
        refusal = indistinguishable(
            new.name, new.fingerprint_hex, schema_file.expanded, old.expanded, where
        )
        if refusal is not None:
            return _refused("git HEAD", refusal)
    if subject is not None and any(
        digest(js) == old.schema.digest for _, _, js in subject.versions
    ):
        return Comparison(
            "git HEAD", "skipped", "HEAD's version is registered: compared with the registry"
        )
    chosen = mode or (subject.mode if subject is not None else Mode.BACKWARD)
    findings = check(schema_file.expanded, [old.expanded], chosen, labels=["the version at HEAD"])
    return _verdict(
        "git HEAD", f"the version committed at HEAD ({previous.relative})", chosen, findings
    )


def _refused(against: str, refusal: Indistinguishable) -> Comparison:
    return Comparison(
        against, "incompatible", refusal.message, None, refusal.reasons, [refusal.advice]
    )


def _verdict(
    against: str,
    what: str,
    mode: Mode,
    findings: Sequence[Incompatibility],
    *,
    scoped: bool = False,
) -> Comparison:
    if not findings:
        return Comparison(against, "compatible", f"{mode.value} compatible with {what}", mode.value)
    advice: list[str] = []
    for finding in findings:
        # hub.avro.compat names the new schema's role "reader (new schema)" in backward findings
        new_reads = "new schema" in finding.reader_role
        text = f"{finding.path or '(root)'}: {ADVICE[(finding.rule, new_reads)]}"
        if text not in advice:
            advice.append(text)
    advice.append(BREAKING_CHANGE)
    return Comparison(
        against,
        "incompatible",
        f"not {mode.value} compatible with {what}: {meaning(mode, scoped=scoped)}",
        mode.value,
        [str(f) for f in findings],
        advice,
    )


def meaning(mode: Mode, *, scoped: bool = True) -> str:
    """What a mode promises, in one sentence for a developer (`scoped`: say which versions)."""
    parts = []
    if mode.backward:
        parts.append(
            "consumers that move to the new schema must still read events written "
            "with the older version"
        )
    if mode.forward:
        parts.append(
            "consumers still on the older version must read events written with the new schema"
        )
    if not parts:
        return "no compatibility is required"
    if not scoped:
        return " and ".join(parts)
    scope = " (every registered version)" if mode.transitive else " (the latest version)"
    return " and ".join(parts) + scope
