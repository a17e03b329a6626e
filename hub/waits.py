"""Waiting for an event with a time limit, in a way that can always be cancelled."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most `seconds` for `event` to be set; True if it is set.

    Not `asyncio.wait_for(event.wait(), seconds)`: on Python 3.11 wait_for drops a
    cancellation that arrives just as the event is set (CPython gh-86296), and a service loop
    waiting that way then runs on after it was told to stop, and whoever awaits it hangs.
    """
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
