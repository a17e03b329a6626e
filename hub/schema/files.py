"""Schema files as data: load `<full.name>.avsc` with references resolved, check the conventions.

A file holds one named type. A type it uses by name from another file (`gov.common.v1.Address`)
is found as `<full.name>.avsc` beside it, then in the shipped `schemas/` (fastavro's
`load_schema` convention), and inlined at its first use: the result is self-contained, is what
the registry stores, and has the same Parsing Canonical Form, hence fingerprint, as the codec's
`load_schema_file`. The conventions every shipped file follows are in `schemas/README.md`;
`conventions()` checks them. `git_previous()` reads the version committed at `HEAD`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.avro.graph import parse
from hub.codec import Schema, schema_from_json
from hub.errors import SchemaError
from hub.userfiles import json_problem, read_text
from schemas import SCHEMA_DIR

Lookup = Callable[[str], Any]
"""Full name → the JSON of `<full name>.avsc`, or None when there is no such file."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_VERSIONED_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.v[0-9]+$")
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class SchemaFile:
    """A loaded schema file: its own JSON, the self-contained form, and the parsed Schema."""

    path: Path
    raw: Any
    schema: Schema
    references: tuple[str, ...] = ()

    @property
    def expanded(self) -> Any:
        """The self-contained JSON (references inlined): what the registry stores."""
        return self.schema.source


def read_json(path: Path, text: str | None = None) -> Any:
    """A file's JSON, or a SchemaError naming the line and column of the syntax error."""
    if text is None:
        text = read_text(path, "the schema file", error=SchemaError)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON: {json_problem(exc)}") from None


def directory_lookup(*directories: Path) -> Lookup:
    """Find `<full.name>.avsc` in the first directory that has it (unreadable files raise)."""

    def lookup(full_name: str) -> Any:
        for directory in directories:
            candidate = directory / f"{full_name}.avsc"
            if candidate.is_file():
                return read_json(candidate)
        return None

    return lookup


def load_schema_path(
    path: Path, *, text: str | None = None, lookup: Lookup | None = None
) -> SchemaFile:
    """Load a schema file; references resolve beside it, then from the shipped `schemas/`."""
    raw = read_json(path, text)
    return build(raw, path, lookup or directory_lookup(path.parent, SCHEMA_DIR))


def build(raw: Any, path: Path, lookup: Lookup) -> SchemaFile:
    """Expand, parse and name-check the JSON of a schema file."""
    if not isinstance(raw, dict) or raw.get("type") not in NAMED:
        raise SchemaError(
            f'{path}: a schema file must hold one named type (a JSON object whose "type" is '
            "record, enum or fixed)"
        )
    expander = _Expander(lookup, path)
    expanded = expander.named(raw, "", "")
    try:
        schema = schema_from_json(expanded)
        check_resolvable(expanded)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    if path.name != f"{schema.name}.avsc":
        raise SchemaError(
            f"{path}: defines {schema.name}, so the file must be named {schema.name}.avsc"
        )
    return SchemaFile(path, raw, schema, tuple(expander.inlined))


def check_resolvable(schema_json: Any) -> None:
    """Refuse what fastavro lets pass but schema resolution cannot walk (a record without
    `fields`, for one): every registered version must stay checkable against later ones."""
    try:
        parse(schema_json)
    except ValueError as exc:
        raise SchemaError(f"the schema is not a valid Avro schema: {exc}") from exc


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Expander:
    """Copies schema JSON, inlining named types from other files at their first use."""

    def __init__(self, lookup: Lookup, path: Path) -> None:
        self.lookup = lookup
        self.path = path
        self.defined: set[str] = set()
        self.inlined: list[str] = []

    def type(self, js: Any, ns: str, where: str) -> Any:
        if isinstance(js, str):
            return self.reference(js, ns, where)
        if isinstance(js, list):
            return [self.type(b, ns, f"{where}[{i}]") for i, b in enumerate(js)]
        if not isinstance(js, dict):
            return js  # not a schema: parsing reports it with its path
        kind = js.get("type")
        if kind in NAMED:
            return self.named(js, ns, where)
        out = dict(js)
        if kind == "array" and "items" in js:
            out["items"] = self.type(js["items"], ns, f"{where}.items")
        elif kind == "map" and "values" in js:
            out["values"] = self.type(js["values"], ns, f"{where}.values")
        elif isinstance(kind, list | dict) or (isinstance(kind, str) and kind not in PRIMITIVES):
            out["type"] = self.type(kind, ns, where)
        return out

    def reference(self, name: str, ns: str, where: str) -> Any:
        if name in PRIMITIVES:
            return name
        full = _qualify(name, ns)
        if full in self.defined:
            return name
        found = self.lookup(full)
        if found is None:
            raise SchemaError(
                f"{self.path}: {where or '(root)'} uses the type {full}, which is neither defined "
                f"earlier in the file nor in a file {full}.avsc beside it or in the shipped schemas"
            )
        if not isinstance(found, dict) or found.get("type") not in NAMED:
            raise SchemaError(f"{self.path}: {full}.avsc does not hold a named type")
        self.inlined.append(full)
        namespace = full.rpartition(".")[0]
        # The referenced file's own namespace must hold wherever its type is inlined.
        return self.named(
            {**found, "name": full.rpartition(".")[2], "namespace": namespace}, "", where
        )

    def named(self, js: dict[str, Any], ns: str, where: str) -> Any:
        name = js.get("name")
        if not isinstance(name, str):
            return js  # parsing reports the missing name
        namespace = js.get("namespace")
        full = _qualify(name, namespace if isinstance(namespace, str) else ns)
        self.defined.add(full)
        own_ns = full.rpartition(".")[0]
        out = dict(js)
        fields = js.get("fields")
        if js.get("type") in ("record", "error") and isinstance(fields, list):
            out["fields"] = [
                {**f, "type": self.type(f["type"], own_ns, f"{where}.fields[{i}].type".lstrip("."))}
                if isinstance(f, dict) and "type" in f
                else f
                for i, f in enumerate(fields)
            ]
        return out


def conventions(raw: Any) -> list[str]:
    """Where a file's JSON breaks the conventions of `schemas/README.md` ([] if nowhere)."""
    if not isinstance(raw, dict) or raw.get("type") not in NAMED:
        return ["the file must hold one named type (record, enum or fixed) at the top level"]
    problems = []
    name = str(raw.get("name", ""))
    namespace = raw.get("namespace") if "." not in name else name.rpartition(".")[0]
    if not isinstance(namespace, str) or not _VERSIONED_NAMESPACE.match(namespace):
        problems.append(
            f"namespace {namespace!r} must end with a version token such as .v1 "
            "(the version lives in the namespace: gov.exchange.v1)"
        )
    problems += _labels(raw, "(root)", name or "the type", top=True)
    for where, full, js in _named_types(raw, "", ""):
        if where:
            problems += _labels(js, where, f"{js.get('type')} {full}", top=False)
        if js.get("type") in ("record", "error"):
            for i, f in enumerate(js.get("fields") or []):
                if isinstance(f, dict):
                    fname = f"{where}.fields[{i}]".lstrip(".")
                    problems += _labels(f, fname, f"field {f.get('name')}", top=True)
    return problems


def _labels(js: dict[str, Any], where: str, what: str, *, top: bool) -> list[str]:
    problems = []
    doc = js.get("doc")
    if not isinstance(doc, str) or not doc.strip():
        problems.append(f'{where}: {what} has no "doc" (say what it means)')
    if top:
        label = js.get("label_zh")
        if not isinstance(label, str) or not _CJK.search(label):
            problems.append(f'{where}: {what} has no "label_zh" (its Chinese label)')
    return problems


def _named_types(js: Any, ns: str, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, full name, JSON) of every named type a file's JSON defines, outermost first."""
    if isinstance(js, list):
        for i, branch in enumerate(js):
            yield from _named_types(branch, ns, f"{where}[{i}]")
        return
    if not isinstance(js, dict):
        return
    kind = js.get("type")
    if kind in NAMED:
        name, namespace = js.get("name"), js.get("namespace")
        if not isinstance(name, str):
            return
        full = _qualify(name, namespace if isinstance(namespace, str) else ns)
        yield where, full, js
        for i, f in enumerate(js.get("fields") or []):
            if isinstance(f, dict):
                inner = f"{where}.fields[{i}].type".lstrip(".")
                yield from _named_types(f.get("type"), full.rpartition(".")[0], inner)
    elif kind == "array":
        yield from _named_types(js.get("items"), ns, f"{where}.items")
    elif kind == "map":
        yield from _named_types(js.get("values"), ns, f"{where}.values")
    elif isinstance(kind, list | dict):
        yield from _named_types(kind, ns, where)


def defined_names(raw: Any) -> list[str]:
    """Full names of the named types a file's JSON defines itself (not the ones it uses)."""
    return [full for _, full, _ in _named_types(raw, "", "")]


@dataclass(frozen=True)
class GitPrevious:
    """What git knows of a file: not a work tree, not in HEAD, or the text committed there."""

    state: str  # "no-git", "new", "committed"
    text: str = ""
    toplevel: Path | None = None
    relative: str = ""

    def lookup(self, fallback: Lookup) -> Lookup:
        """Resolve references of the committed version from HEAD too, then from `fallback`."""
        folder = str(Path(self.relative).parent)

        def lookup(full_name: str) -> Any:
            if self.toplevel is not None:
                rel = f"{folder}/{full_name}.avsc" if folder != "." else f"{full_name}.avsc"
                text = _git(self.toplevel, "show", f"HEAD:{rel}")
                if text is not None:
                    return read_json(Path(f"HEAD:{rel}"), text)
            return fallback(full_name)

        return lookup


def git_previous(path: Path) -> GitPrevious:
    """The version of `path` committed at HEAD of its git work tree, if there is one."""
    top = _git(path.resolve().parent, "rev-parse", "--show-toplevel")
    if top is None:
        return GitPrevious("no-git")
    toplevel = Path(top.strip())
    relative = path.resolve().relative_to(toplevel.resolve()).as_posix()
    text = _git(toplevel, "show", f"HEAD:{relative}")
    if text is None:
        return GitPrevious("new", toplevel=toplevel, relative=relative)
    return GitPrevious("committed", text, toplevel, relative)


def _git(cwd: Path, *args: str) -> str | None:
    """stdout of a read-only git command, or None if git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def collect(paths: Sequence[Path]) -> list[Path]:
    """The `.avsc` files named, directories expanded to the `.avsc` files they hold."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.glob("*.avsc"))
        else:
            found.append(path)
    return found
