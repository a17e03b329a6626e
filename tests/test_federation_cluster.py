"""A 3-node hub cluster with R3 streams: losing a node while publishing loses no acked event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.api import StreamConfig

from hub.bus import Publisher, close, connect
from hub.federation.credentials import service_nkey
from hub.federation.plan import local_plan
from hub.federation.servers import FederatedServers, fetch_json
from hub.home import Home
from hub.scenario import load_scenario
from hub.topology import HUB_STREAM
from tests.federation import NOTICE, Topology, federated, wait_for


@pytest.fixture
async def cluster(tmp_path: Path, pg_dsn: str) -> AsyncIterator[Topology]:
    """The Kezhou federation with a 3-node hub cluster."""
    async with federated(tmp_path, pg_dsn, hub_nodes=3) as topology:
        yield topology


async def test_killing_the_stream_leader_while_publishing_loses_no_acknowledged_event(
    cluster: Topology,
) -> None:
    top = cluster
    js = top.hub.nc.jetstream()
    info = await js.stream_info(HUB_STREAM)
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader
    leader = info.cluster.leader
    link = await top.hub.link("pref.stats")
    assert link is not None
    publisher = Publisher(link.nc, max_inflight=32, ack_timeout=2.0, attempts=30)
    total = 600
    envs = [
        top.hub.seal("pref.stats", NOTICE, {"title": f"n{i}", "body": "b"}) for i in range(total)
    ]
    acked: list[str] = []
    a_third = asyncio.Event()

    async def publish_all() -> None:
        async def one(index: int) -> None:
            await publisher.publish(envs[index])
            acked.append(envs[index].event_id)
            if len(acked) == total // 3:
                a_third.set()

        await asyncio.gather(*(one(i) for i in range(total)))

    async def kill_leader() -> None:
        await a_third.wait()
        top.servers.stop(leader, kill=True)

    try:
        await asyncio.gather(publish_all(), kill_leader())
    finally:
        await publisher.close()
    assert len(acked) == total

    async def new_leader() -> bool:
        try:
            cluster = (await js.stream_info(HUB_STREAM)).cluster
            current = cluster.leader if cluster is not None else None
        except Exception:
            return False
        return current not in (None, leader)

    await wait_for(new_leader, timeout=60, what="a new stream leader")
    # The meta leader (which creates consumers) may have died with the stream leader and is
    # elected on its own schedule: wait, as a start does, until the cluster answers again.
    await asyncio.to_thread(top.servers.wait_cluster)
    stored = [d.envelope.event_id for d in await top.read_hub("evt.pref.stats.>")]
    assert sorted(stored) == sorted(acked), "every acknowledged event is stored exactly once"


async def test_the_topology_starts_only_once_the_hub_cluster_can_place_replicated_streams(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    servers = FederatedServers.create(home, local_plan(load_scenario("kezhou"), hub_nodes=3))
    servers.write_configs([])
    try:
        await asyncio.to_thread(servers.ensure)
        leaders = {
            (fetch_json(f"{n.monitor_url}/jsz").get("meta_cluster") or {}).get("leader")
            for n in servers.plan.hub_nodes
        }
        assert len(leaders) == 1 and None not in leaders, "one meta leader, seen by every node"
        urls = ",".join(servers.plan.hub_client_urls())
        nc = await connect(urls, nkey_seed=service_nkey(home).seed)
        try:
            # Right after the start, with a short API timeout: no waiting for an election.
            js = nc.jetstream(timeout=5.0)
            config = StreamConfig(name="READY", subjects=["ready.>"], num_replicas=3)
            assert (await js.add_stream(config)).config.num_replicas == 3
        finally:
            await close(nc)
    finally:
        servers.stop_all()
