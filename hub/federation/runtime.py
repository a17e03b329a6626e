"""The federated side of an open hub: nodes up, streams provisioned, permissions in sync.

`open_hub` asks `Federation.for_settings` whether the home is federated (it has a plan, or
`--federated` was asked for, or `GOVHUB_FEDERATION_PLAN` names a production plan). Then the
hub services connect to the hub node(s) as the `service` user, `GOVHUB` sources the county
streams, every county node holds its outbound stream and mirrors, the nodes' users match the
registry (a revoked participant's access ends with a config reload, no restart), and
`Signer.publish(as_id, ...)` (hub/collaborators.py) goes through that participant's own link
to its unit's node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient

from hub.bus import close, connect, jetstream
from hub.embedded import EmbeddedServers
from hub.enrollment import load_participants
from hub.errors import ConfigError, GovhubError
from hub.federation.credentials import participant_nkey, participant_public, service_nkey
from hub.federation.links import Link, Links
from hub.federation.plan import Plan, local_plan
from hub.federation.servers import FederatedServers
from hub.federation.streams import (
    county_configs,
    county_origin_configs,
    ensure_streams,
    hub_document_configs,
    hub_specs,
)
from hub.home import Home, Settings
from hub.participants import PARTICIPANTS_BUCKET
from hub.scenario import load_scenario
from hub.topology import StreamSpec

log = structlog.get_logger("hub.federation")

PLAN_ENV = "GOVHUB_FEDERATION_PLAN"
NKEY_ENV = "GOVHUB_NATS_NKEY_FILE"


class Federation:
    """A federated deployment as one process sees it."""

    def __init__(
        self, home: Home, plan: Plan, servers: FederatedServers | None, external_url: str | None
    ) -> None:
        self.home = home
        self.plan = plan
        self.servers = servers
        self._external_url = external_url
        self.links = Links(home, plan)

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        *,
        federated: bool = False,
        hub_nodes: int = 1,
        scenario: str | None = None,
        county_max_bytes: int | None = None,
    ) -> Federation | None:
        """The federation of these settings, or None for a single-node hub."""
        home = settings.home
        if settings.nats_url is not None:
            plan_file = os.environ.get(PLAN_ENV)
            if not plan_file:
                return None
            plan = Plan.load(Path(plan_file))
            if plan is None:
                raise ConfigError(f"{PLAN_ENV}={plan_file}: no such federation plan")
            return cls(home, plan, None, settings.nats_url)
        servers = FederatedServers.open(home)
        if servers is None and federated:
            _refuse_single_node_home(home)
            chosen = load_scenario(scenario or os.environ.get("GOVHUB_SCENARIO") or "kezhou")
            options: dict[str, Any] = {"hub_nodes": hub_nodes}
            if county_max_bytes is not None:
                options["county_max_bytes"] = county_max_bytes
            servers = FederatedServers.create(home, local_plan(chosen, **options))
        if servers is None:
            return None
        return cls(home, servers.plan, servers, None)

    @property
    def hub_url(self) -> str:
        """Where hub services connect: every hub node, so a client fails over."""
        return self._external_url or ",".join(self.plan.hub_client_urls())

    @property
    def service_seed(self) -> str:
        """The hub services' nkey seed (a file named by GOVHUB_NATS_NKEY_FILE in production)."""
        if self.servers is None:
            path = os.environ.get(NKEY_ENV)
            if not path:
                raise ConfigError(f"a federated hub with external servers needs {NKEY_ENV}")
            return Path(path).read_text().strip()
        return service_nkey(self.home).seed

    @property
    def replicas(self) -> int:
        """Replicas of hub streams and buckets."""
        return self.plan.replicas

    def hub_specs(self, specs: Sequence[StreamSpec]) -> list[StreamSpec]:
        """The hub streams adapted to this federation (see streams.hub_specs)."""
        return hub_specs(specs, self.plan)

    # -- local nodes -------------------------------------------------------------------

    @property
    def _users_file(self) -> Path:
        return self.home.root / "federation" / "users.json"

    def _known_users(self) -> list[tuple[str, str]]:
        try:
            return [(p, k) for p, k in json.loads(self._users_file.read_text())]
        except (OSError, ValueError):
            return []

    async def start(self, *, keep: bool) -> None:
        """Start the local nodes that are not running and wait for their uplinks."""
        if self.servers is None:
            return
        servers = self.servers
        servers.write_configs(self._known_users())
        started = await asyncio.to_thread(servers.ensure, keep=keep)
        if started:
            await asyncio.to_thread(servers.wait_uplinks)
        # County outbound streams first: the hub stream sources them, and a source whose
        # origin is missing at creation only retries after a backoff of many seconds.
        await self.provision_counties(None, outbound_only=True)

    def stop_started(self) -> None:
        """Stop the local nodes this process started (unless `govhub up` keeps them)."""
        if self.servers is not None:
            self.servers.stop_started()

    # -- after the hub is provisioned and bootstrapped -----------------------------------

    async def prepare(self, nc: NatsClient, pool: asyncpg.Pool) -> None:
        """County streams and mirrors, the hub's document stores and copies, the hub's
        registry copy, and the nodes' users."""
        await self.provision_counties(nc)
        await self.provision_documents(nc)
        await _copy_registry(nc, pool)
        await self.sync_permissions(pool)

    async def provision_documents(self, nc: NatsClient) -> None:
        """The hub's document stores and its copies of the county stores (idempotent).

        A store that cannot take its configuration (a home whose hub once held a county's
        store as an ordinary stream) is reported and left alone, so the rest of the hub
        opens; until the operator removes that stream, readers outside the county may not
        find the county's documents at the hub.
        """
        js = jetstream(nc)
        for config in hub_document_configs(self.plan):
            try:
                await ensure_streams(js, [config])
            except nats.js.errors.APIError as exc:
                log.warning(
                    "federation.documents.unprovisioned",
                    stream=config.name,
                    error=str(exc),
                    hint="delete the old stream of that name in domain pref, then reopen",
                )

    async def provision_counties(
        self, nc: NatsClient | None, *, outbound_only: bool = False
    ) -> None:
        """Create each county's outbound and document streams and (unless `outbound_only`)
        its mirrors of the hub's state; skipped when unchanged since the last time.

        Mirrors come after the hub's own streams exist, for the same reason sources do.
        """
        marker = self.home.root / "federation" / "provisioned.json"
        try:
            done = json.loads(marker.read_text())
        except (OSError, ValueError):
            done = {}
        for node in self.plan.counties:
            configs = (
                county_origin_configs(self.plan, node)
                if outbound_only
                else county_configs(self.plan, node)
            )
            digest = hashlib.sha256(
                json.dumps([c.as_dict() for c in configs], sort_keys=True).encode()
            ).hexdigest()
            key = f"{node.name}/outbound" if outbound_only else node.name
            if done.get(key) == digest:
                continue
            try:
                await self._provision_county(nc, node.name, configs)
            except (GovhubError, nats.errors.Error, TimeoutError) as exc:
                # An unreachable county is provisioned the next time; its stream, once
                # made, lives on its own node.
                log.warning("federation.county.unprovisioned", node=node.name, error=str(exc))
                continue
            done[key] = digest
            marker.write_text(json.dumps(done, indent=2))

    async def _provision_county(self, nc: NatsClient | None, name: str, configs: list[Any]) -> None:
        node = self.plan.node(name)
        if self.servers is None:
            if nc is None:
                return
            # Production: through the uplink, in the county's domain.
            await ensure_streams(jetstream(nc, domain=node.domain), configs)
            return
        admin = await connect(
            node.client_url, nkey_seed=service_nkey(self.home, f"node-{name}").seed
        )
        try:
            await ensure_streams(jetstream(admin), configs)
        finally:
            await close(admin)
        log.info("federation.county.provisioned", node=name, streams=len(configs))

    async def sync_permissions(self, pool: asyncpg.Pool) -> list[str]:
        """Make every node's users match the registry; reload the nodes that changed.

        Active participants whose keys this home holds get an nkey on first use; others are
        listed by the public nkey their department sent (`keys/<id>/nats.pub`). Revoked
        participants are left out, so the reload ends their access.
        """
        users = []
        for participant in await load_participants(pool):
            if participant.status != "active":
                continue
            held = (self.home.keys / participant.id / "current").exists()
            public = (
                participant_nkey(self.home, participant.id).public  # type: ignore[union-attr]
                if held
                else participant_public(self.home, participant.id)
            )
            if public is not None:
                users.append((participant.id, public))
        self._users_file.parent.mkdir(parents=True, exist_ok=True)
        self._users_file.write_text(json.dumps(sorted(users)))
        if self.servers is None:
            return []
        changed = self.servers.write_configs(users)
        running = [name for name in changed if self.servers.pid(name)]
        await asyncio.to_thread(self.servers.reload_and_wait, running)
        if changed:
            log.info("federation.permissions.synced", nodes=changed, users=len(users))
        return changed

    async def link(self, participant: str) -> Link:
        """The participant's own connection to its unit's node."""
        return await self.links.get(participant)

    async def close(self) -> None:
        """Close the participant links."""
        await self.links.close()


async def _copy_registry(nc: NatsClient, pool: asyncpg.Pool) -> None:
    """Fill an empty hub registry bucket from PostgreSQL (a home that was single-node)."""
    js = jetstream(nc)
    info = await js.stream_info(f"KV_{PARTICIPANTS_BUCKET}")
    if info.state.messages:
        return
    everyone = await load_participants(pool)
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    for p in everyone:
        await kv.put(p.id, json.dumps(p.to_json()).encode())
    if everyone:
        log.info("federation.registry.copied", participants=len(everyone))


def _refuse_single_node_home(home: Home) -> None:
    """Refuse to make a home federated once it holds a single-node hub.

    The federated hub would start with empty streams beside the single node's: its events and
    document content would stay in a JetStream store no command of the home reads any more,
    while PostgreSQL kept pointing at them (a fetch would then find no content, or a
    different document under the same subject). Moving a hub's streams is an operator's job
    (docs/operations.md), not a side effect of `up --federated`.
    """
    running = "nats" in EmbeddedServers(home).running()
    if running or home.initialized_marker.exists() or (home.nats / "jetstream").exists():
        raise ConfigError(
            f"{home.root} holds a single-node hub{' that is running' if running else ''}, "
            "whose data a federated hub would not see; stop it with `govhub down` and use a "
            "fresh --home for the federated topology",
        )
