"""A federated hub on loopback for tests: real nats-server processes per node, a fresh database.

`federated(...)` runs the Kezhou topology with one or three hub nodes; `Topology` cuts and
restores uplinks, kills and restarts nodes, and reads back what the hub stream holds, so each
fault test reads as the drill it is.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from hub.consumer import Delivery
from hub.federation.plan import DEFAULT_COUNTY_BUDGET, local_plan
from hub.federation.servers import FederatedServers
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from hub.scenario import load_scenario
from hub.topology import HUB_STREAM
from hub.waits import poll

NOTICE = "gov.common.v1.Notice"


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.1
) -> None:
    """Wait until `condition()` is true; fail the test with `what` after `timeout` seconds."""
    if not await poll(condition, timeout=timeout, every=every):
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Topology:
    """The running federation of one test."""

    hub: Hub
    servers: FederatedServers

    def cut(self, unit: str) -> None:
        """Cut a county's uplink (its leaf remote disabled and reloaded)."""
        self.servers.uplink(unit, enabled=False)

    def restore(self, unit: str) -> None:
        """Restore a county's uplink."""
        self.servers.uplink(unit, enabled=True)

    async def hub_count(self, subject: str) -> int:
        """Messages on `subject` (wildcards allowed) in the hub stream."""
        info = await self.hub.nc.jetstream().stream_info(HUB_STREAM, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())

    async def read_hub(self, subject: str) -> list[Delivery]:
        """Every message on `subject` in the hub stream, in stream order, verified."""
        consumer = self.hub.consumer(HUB_STREAM, None, [subject], quarantine=False)
        out: list[Delivery] = []
        try:
            # What is stored now, without lingering for more; the timeout only bounds waiting
            # for a consumer leader to answer (right after a node loss it takes a moment).
            while batch := await consumer.fetch(1000, timeout=10.0, linger=False):
                for delivery in batch:
                    await delivery.ack()
                out.extend(batch)
        finally:
            await consumer.stop()
        return out


@contextlib.asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database for a whole test module (the `pg_dsn` fixture is per test)."""
    name = f"govhub_m_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def federated(
    tmp_path: Path,
    pg_dsn: str,
    *,
    hub_nodes: int = 1,
    county_max_bytes: int = DEFAULT_COUNTY_BUDGET,
) -> AsyncIterator[Topology]:
    """The Kezhou federation on loopback (hub node(s), four county leafs, the region leaf);
    test modules wrap it in their own fixture."""
    home = Home(tmp_path / "home")
    plan = local_plan(
        load_scenario("kezhou"), hub_nodes=hub_nodes, county_max_bytes=county_max_bytes
    )
    servers = FederatedServers.create(home, plan)
    settings = Settings(home=home, nats_url=None, pg_dsn=pg_dsn)
    try:
        async with open_hub(settings, federated=True, hub_nodes=hub_nodes) as hub:
            assert hub.federation is not None and hub.federation.servers is not None
            yield Topology(hub=hub, servers=hub.federation.servers)
    finally:
        # Whatever a test killed, restarted or left behind: no orphan servers.
        servers.stop_all()
