"""A service's intake: whether it still takes new work, so that it can stop without losing any.

`govhub serve` shuts down in three steps: it closes every service's intake, gives the
services a grace period to finish what they hold (a fetched batch is applied and acked, not
abandoned half-way), then cancels whatever still runs. A service's loop asks `intake.open`
before it fetches, and returns once the intake is closed and its work is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from hub.waits import wait_event


class Intake:
    """Open until `close()`; loops check it before taking more work."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    @property
    def open(self) -> bool:
        """Whether the service may still fetch new work."""
        return not self._closed.is_set()

    def close(self) -> None:
        """Stop taking work (idempotent); waits in `rest()` end at once."""
        self._closed.set()

    async def rest(self, seconds: float) -> bool:
        """Sleep up to `seconds` between rounds, ending early if the intake closes; True if
        it is still open (the loop goes on)."""
        return not await wait_event(self._closed, seconds)

    async def closed(self) -> None:
        """Wait until the intake closes (a service with nothing to fetch idles on this)."""
        await self._closed.wait()

    async def unless_closed(self, wait: Coroutine[Any, Any, object]) -> bool:
        """Run `wait` (a wait with no work in hand: a standby's lock wait, a backoff) until it
        ends or the intake closes, whichever comes first; True if it ended, False if the
        intake closed and `wait` was cancelled. Its exception, if it raised one, propagates."""
        work = asyncio.ensure_future(wait)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({work, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if work.cancelled():
            return False
        work.result()
        return True
