"""Outage drills on a real federated topology: uplink cut, hub restart, full county stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.consumer import Delivery
from hub.errors import StreamFull
from hub.federation.monitor import CountyState, snapshot
from hub.federation.plan import county_stream
from hub.federation.reattach import SourceKeeper
from hub.federation.streams import DOWN_STREAM
from hub.health import Health, State
from tests.federation import NOTICE, Topology, federated, wait_for


@pytest.fixture
async def federation(tmp_path: Path, pg_dsn: str) -> AsyncIterator[Topology]:
    """The Kezhou federation with one hub node."""
    async with federated(tmp_path, pg_dsn) as topology:
        yield topology


@pytest.fixture
async def small_county_federation(tmp_path: Path, pg_dsn: str) -> AsyncIterator[Topology]:
    """The federation with 64 KiB county byte budgets, to fill a county stream."""
    async with federated(tmp_path, pg_dsn, county_max_bytes=64 * 1024) as topology:
        yield topology


async def _publish(top: Topology, sender: str, count: int, tag: str) -> list[str]:
    """Publish `count` notices as `sender` through its own link; returns the event ids."""
    link = await top.hub.link(sender)
    assert link is not None
    envs = [
        top.hub.seal(sender, NOTICE, {"title": f"{tag}-{i}", "body": "b"}) for i in range(count)
    ]
    acks = await link.publisher.publish_many(envs)
    assert all(ack.stream == county_stream(sender.split(".")[0]) for ack in acks)
    return [env.event_id for env in envs]


async def _county_state(top: Topology, unit: str) -> CountyState:
    async with aiohttp.ClientSession() as session:
        states = await snapshot(top.servers.plan, session)
    return next(s for s in states if s.county == unit)


def _assert_exactly_once_in_order(
    deliveries: list[Delivery], expected: dict[str, list[str]]
) -> None:
    ids = [d.envelope.event_id for d in deliveries]
    wanted = [i for sent in expected.values() for i in sent]
    assert sorted(ids) == sorted(wanted), "every event arrives exactly once"
    origins = [d.origin for d in deliveries]
    assert all(o is not None and o[0] == "GOV_AKTO" for o in origins)
    sequences = [o[1] for o in origins if o is not None]
    assert sequences == list(range(1, len(sequences) + 1)), "origin sequences are contiguous"
    for sender, sent in expected.items():
        arrived = [d.envelope.event_id for d in deliveries if d.envelope.source == sender]
        assert arrived == sent, f"{sender}'s events keep their order"


async def test_a_county_publishes_with_its_uplink_cut_and_the_hub_catches_up_once_in_order(
    federation: Topology,
) -> None:
    top = federation
    before = {"akto.civil": await _publish(top, "akto.civil", 20, "before")}

    async def hub_has(n: int) -> bool:
        return await top.hub_count("*.akto.>") >= n

    await wait_for(lambda: hub_has(20), timeout=60, what="events sourced before the cut")
    top.cut("akto")
    during = await asyncio.gather(
        _publish(top, "akto.civil", 150, "cut"), _publish(top, "akto.edu", 150, "cut")
    )
    # Acknowledged by the county's own stream while the hub cannot see them.
    assert await top.hub_count("*.akto.>") == 20
    assert not (await _county_state(top, "akto")).leaf_up  # what the metrics report
    top.restore("akto")
    await wait_for(lambda: hub_has(320), timeout=90, what="catch-up after the uplink returns")

    async def healthy() -> bool:
        state = await _county_state(top, "akto")
        return state.leaf_up and state.source_lag == 0 and state.source_error is None

    await wait_for(healthy, timeout=30, what="the monitor to report akto caught up")
    expected = {
        "akto.civil": before["akto.civil"] + during[0],
        "akto.edu": during[1],
    }
    _assert_exactly_once_in_order(await top.read_hub("*.akto.>"), expected)


async def test_the_hub_restarted_during_catch_up_still_ends_with_every_event_once(
    federation: Topology,
) -> None:
    top = federation
    top.cut("akto")
    sent = await _publish(top, "akto.civil", 3000, "queued")
    top.restore("akto")

    async def started() -> bool:
        return await top.hub_count("*.akto.>") > 0

    await wait_for(started, timeout=60, what="catch-up to start", every=0.02)
    # `govhub serve` runs the source keeper: left to itself, the restarted hub's source retries
    # on a backoff (~40 s measured); the keeper re-attaches it once the county's leaf is back.
    keeper = SourceKeeper(top.hub.nc, top.servers.plan)
    watching = asyncio.create_task(keeper.watch())
    try:
        hub_node = top.servers.plan.hub_nodes[0].name
        top.servers.stop(hub_node, kill=True)
        await asyncio.to_thread(top.servers.start, hub_node)

        async def caught_up() -> bool:
            try:
                return await top.hub_count("*.akto.>") >= len(sent)
            except Exception:  # the hub connection is still reconnecting
                return False

        await wait_for(caught_up, timeout=150, what="catch-up after the hub restart", every=0.5)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    _assert_exactly_once_in_order(await top.read_hub("*.akto.>"), {"akto.civil": sent})


async def test_a_countys_source_is_reattached_as_soon_as_its_leaf_reconnects(
    federation: Topology,
) -> None:
    top = federation
    keeper = SourceKeeper(top.hub.nc, top.servers.plan)
    health = Health(["federation"])
    health.set("federation", State.RUNNING)
    with health.reporting("federation"):  # as `govhub serve` runs it
        watching = asyncio.create_task(keeper.watch())
    try:
        await asyncio.sleep(1.0)  # the keeper's first look: every leaf up, nothing to do
        assert health.status("federation") == (State.RUNNING, None)
        top.cut("akto")
        sent = await _publish(top, "akto.civil", 200, "cut")
        # Long enough for the server's own retries to fail twice: its next one is 20 s away
        # (10 s more per failure, stream.go calculateRetryBackoff).
        await asyncio.sleep(15.0)
        assert await top.hub_count("*.akto.>") == 0
        state, cause = health.status("federation")
        assert state is State.DEGRADED and cause is not None
        assert "cty-akto is not connected" in cause and "GOV_AKTO" in cause
        # In a thread: the reload waits for the link, and the keeper must go on looking.
        await asyncio.to_thread(top.restore, "akto")
        restored = time.monotonic()

        async def caught_up() -> bool:
            return await top.hub_count("*.akto.>") >= len(sent)

        await wait_for(caught_up, timeout=8, what="the catch-up right after the reconnect")
        assert time.monotonic() - restored < 8

        # On a loaded machine the server's own retry can land right after the reconnect and
        # finish the catch-up before the keeper's next look (every 0.5 s): wait for that look.
        async def looked() -> bool:
            return bool(keeper.reattached)

        await wait_for(looked, timeout=5, what="the keeper to re-attach the county's source")
        assert keeper.reattached == ["akto"], "only the county that reconnected, once"
        assert health.status("federation") == (State.RUNNING, None)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    _assert_exactly_once_in_order(await top.read_hub("*.akto.>"), {"akto.civil": sent})


async def test_a_full_county_stream_refuses_new_events_instead_of_dropping_old_ones(
    small_county_federation: Topology,
) -> None:
    top = small_county_federation
    top.cut("akqi")
    link = await top.hub.link("akqi.health")
    assert link is not None
    stored = 0
    with pytest.raises(StreamFull, match="refused"):
        for i in range(1000):
            env = top.hub.seal("akqi.health", NOTICE, {"title": "x" * 400, "body": str(i)})
            await link.publisher.publish(env)
            stored += 1
    info = await link.jetstream(at_hub=False).stream_info(county_stream("akqi"))
    assert info.state.messages == stored > 0
    assert info.state.first_seq == 1  # the oldest, still unforwarded, event was kept


async def test_a_county_reads_the_registry_and_hub_circulars_from_its_mirrors_while_cut_off(
    federation: Topology,
) -> None:
    top = federation
    env, ack = await top.hub.publish("pref.office", NOTICE, {"title": "州通知", "body": "b"})
    assert ack.stream == "GOVHUB"
    link = await top.hub.link("wuqia.edu")
    assert link is not None
    local = link.jetstream(at_hub=False)

    async def mirrored() -> bool:
        info = await local.stream_info(DOWN_STREAM, subjects_filter="evt.pref.>")
        return bool(info.state.subjects)

    await wait_for(mirrored, timeout=60, what="the circular to reach the county mirror")
    top.cut("wuqia")
    registry = await link.participants()
    assert registry.get("pref.office") is not None and len(registry) == len(top.hub.participants)
    reader = await link.consumer(
        DOWN_STREAM, None, ["evt.pref.>"], schemas=top.hub.schemas, at_hub=False
    )
    try:
        got = await reader.fetch(10, timeout=2.0)
    finally:
        await reader.stop()
    verified = [d for d in got if d.event is not None]
    assert env.event_id in {d.envelope.event_id for d in verified}
