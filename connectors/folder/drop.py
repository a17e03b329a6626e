"""The drop-folder source: files office staff put into `drop/` become records once settled."""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog

from connectors.folder.files import (
    SIDECAR,
    check_writable,
    free_name,
    ignored,
    sha256_file,
    write_atomically,
)
from hub.plugin import (
    Check,
    ConnectorContext,
    Outcome,
    Record,
    ServerUnavailable,
    Verdict,
    rfc3339,
    wait_event,
)

log = structlog.get_logger("connectors.folder")


@dataclass(frozen=True, kw_only=True)
class DropOptions:
    """`[adapters.connector]` of a folder source."""

    path: Path
    settle_seconds: float = 2.0
    scan_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.settle_seconds < 0 or self.scan_interval <= 0:
            raise ValueError("settle_seconds must be ≥ 0 and scan_interval > 0")


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
        check_writable(root)
        if not root.is_dir():
            return Check(f"{root} will be created on first run, with drop/ sent/ failed/")
        waiting = (
            sorted(p for p in self.drop.iterdir() if p.is_file() and not ignored(p.name))
            if self.drop.is_dir()
            else []
        )
        sample = await asyncio.to_thread(self._record, waiting[0]) if waiting else None
        return Check(f"{root}: {len(waiting)} file(s) waiting in drop/", sample)
