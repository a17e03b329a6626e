"""A service loop waiting on its wake-up event can always be stopped."""

from __future__ import annotations

import asyncio

import pytest

from hub.waits import wait_event


async def _service(wake: asyncio.Event) -> None:
    while True:  # the shape of every wake-or-poll loop in the hub and the connectors
        await wait_event(wake, 30)
        wake.clear()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_stop_arriving_as_the_loop_is_woken_still_stops_it(turns: int) -> None:
    # asyncio.wait_for drops this cancellation on Python 3.11 when `turns` is 1: the loop then
    # ran on after it was told to stop, and the adapter pipeline waiting for it hung.
    wake = asyncio.Event()
    task = asyncio.create_task(_service(wake))
    await asyncio.sleep(0)
    wake.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()


async def test_it_answers_whether_the_event_came_in_time() -> None:
    wake = asyncio.Event()
    assert await wait_event(wake, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await wait_event(wake, 5) is True
