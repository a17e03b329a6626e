"""Every config file an operator edits, read once into frozen dataclasses, errors naming the key.

`read(ScenarioFile, path, "the scenario file")` (or `parse` for text already read) returns the
dataclass or raises one ConfigError sentence that starts with the file's name and names the
exact key path: an unknown key with the closest known one
(`a.toml: adapters[1].connector.tabel: unknown key "tabel" (did you mean "table"?)`), a value
of the wrong type with the type expected (`hub.suite: expected a string, got 1`), a missing
required key, a number out of its `Between` bounds. A wrong config fails when it is read, not
an hour into a run. `load` does the same for a table already parsed (a section of a file, or
a JSON document such as the federation plan); `in_file` prefixes the checks a module makes
after loading (a unit that must exist, an id's syntax) with the file's name the same way.

Secrets are `Secret` fields: a reference to an environment variable or a file, never an inline
value, because config files end up in version control, tickets and screenshots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import math
import os
import types
import typing
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from hub.errors import ConfigError
from hub.userfiles import parse_toml, read_text

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret given by reference: `{ env = "NAME" }` or `{ file = "/path" }`."""

    env: str | None = None
    file: Path | None = None

    def reveal(self) -> str:
        """Read the secret now; a missing variable or file is a ConfigError naming the reference."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"the environment variable {self.env} is not set")
            return value
        assert self.file is not None
        return read_text(self.file, "the secret file", error=ConfigError).strip()

    def describe(self) -> str:
        """Where the secret comes from, safe to print."""
        return f"env {self.env}" if self.env is not None else f"file {self.file}"

    def __repr__(self) -> str:
        return f"Secret({self.describe()})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def suggest(key: str, known: Collection[str]) -> str:
    """` (did you mean "table"?)` when a known key is close to `key`, else the empty string."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


@dataclass(frozen=True, slots=True)
class Between:
    """Bounds of a number field, inclusive: `Annotated[int, Between(1, 366)]` (None: open)."""

    low: float | None = None
    high: float | None = None

    def check(self, value: float, kind: str, path: str) -> None:
        """Raise ConfigError naming `path` when `value` lies outside the bounds."""
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ConfigError(f"{path}: expected {kind} {self._range()}, got {_shown(value)}")

    def _range(self) -> str:
        if self.high is None:
            return f"of at least {self.low:g}"
        if self.low is None:
            return f"of at most {self.high:g}"
        return f"from {self.low:g} to {self.high:g}"


def _type_name(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is Path:
        return "a path string"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any) -> str:
    """A config value as a person wrote it in TOML (Python's repr of a date is not that)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a value of another kind"


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *extras = get_args(tp)
        converted = _convert(base, value, path)
        for bounds in extras:
            if isinstance(bounds, Between):
                bounds.check(converted, _type_name(base), path)
        return converted
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(get_args(tp)):
            return None
        if len(options) == 1:
            return _convert(options[0], value, path)
        raise ConfigError(f"{path}: unsupported union type in the config schema")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{path}: {_shown(value)} is not one of {choices}")
        return value
    if origin is tuple:
        item = get_args(tp)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {_shown(value)}")
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {_shown(value)}")
        args = get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {str(k): _convert(item, v, _join(path, str(k))) for k, v in value.items()}
    if tp is Secret:
        return _secret(value, path)
    if dataclasses.is_dataclass(tp):
        return load(tp, value, path)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_shown(value)}")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        # TOML has nan and inf: neither is a number of seconds, bytes or days anyone means.
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value}")
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_shown(value)}")


def _secret(value: Any, path: str) -> Secret:
    if isinstance(value, str):
        raise ConfigError(
            f'{path}: secrets are given by reference, {{ env = "NAME" }} or '
            f'{{ file = "/path" }}, never inline (config files get copied and shared)'
        )
    if not isinstance(value, dict) or set(value) not in ({"env"}, {"file"}):
        raise ConfigError(f'{path}: expected {{ env = "NAME" }} or {{ file = "/path" }}')
    if "env" in value:
        if not isinstance(value["env"], str) or not value["env"]:
            raise ConfigError(f"{_join(path, 'env')}: expected the name of an environment variable")
        return Secret(env=value["env"])
    if not isinstance(value["file"], str) or not value["file"]:
        raise ConfigError(f"{_join(path, 'file')}: expected a file path")
    return Secret(file=Path(value["file"]).expanduser())


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A config class's resolved field types (resolving them costs more than the loading)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def load(cls: type[T], data: Any, path: str = "") -> T:
    """Build the frozen dataclass `cls` from a table found at key path `path` ("" for a file's
    top level), refusing unknown, missing and mistyped keys with ConfigError naming the path.

    A ValueError from the class's `__post_init__` (a rule across fields) becomes a ConfigError
    naming the table.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    where = f"{path}: " if path else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}expected a table, got {_shown(data)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(f'{_join(path, key)}: unknown key "{key}"{suggest(key, fields)}')
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(path, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f'{where}missing key "{name}"')
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}{exc}") from None


@contextlib.contextmanager
def in_file(name: str) -> Iterator[None]:
    """Prefix every ConfigError raised inside with the name of the file being checked."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}", hint=exc.hint) from None


def parse(cls: type[T], text: str, name: str) -> T:
    """The TOML `text` of the file `name` as the frozen dataclass `cls` (see `load`)."""
    data = parse_toml(text, name)
    with in_file(name):
        return load(cls, data)


def read(cls: type[T], path: Path, what: str) -> T:
    """Read the TOML file `path` (`what` names it in errors: `the scenario file`) as `cls`."""
    return parse(cls, read_text(path, what, error=ConfigError), str(path))
