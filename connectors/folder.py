"""Folder connector: a drop folder office staff put files into, and an inbox folder they read.

```
<path>/drop/      staff put files here (with an optional sidecar `<file>.toml`)
<path>/sending/   claimed files while they are being sent (resumed after a crash)
<path>/sent/      sent files, each with `<file>.result.txt` (what it became)
<path>/failed/    refused files, each with `<file>.reason.txt` (why, for a person)
<path>/inbox/     received files (sink), each written atomically with `<file>.toml` beside it
```

A file is picked up only once it is complete: its size and modification time must stay the
same for `settle_seconds` (a copy over the network or a scanner still writing keeps changing
them), and names ending in `.part`, `.tmp` or `.crdownload`, hidden files and Office lock
files (`~$…`) are never picked up, so a program can write `name.part` and rename it when done.
The folder is scanned every `scan_interval` seconds: file shares (SMB, NFS) do not deliver
change notifications reliably, so a scan is the one mechanism that works everywhere.

The connector knows nothing of documents: a record is the file (name, size, SHA-256, time)
and its sidecar as a table; the adapter decides what they mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import time
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog

from hub.plugin import (
    Check,
    ConnectorContext,
    Outcome,
    Record,
    ServerUnavailable,
    Sink,
    Source,
    Verdict,
    dumps,
    rfc3339,
    wait_event,
)

log = structlog.get_logger("connectors.folder")

SIDECAR = ".toml"
_INCOMPLETE = (".part", ".tmp", ".crdownload", ".partial")


def ignored(name: str) -> bool:
    """Names never picked up: partial downloads, hidden and lock files, sidecars, our notes."""
    return (
        name.startswith((".", "~$"))
        or name.endswith(_INCOMPLETE)
        or name.endswith((SIDECAR, ".result.txt", ".reason.txt"))
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (2)`, `name (3)`… if taken: staff files are never overwritten."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while target.exists():
        target = folder / f"{stem} ({number}){suffix}"
        number += 1
    return target


def write_atomically(target: Path, data: bytes | Path) -> None:
    """Write bytes (or copy a file) to `target` so that it appears complete or not at all."""
    part = target.with_name(f".{target.name}.part")
    if isinstance(data, Path):
        shutil.copyfile(data, part)
    else:
        part.write_bytes(data)
    with part.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, kw_only=True)
class DropOptions:
    """`[adapters.connector]` of a folder source."""

    path: Path
    settle_seconds: float = 2.0
    scan_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.settle_seconds < 0 or self.scan_interval <= 0:
            raise ValueError("settle_seconds must be ≥ 0 and scan_interval > 0")


@dataclass(frozen=True, kw_only=True)
class InboxOptions:
    """`[adapters.connector]` of a folder sink."""

    path: Path


class FileDelivery:
    """A claimed file in `sending/`."""

    __slots__ = ("_file", "_record", "_source")

    def __init__(self, source: DropFolderSource, file: Path, record: Record) -> None:
        self._source = source
        self._file = file
        self._record = record

    @property
    def record(self) -> Record:
        """The file as a record (`content` is its path in `sending/`)."""
        return self._record

    async def ack(self, outcome: Outcome) -> None:
        """Move the file to `sent/` or `failed/` with a note saying what happened."""
        await asyncio.to_thread(self._source._settle, self._file, outcome)

    async def nak(self, delay: float) -> None:
        """Leave the file in `sending/` and hand it out again after `delay` seconds."""
        asyncio.get_running_loop().call_later(delay, self._source._again, self._file)


class DropFolderSource:
    """Complete files from `drop/`, claimed into `sending/`, settled into `sent/` or `failed/`."""

    dead_letters: ClassVar[bool] = True

    def __init__(self, options: DropOptions, context: ConnectorContext) -> None:
        self.options = options
        self._context = context
        root = options.path
        self.drop, self.sending = root / "drop", root / "sending"
        self.sent, self.failed = root / "sent", root / "failed"
        self._seen: dict[str, tuple[int, int, float]] = {}
        self._due: list[Path] = []
        self._wake = asyncio.Event()
        self._started = False

    async def start(self) -> None:
        """Create the folders; files left in `sending/` by a crash are handed out first."""
        if self._started:
            return
        try:
            for folder in (self.drop, self.sending, self.sent, self.failed):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerUnavailable(f"cannot use the folder {self.options.path}: {exc}") from exc
        self._due = sorted(p for p in self.sending.iterdir() if p.is_file() and not ignored(p.name))
        self._seen.clear()
        self._started = True

    async def stop(self) -> None:
        """Stop; files in `sending/` stay there and are resumed next time."""
        self._started = False
        self._due.clear()

    def _again(self, file: Path) -> None:
        if self._started and file.exists():
            self._due.append(file)
            self._wake.set()

    def _stable(self) -> list[Path]:
        """Files in `drop/` whose size and mtime have not changed for `settle_seconds`."""
        now = time.monotonic()
        ready, present = [], set()
        for entry in os.scandir(self.drop):
            if not entry.is_file() or ignored(entry.name):
                continue
            present.add(entry.name)
            st = entry.stat()
            sig = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(entry.name)
            if seen is None or seen[:2] != sig:
                self._seen[entry.name] = (*sig, now)
                if self.options.settle_seconds > 0:
                    continue
                seen = (*sig, now)
            if now - seen[2] >= self.options.settle_seconds and self._sidecar_settled(entry.name):
                ready.append(Path(entry.path))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return sorted(ready, key=lambda p: p.stat().st_mtime_ns)

    def _sidecar_settled(self, name: str) -> bool:
        sidecar = self.drop / (name + SIDECAR)
        if not sidecar.exists():
            return True
        st = sidecar.stat()
        return time.time() - st.st_mtime >= self.options.settle_seconds

    def _claim(self, file: Path) -> Path | None:
        """Move a file (and its sidecar) into `sending/`; None if someone else took it."""
        target = free_name(self.sending, file.name)
        sidecar = file.with_name(file.name + SIDECAR)
        try:
            if sidecar.exists():
                os.replace(sidecar, target.with_name(target.name + SIDECAR))
            os.replace(file, target)
        except FileNotFoundError:
            return None
        self._seen.pop(file.name, None)
        return target

    def _record(self, file: Path) -> Record:
        st = file.stat()
        digest = sha256_file(file)
        value: dict[str, Any] = {
            "name": file.name,
            "size": st.st_size,
            "sha256": digest,
            "modified": datetime.fromtimestamp(st.st_mtime, UTC),
            "meta": {},
        }
        sidecar = file.with_name(file.name + SIDECAR)
        if sidecar.exists():
            try:
                value["meta"] = tomllib.loads(sidecar.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                value["meta_error"] = f"the sidecar {sidecar.name} is not valid TOML: {exc}"
        return Record(
            key=f"{file.name}#{digest[:16]}",
            value=value,
            time=datetime.fromtimestamp(st.st_mtime, UTC),
            content=file,
        )

    async def deliveries(self) -> AsyncIterator[FileDelivery]:
        """Claimed files, oldest first; scans `drop/` every `scan_interval` seconds."""
        while True:
            self._wake.clear()
            if not self.options.path.exists():
                raise ServerUnavailable(f"the folder {self.options.path} is not there")
            while self._due:
                file = self._due.pop(0)
                if file.exists():
                    record = await asyncio.to_thread(self._record, file)
                    yield FileDelivery(self, file, record)
            for file in await asyncio.to_thread(self._stable):
                claimed = await asyncio.to_thread(self._claim, file)
                if claimed is not None:
                    record = await asyncio.to_thread(self._record, claimed)
                    yield FileDelivery(self, claimed, record)
            await wait_event(self._wake, self.options.scan_interval)

    def _settle(self, file: Path, outcome: Outcome) -> None:
        if not file.exists():
            return
        folder = self.sent if outcome.verdict is Verdict.DONE else self.failed
        target = free_name(folder, file.name)
        sidecar = file.with_name(file.name + SIDECAR)
        if sidecar.exists():
            os.replace(sidecar, target.with_name(target.name + SIDECAR))
        if outcome.verdict is Verdict.DONE:
            note = target.with_name(target.name + ".result.txt")
            text = f"sent at {rfc3339(datetime.now(UTC))}\n"
            if outcome.ref:
                text += f"document/ref: {outcome.ref}\n"
            if outcome.event_id:
                text += f"event id: {outcome.event_id}\n"
        else:
            note = target.with_name(target.name + ".reason.txt")
            text = f"未能发送 (not sent) at {rfc3339(datetime.now(UTC))}\n{outcome.detail}\n"
        write_atomically(note, text.encode())
        os.replace(file, target)
        log.info("folder.settled", file=file.name, result=outcome.verdict.value)

    async def check(self) -> Check:
        """The folder is there and writable; the oldest waiting file is the sample."""
        root = self.options.path
        _check_writable(root)
        if not root.is_dir():
            return Check(f"{root} will be created on first run, with drop/ sent/ failed/")
        waiting = (
            sorted(p for p in self.drop.iterdir() if p.is_file() and not ignored(p.name))
            if self.drop.is_dir()
            else []
        )
        sample = await asyncio.to_thread(self._record, waiting[0]) if waiting else None
        return Check(f"{root}: {len(waiting)} file(s) waiting in drop/", sample)


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
        _check_writable(self.options.path)
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


def _check_writable(root: Path) -> None:
    """The folder (or, before the first run, the folder that will hold it) is writable."""
    existing = root if root.exists() else root.parent
    if not existing.is_dir():
        raise ServerUnavailable(f"neither {root} nor its parent folder exists")
    if not os.access(existing, os.W_OK):
        raise ServerUnavailable(f"{existing} is not writable for this user")


class FolderConnector:
    """The `folder` entry point."""

    name = "folder"
    source_options = DropOptions
    sink_options = InboxOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """A drop-folder source."""
        return DropFolderSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """An inbox-folder sink."""
        return InboxFolderSink(options, context)


CONNECTOR = FolderConnector()
