"""Waiting with a time limit: for an event, in a way that can always be cancelled, or by
polling a condition in another process's hands."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable


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


async def poll(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float, every: float
) -> bool:
    """Check `condition` every `every` seconds until it holds (True) or `timeout` has passed
    (False); the condition may be a coroutine function.

    Only for state in another process's hands (a server's, or rows another process writes):
    there is no event to await then. Inside this process, wait on an event instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


def poll_blocking(condition: Callable[[], bool], *, timeout: float, every: float) -> bool:
    """`poll` for code that is not async (starting and stopping server processes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
