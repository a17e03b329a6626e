"""The inbox-folder sink: each record's file (or its value as JSON) written into `inbox/`,
with the sender's metadata in a TOML sidecar beside it."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.folder.files import (
    SIDECAR,
    check_writable,
    free_name,
    ignored,
    sha256_file,
    write_atomically,
)
from hub.plugin import Check, ConnectorContext, Outcome, Record, ServerUnavailable, dumps, rfc3339


@dataclass(frozen=True, kw_only=True)
class InboxOptions:
    """`[adapters.connector]` of a folder sink."""

    path: Path


class InboxFolderSink:
    """Writes each record's file (or its value as JSON) into `inbox/`, atomically."""

    def __init__(self, options: InboxOptions, context: ConnectorContext) -> None:
        self.options = options
        self._context = context
        self.inbox = options.path / "inbox"

    async def start(self) -> None:
        """Create `inbox/`; idempotent."""
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerUnavailable(f"cannot use the folder {self.options.path}: {exc}") from exc

    async def stop(self) -> None:
        """Nothing to release."""

    async def check(self) -> Check:
        """The folder is there and writable."""
        check_writable(self.options.path)
        count = (
            sum(1 for p in self.inbox.iterdir() if not ignored(p.name))
            if self.inbox.is_dir()
            else 0
        )
        return Check(f"{self.inbox}: {count} file(s) received so far")

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """Write each record; a file already there with the same content counts as written."""
        outcomes = []
        for record in records:
            try:
                outcomes.append(await asyncio.to_thread(self._write, record))
            except OSError as exc:
                outcomes.append(Outcome.unavailable(f"cannot write to {self.inbox}: {exc}"))
            except UnicodeEncodeError:
                # A lone surrogate has no UTF-8 form: no file can hold the text as sent.
                outcomes.append(Outcome.reject("the record holds text that is not valid Unicode"))
        return outcomes

    def _write(self, record: Record) -> Outcome:
        name = str(record.value.get("file_name") or f"{record.id or record.key}.json")
        name = Path(name).name  # never a path: a sender must not choose where we write
        if record.content is not None:
            data: bytes | Path = record.content
            digest = sha256_file(record.content)
        else:
            data = dumps(record.value).encode()
            digest = hashlib.sha256(data).hexdigest()
        target = self.inbox / name
        if target.exists():
            if sha256_file(target) == digest:
                return Outcome.done(event_id=record.id or "", ref=str(target))
            target = free_name(
                self.inbox,
                f"{Path(name).stem} ({(record.id or record.key)[:8]}){Path(name).suffix}",
            )
            if target.exists() and sha256_file(target) == digest:
                return Outcome.done(event_id=record.id or "", ref=str(target))
        meta = record.value.get("meta")
        if isinstance(meta, dict):
            lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in meta.items() if v is not None]
            write_atomically(
                target.with_name(target.name + SIDECAR), "\n".join(lines).encode() + b"\n"
            )
        write_atomically(target, data)
        return Outcome.done(event_id=record.id or "", ref=str(target))


def _toml_value(value: Any) -> str:
    """A TOML value for a simple sidecar (strings, numbers, booleans, lists of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, datetime):
        return rfc3339(value)
    return _toml_string(str(value))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_key(key: Any) -> str:
    """A key as TOML writes it: bare when it can be, else quoted.

    The keys come from another department's record: written bare, a key holding `=`, a
    newline or `[` would add keys and tables of its own choosing to the sidecar.
    """
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else _toml_string(text)


def _toml_string(text: str) -> str:
    """A TOML basic string holding ``text`` exactly: quotes, backslashes and every control
    character escaped (TOML refuses raw controls, and a raw newline would end the value)."""
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
