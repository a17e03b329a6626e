"""Following a JetStream KV bucket: load every entry, then apply each update as it comes.

The receivers' local copies of the registries (participants, schemas) are dicts kept current
this way, so a lookup needs no request and keeps working while the prefecture is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

Apply = Callable[[str, str | None, bytes | None], None]
"""What a watch does with one entry: `(key, operation, value)`; DEL and PURGE carry no value."""


class BucketWatch:
    """Applies a bucket's entries through `apply`, and wakes whoever waits for a change."""

    def __init__(self, bucket: str, apply: Apply, *, name: str) -> None:
        self.bucket = bucket
        self._apply = apply
        self._name = name
        self._watcher: Any = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, js: Any) -> None:
        """Apply every entry the bucket holds, then keep applying updates in the background
        until `stop()`."""
        kv = await js.key_value(self.bucket)
        self._watcher = await kv.watchall()
        async for entry in self._watcher:
            if entry is None:  # the end of what the bucket held when the watch began
                break
            self._apply(entry.key, entry.operation, entry.value)
            self.changed()
        self._task = asyncio.create_task(self._follow(), name=self._name)

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry.key, entry.operation, entry.value)
                self.changed()

    def changed(self) -> None:
        """Wake the waiters of `wait_for` (the watch calls it; so may a direct update)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds, re-checking after each change (TimeoutError)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def stop(self) -> None:
        """Stop watching (idempotent)."""
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
            self._watcher = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
