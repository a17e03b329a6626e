"""A connected govhub: servers, database, bus, registry copy and keys, opened and closed as one.

Every CLI command and hub service works inside `open_hub(settings)`. It starts embedded
servers when no external ones are configured (and stops what it started on exit), applies
migrations, provisions streams, enrolls the scenario into an empty registry, registers the
shipped schemas not yet registered, and starts the watched participant and schema caches that
verification reads.
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
from hub.consumer import Consumer
from hub.db import create_pool, migrate
from hub.embedded import EmbeddedServers
from hub.enrollment import Enrollment, NewParticipant, load_participants, rewrite_bucket
from hub.envelope import Envelope, format_time, seal
from hub.errors import RegistryError
from hub.federation.links import Link
from hub.federation.runtime import Federation
from hub.home import Settings
from hub.keys import CertificateAuthority, HomeKeys, KeyStore
from hub.participants import PARTICIPANTS_BUCKET, ParticipantCache
from hub.scenario import Scenario, load_scenario
from hub.schema.registry import SchemaRegistry, open_schema_watch
from hub.schema.watch import SCHEMAS_BUCKET
from hub.subjects import check_subject, default_subject, may_publish
from hub.topology import DIRECTORY_BUCKET, hub_streams
from hub.verifier import Verifier
from schemas import SCHEMA_DIR

log = structlog.get_logger("hub.runtime")

SCENARIO_ENV = "GOVHUB_SCENARIO"


@dataclass
class Hub:
    """Everything a command needs, connected."""

    settings: Settings
    nats_url: str
    pg_dsn: str
    nc: NatsClient
    pool: asyncpg.Pool
    publisher: Publisher
    schemas: SchemaCache
    participants: ParticipantCache
    verifier: Verifier
    scenario: Scenario
    keys: HomeKeys
    registry: SchemaRegistry
    """The schema registry's writer (as the operator or a subject's owner)."""
    enrollment: Enrollment
    """The participant registry's writer, acting as the hub operator."""
    # Set in a federated deployment: participants then publish through their own links
    # (hub/federation/links.py) and the hub services' `nc` is the `service` user's.
    federation: Federation | None = None

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
        """Encode and sign an event as a participant, refusing subjects it does not own.

        `event_id` fixes the id (adapters derive it from the source record so a re-send is
        deduplicated); by default a fresh UUIDv7 is used.
        """
        schema = self.schemas.by_name(schema_name)
        subject = subject or default_subject(as_id, schema.name)
        check_subject(subject)
        if not may_publish(as_id, subject):
            raise RegistryError(
                f"{as_id} may not publish on {subject}; its subjects are <channel>.{as_id}.>"
            )
        sender = self.participants.get(as_id)
        if sender is None:
            raise RegistryError(f"{as_id} is not a registered participant")
        if sender.status != "active":
            raise RegistryError(f"{as_id} is revoked and can no longer publish")
        body = schema.encode(record)
        return seal(self.keystore.current(as_id), subject, schema.name, body, event_id=event_id)

    async def publish(
        self, as_id: str, schema_name: str, record: Mapping[str, Any], *, subject: str | None = None
    ) -> tuple[Envelope, PubAck]:
        """Sign and publish one event; returns it with JetStream's acknowledgement."""
        env = self.seal(as_id, schema_name, record, subject=subject)
        return env, await (await self.publisher_for(as_id)).publish(env)

    async def publisher_for(self, as_id: str) -> Publisher:
        """Where events signed by `as_id` are published: in a federation its own link (its
        unit's node, its server permissions, working while the uplink is down), else the
        hub's publisher."""
        link = await self.link(as_id)
        return link.publisher if link is not None else self.publisher

    async def link(self, as_id: str) -> Link | None:
        """In a federation, the participant's own connection to its unit's node; else None.

        Its publishers make the receivers' checks before sending, as the hub's own does.
        """
        if self.federation is None:
            return None
        link = await self.federation.link(as_id)
        link.publisher.guard = self.verifier.check_outgoing
        return link

    def consumer(
        self,
        stream: str,
        durable: str | None,
        subjects: Sequence[str] = (),
        *,
        via: Link | None = None,
        **options: Any,
    ) -> Consumer:
        """A verifying pull consumer on a stream of this hub.

        `via` reads as a participant over its own link (`await hub.link(id)`), so the
        server's permissions apply; the stream is then addressed in the hub's domain.
        """
        if via is not None:
            return Consumer(
                via.nc,
                self.verifier,
                via.publisher,
                stream=stream,
                durable=durable,
                subjects=subjects,
                domain=via.domain_for(stream_at_hub=True),
                **options,
            )
        return Consumer(
            self.nc,
            self.verifier,
            self.publisher,
            stream=stream,
            durable=durable,
            subjects=subjects,
            **options,
        )


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
        yield Hub(
            settings=settings,
            nats_url=nats_url,
            pg_dsn=pg_dsn,
            nc=nc,
            pool=pool,
            publisher=publisher,
            schemas=schemas,
            participants=participants,
            verifier=verifier,
            scenario=chosen,
            keys=keys,
            registry=registry,
            enrollment=enrollment,
            federation=federation,
        )


async def registry_snapshot(hub: Hub) -> list[dict[str, Any]]:
    """Every participant from the PostgreSQL record, as JSON documents."""
    return [p.to_json() for p in await load_participants(hub.pool)]
