"""The server, not the client library, refuses a department acting as another or once revoked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import pytest
from nats.js.api import StreamConfig

from hub.bus import close, connect
from hub.envelope import Envelope
from hub.errors import AccessDenied, Unpublishable
from hub.federation.credentials import service_nkey
from hub.federation.links import open_link
from hub.federation.monitor import FederationService
from hub.metrics import REGISTRY
from hub.topology import HUB_STREAM
from tests.federation import NOTICE, Topology, federated, wait_for


@pytest.fixture
async def federation(tmp_path: Path, pg_dsn: str) -> AsyncIterator[Topology]:
    """The Kezhou federation with one hub node."""
    async with federated(tmp_path, pg_dsn) as topology:
        yield topology


def _as_other(top: Topology, signer: str, subject: str) -> Envelope:
    """A correctly signed event of `signer` re-addressed to another department's subject, as a
    client that skips its own library's check would send it."""
    env = top.hub.seal(signer, NOTICE, {"title": "t", "body": "b"})
    return Envelope(subject, dict(env.headers), env.body)


async def test_a_department_publishing_on_another_departments_subject_is_refused_by_the_server(
    federation: Topology,
) -> None:
    link = await federation.hub.link("akto.civil")
    assert link is not None
    forged = _as_other(federation, "akto.civil", "evt.akto.edu.notice")
    # The participant's own publisher refuses it before sending, as receivers would ...
    with pytest.raises(Unpublishable, match="may not publish on evt.akto.edu.notice"):
        await link.publisher.publish(forged)
    # ... and a client that skips that check meets the server's permissions.
    with pytest.raises(AccessDenied, match="evt.akto.edu.notice"):
        await link.new_publisher(guard=None).publish(forged)
    own = federation.hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"})
    assert (await link.publisher.publish(own)).stream == "GOV_AKTO"


async def test_a_prefecture_department_cannot_publish_as_a_county_or_touch_streams(
    federation: Topology,
) -> None:
    link = await federation.hub.link("pref.finance")
    assert link is not None
    with pytest.raises(AccessDenied):
        bare = link.new_publisher(guard=None)
        await bare.publish(_as_other(federation, "pref.finance", "doc.akto.office.x"))
    # The server drops the request (a permission violation), so the call can only time out.
    with pytest.raises(nats.errors.TimeoutError):
        await link.nc.jetstream(timeout=2).delete_stream(HUB_STREAM)
    assert f"$JS.API.STREAM.DELETE.{HUB_STREAM}".lower() in link.denied
    assert (await federation.hub.nc.jetstream().stream_info(HUB_STREAM)).config.name == HUB_STREAM


async def test_a_revoked_participant_loses_access_without_a_server_restart(
    federation: Topology,
) -> None:
    top = federation
    link = await top.hub.link("artux.market")
    assert link is not None
    before = top.servers.pid("cty-artux")
    env = top.hub.seal("artux.market", NOTICE, {"title": "before", "body": "b"})
    assert (await link.publisher.publish(env)).stream == "GOV_ARTUX"

    await top.hub.enrollment.revoke("artux.market")
    assert "cty-artux" in await top.hub.federation.sync_permissions(top.hub.pool)  # type: ignore[union-attr]

    async def disconnected() -> bool:
        return not link.nc.is_connected

    await wait_for(disconnected, timeout=30, what="the server to drop the revoked connection")
    with pytest.raises(AccessDenied, match="refused these credentials"):
        await open_link(top.hub.settings.home, top.servers.plan, "artux.market")
    assert top.servers.pid("cty-artux") == before  # reloaded, not restarted
    # Other departments of the county are untouched.
    other = await top.hub.link("artux.civil")
    assert other is not None
    ok = top.hub.seal("artux.civil", NOTICE, {"title": "still here", "body": "b"})
    assert (await other.publisher.publish(ok)).stream == "GOV_ARTUX"


async def test_the_serve_federation_service_reports_leafs_and_applies_a_revocation_made_elsewhere(
    federation: Topology,
) -> None:
    top = federation
    service = FederationService(top.hub.pool, top.hub.bus)
    task = asyncio.create_task(service.run())
    try:

        async def reported() -> bool:
            return 'govhub_federation_leaf_up{node="cty-akto"} 1' in REGISTRY.render()

        await wait_for(reported, timeout=30, what="the leaf gauge")
        link = await top.hub.link("wuqia.stats")
        assert link is not None
        # Revoked through the registry writer only: the service sees the registry change.
        await top.hub.enrollment.revoke("wuqia.stats")

        async def dropped() -> bool:
            return not link.nc.is_connected

        await wait_for(dropped, timeout=30, what="the service to reload the county's users")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_county_server_cannot_delete_hub_streams_or_speak_for_another_unit_over_its_uplink(
    federation: Topology,
) -> None:
    top = federation
    hub_js = top.hub.nc.jetstream()
    await hub_js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"]))
    node = top.servers.plan.node("cty-akto")
    # The county node's own admin: unrestricted on its node, as a compromised server would be.
    admin = await connect(
        node.client_url, nkey_seed=service_nkey(top.hub.settings.home, "node-cty-akto").seed
    )
    try:
        info = await admin.request("$JS.pref.API.STREAM.INFO.GOVHUB", b"", timeout=5)
        assert b"stream_info_response" in info.data  # reading the hub still works
        for call in ("STREAM.DELETE.SCRATCH", "STREAM.PURGE.SCRATCH"):
            with pytest.raises(nats.errors.NoRespondersError):
                await admin.request(f"$JS.pref.API.{call}", b"", timeout=5)
        await admin.publish("evt.pref.office.forged", b"x")
        await admin.publish("evt.akto.office.own", b"x")
        await admin.flush()
    finally:
        await close(admin)
    assert (await hub_js.stream_info("SCRATCH")).config.name == "SCRATCH"

    async def own_arrived() -> bool:
        return await top.hub_count("evt.akto.office.own") == 1

    # Its own unit's subjects still flow (captured at home, sourced by the hub); by then a
    # forged prefecture event would have arrived too, over the same link.
    await wait_for(own_arrived, timeout=30, what="the county's own event at the hub")
    assert await top.hub_count("evt.pref.office.forged") == 0
