"""A connected govhub: servers, database, bus, registry copy and keys, opened and closed as one.

Every CLI command and hub service works inside `open_hub(settings)`. It starts embedded
servers when no external ones are configured (and stops what it started on exit), applies
migrations, provisions streams, enrolls the scenario into an empty registry, registers the
shipped schemas not yet registered, and starts the watched participant and schema caches that
verification reads.

It is the one composition root: the collaborators services take (hub/collaborators.py), the
schema registry and the enrollment are built here, once, over one key store per hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from nats.aio.client import Client as NatsClient

from hub.bus import PubAck, Publisher, close, connect, jetstream, provision
from hub.codec import SchemaCache
from hub.collaborators import Bus, Parts, Signer, Trust
from hub.consumer import Consumer
from hub.db import create_pool, migrate
from hub.embedded import EmbeddedServers
from hub.enrollment import Enrollment, NewParticipant, load_participants, rewrite_bucket
from hub.envelope import Envelope, format_time
from hub.federation.links import Link
from hub.federation.runtime import Federation
from hub.home import Settings
from hub.keys import CertificateAuthority, HomeKeys, KeyStore
from hub.participants import PARTICIPANTS_BUCKET, ParticipantCache
from hub.scenario import Scenario, load_scenario
from hub.schema.registry import SchemaRegistry, open_schema_watch
from hub.schema.watch import SCHEMAS_BUCKET
from hub.topology import DIRECTORY_BUCKET, hub_streams
from hub.verifier import Verifier
from schemas import SCHEMA_DIR

log = structlog.get_logger("hub.runtime")

SCENARIO_ENV = "GOVHUB_SCENARIO"


@dataclass
class Hub:
    """Everything a command needs, connected: the collaborators services are built from
    (hub/collaborators.py) and the registries' writers.

    The CLI, the demo and the benchmarks compose services from these; domain code takes the
    collaborators themselves and never the Hub. The forwarding properties below serve those
    callers only.
    """

    settings: Settings
    nats_url: str
    pg_dsn: str
    pool: asyncpg.Pool
    keys: HomeKeys
    trust: Trust
    bus: Bus
    signer: Signer
    registry: SchemaRegistry
    """The schema registry's writer (as the operator or a subject's owner)."""
    enrollment: Enrollment
    """The participant registry's writer, acting as the hub operator."""

    @property
    def parts(self) -> Parts:
        """The collaborators of `govhub serve`'s services (hub/serve.py)."""
        return Parts(
            settings=self.settings,
            pool=self.pool,
            pg_dsn=self.pg_dsn,
            trust=self.trust,
            bus=self.bus,
            signer=self.signer,
        )

    @property
    def nc(self) -> NatsClient:
        """The hub's NATS connection (the `service` user's in a federation)."""
        return self.bus.nc

    @property
    def publisher(self) -> Publisher:
        """The hub's own publisher."""
        return self.bus.publisher

    @property
    def federation(self) -> Federation | None:
        """The federated topology, when this home runs one."""
        return self.bus.federation

    @property
    def scenario(self) -> Scenario:
        """The network this hub serves."""
        return self.trust.scenario

    @property
    def schemas(self) -> SchemaCache:
        """The watched schema cache."""
        return self.trust.schemas

    @property
    def participants(self) -> ParticipantCache:
        """The watched participant registry copy."""
        return self.trust.participants

    @property
    def verifier(self) -> Verifier:
        """The receivers' checks."""
        return self.trust.verifier

    @property
    def keystore(self) -> KeyStore:
        """The private keys this home holds (opened on first use: needs the passphrase)."""
        return self.keys.store

    @property
    def ca(self) -> CertificateAuthority:
        """The prefecture root (only on the operator's machine)."""
        return self.keys.ca

    def seal(
        self,
        as_id: str,
        schema_name: str,
        record: Mapping[str, Any],
        *,
        subject: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """`Signer.seal`."""
        return self.signer.seal(as_id, schema_name, record, subject=subject, event_id=event_id)

    async def publish(
        self, as_id: str, schema_name: str, record: Mapping[str, Any], *, subject: str | None = None
    ) -> tuple[Envelope, PubAck]:
        """`Signer.publish`."""
        return await self.signer.publish(as_id, schema_name, record, subject=subject)

    async def publisher_for(self, as_id: str) -> Publisher:
        """`Signer.publisher_for`."""
        return await self.signer.publisher_for(as_id)

    async def link(self, as_id: str) -> Link | None:
        """`Bus.link`."""
        return await self.bus.link(as_id)

    def consumer(
        self,
        stream: str,
        durable: str | None,
        subjects: Sequence[str] = (),
        *,
        via: Link | None = None,
        **options: Any,
    ) -> Consumer:
        """`Bus.consumer`."""
        return self.bus.consumer(stream, durable, subjects, via=via, **options)


async def _bootstrap(
    settings: Settings,
    pool: asyncpg.Pool,
    keys: HomeKeys,
    enrollment: Enrollment,
    scenario: Scenario,
) -> int:
    """Enroll the scenario into an empty registry; returns how many were enrolled."""
    if await pool.fetchval("SELECT count(*) FROM participants"):
        return 0
    home = settings.home
    home.ensure()
    keys.create()
    ordered = sorted(scenario.participants, key=lambda p: p.id != scenario.operator)
    await enrollment.add([NewParticipant(p.id, p.name, p.role) for p in ordered])
    marker = {
        "scenario": scenario.name,
        "initialized_at": format_time(),
        "participants": len(ordered),
        "suite": settings.suite.name,
    }
    home.initialized_marker.write_text(json.dumps(marker, indent=2))
    log.info(
        "runtime.bootstrapped",
        scenario=scenario.name,
        participants=len(ordered),
        suite=settings.suite.name,
    )
    return len(ordered)


def _announce_temporary(embedded: EmbeddedServers, settings: Settings) -> None:
    """Say on stderr, in one line, that this command runs on servers it started itself.

    After `govhub down` (or before any `govhub up`) a command still works, but on servers
    that start for it and stop with it: slower, and nothing stays running (no `serve`
    appending to the audit log). A person should not have to guess that from the delay.
    """
    names = " and ".join(info.name for info in embedded.started)
    one = len(embedded.started) == 1
    what, they = (
        (f"a temporary {names} server", "it stops")
        if one
        else (f"temporary {names} servers", "they stop")
    )
    print(
        f"govhub: started {what} for this command, as none was running for "
        f"{settings.home.root}; {they} when it ends (`govhub up` keeps servers running)",
        file=sys.stderr,
        flush=True,
    )


@contextlib.asynccontextmanager
async def open_hub(
    settings: Settings,
    *,
    keep_servers: bool = False,
    scenario: str | None = None,
    federated: bool = False,
    hub_nodes: int = 1,
) -> AsyncIterator[Hub]:
    """Open a connected Hub; embedded servers started here are stopped on exit.

    A home that `govhub up --federated` set up (or `federated=True`) runs the federated
    topology of hub/federation/ instead of the single embedded nats-server.
    """
    settings.home.ensure()
    embedded: EmbeddedServers | None = None
    nats_url, pg_dsn = settings.nats_url, settings.pg_dsn
    federation = Federation.for_settings(
        settings, federated=federated, hub_nodes=hub_nodes, scenario=scenario
    )
    if federation is not None:
        nats_url = federation.hub_url
    missing = tuple(n for n, v in (("nats", nats_url), ("postgres", pg_dsn)) if v is None)
    if missing:
        embedded = EmbeddedServers(settings.home)
        running = await asyncio.to_thread(embedded.ensure, keep=keep_servers, names=missing)
        if embedded.started and not keep_servers:
            _announce_temporary(embedded, settings)
        nats_url = nats_url or running["nats"].url
        pg_dsn = pg_dsn or running["postgres"].url
    assert nats_url is not None and pg_dsn is not None
    async with contextlib.AsyncExitStack() as stack:
        if embedded is not None:
            stack.callback(embedded.stop_started)
        if federation is not None:
            stack.callback(federation.stop_started)
            await federation.start(keep=keep_servers)
        nc = await connect(
            nats_url, nkey_seed=federation.service_seed if federation is not None else None
        )
        stack.push_async_callback(close, nc)
        pool = await create_pool(pg_dsn)
        stack.push_async_callback(pool.close)
        await migrate(pool)
        specs = hub_streams() if federation is None else federation.hub_specs(hub_streams())
        await provision(
            nc,
            specs,
            [PARTICIPANTS_BUCKET, SCHEMAS_BUCKET, DIRECTORY_BUCKET],
            replicas=federation.replicas if federation is not None else 1,
        )
        publisher = Publisher(nc)
        stack.push_async_callback(publisher.close)
        schemas = SchemaCache.from_directory(SCHEMA_DIR)
        chosen = load_scenario(scenario or os.environ.get(SCENARIO_ENV) or "kezhou")
        keys = HomeKeys(settings.home, settings.suite, chosen.hub_unit)
        enrollment = Enrollment(pool, nc, publisher, schemas, keys, chosen.operator)
        await _bootstrap(settings, pool, keys, enrollment, chosen)
        if federation is not None:
            stack.push_async_callback(federation.close)
            await federation.prepare(nc, pool)
        participants = ParticipantCache()
        await participants.watch(jetstream(nc))
        stack.push_async_callback(participants.stop)
        recorded = await pool.fetchval("SELECT count(*) FROM participants")
        if len(participants) < recorded:
            # The bucket lost entries the record has (a NATS store restored from an older
            # backup, or a new one beside an existing database): rewrite it, or receivers
            # would refuse every event of the participants it misses.
            await rewrite_bucket(pool, jetstream(nc))
            await participants.wait_until(lambda cache: len(cache) >= recorded)
        verifier = Verifier(participants, schemas)
        # From here on nothing is published that a receiver would refuse. Not earlier: the
        # bootstrap enrolls the operator whose events would find an empty registry copy.
        publisher.guard = verifier.check_outgoing
        registry = SchemaRegistry(
            pool, nc, publisher, schemas, lambda p: keys.store.current(p), chosen.operator
        )
        schema_watch = await open_schema_watch(registry, nc)
        stack.push_async_callback(schema_watch.stop)
        trust = Trust(
            scenario=chosen, schemas=schemas, participants=participants, verifier=verifier
        )
        bus = Bus(nc, publisher, verifier, url=nats_url, federation=federation)
        yield Hub(
            settings=settings,
            nats_url=nats_url,
            pg_dsn=pg_dsn,
            pool=pool,
            keys=keys,
            trust=trust,
            bus=bus,
            signer=Signer(trust, bus, keys),
            registry=registry,
            enrollment=enrollment,
        )


async def registry_snapshot(hub: Hub) -> list[dict[str, Any]]:
    """Every participant from the PostgreSQL record, as JSON documents."""
    return [p.to_json() for p in await load_participants(hub.pool)]
