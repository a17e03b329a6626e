"""A service loop waiting on its wake-up event can always be stopped; a poll ends when its
condition holds or its time is up."""

from __future__ import annotations

import asyncio

import pytest

from hub.waits import poll, poll_blocking, wait_event


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


async def test_a_poll_is_true_once_its_condition_holds_sync_or_async() -> None:
    checks: list[int] = []

    def third_time() -> bool:
        checks.append(1)
        return len(checks) >= 3

    async def at_once() -> bool:
        return True

    assert await poll(third_time, timeout=5, every=0.001)
    assert len(checks) == 3
    assert await poll(at_once, timeout=0, every=1)


async def test_a_poll_is_false_when_its_time_is_up() -> None:
    assert not await poll(lambda: False, timeout=0.02, every=0.005)
    assert not poll_blocking(lambda: False, timeout=0.02, every=0.005)
    assert poll_blocking(lambda: True, timeout=0, every=1)
