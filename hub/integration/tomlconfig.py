"""Frozen dataclasses from TOML tables, checked once at the edge with every error naming its path.

`load(Options, table, "adapters[1].connector")` returns an `Options` or raises ConfigError with
the exact key path (`adapters[1].connector.table: unknown key "tabel" (did you mean "table"?)`),
so a wrong config fails when it is read, not an hour into a run. Secrets are `Secret` fields:
a reference to an environment variable or a file, never an inline value, because config files
end up in version control, tickets and screenshots.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from hub.errors import ConfigError
from hub.userfiles import read_text

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


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


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
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def load(cls: type[T], data: Any, path: str) -> T:
    """Build the frozen dataclass `cls` from a TOML table, refusing unknown or missing keys."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a table, got {_shown(data)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            where = _join(path, key)
            raise ConfigError(f'{where}: unknown key "{key}"{_suggest(key, list(fields))}')
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(path, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f'{path or "the file"}: missing key "{name}"')
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{path or 'the file'}: {exc}") from None


def describe_fields(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(name, type, default) of each field, for `govhub adapter check` and the docs."""
    hints = _hints(cls)
    rows = []
    for spec in dataclasses.fields(cls):
        if spec.default is not dataclasses.MISSING:
            default = repr(spec.default)
        elif spec.default_factory is not dataclasses.MISSING:
            default = repr(spec.default_factory())
        else:
            default = "required"
        rows.append((spec.name, str(hints[spec.name]).replace("typing.", ""), default))
    return rows
