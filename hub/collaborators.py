"""The small collaborators hub services are built from: trust, bus and signer.

`open_hub` (hub/runtime.py) builds each of them once; a service takes only those it uses (and
the PostgreSQL pool or the settings where it needs them), so it can be built and tested
without a whole hub and nothing in the domain reaches up to the runtime:

- `Trust`: what events are checked against: the watched participant registry copy, the schema
  cache, the verifier over both, and the scenario (who the operator is, the units).
- `Bus`: the hub's NATS side: its connection and publisher, verifying consumers, and in a
  federation each participant's own link to its unit's node.
- `Signer`: events signed as a participant: sealed with its key from the home's key store,
  published where that participant publishes.
- `Parts`: all of them with the pool and the settings, what a `govhub serve` service factory
  picks its collaborators from (hub/serve.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NatsClient

from hub.bus import PubAck, Publisher
from hub.codec import SchemaCache
from hub.consumer import Consumer
from hub.envelope import Envelope, seal
from hub.errors import RegistryError
from hub.federation.links import Link
from hub.federation.runtime import Federation
from hub.home import Settings
from hub.keys import HomeKeys, KeyStore
from hub.participants import ParticipantCache
from hub.scenario import Scenario
from hub.subjects import check_subject, default_subject, may_publish
from hub.verifier import Verifier


@dataclass(frozen=True)
class Trust:
    """What a receiver checks an event against, kept current by watches on the bus."""

    scenario: Scenario
    schemas: SchemaCache
    participants: ParticipantCache
    verifier: Verifier


class Bus:
    """The hub's connection to NATS: publishing, verifying consumers, participants' links."""

    def __init__(
        self,
        nc: NatsClient,
        publisher: Publisher,
        verifier: Verifier,
        *,
        url: str,
        federation: Federation | None = None,
    ) -> None:
        self.nc = nc
        self.publisher = publisher
        self.url = url
        # Set in a federated deployment: participants then publish through their own links
        # (hub/federation/links.py) and `nc` is the `service` user's.
        self.federation = federation
        self._verifier = verifier

    async def link(self, as_id: str) -> Link | None:
        """In a federation, the participant's own connection to its unit's node; else None.

        Its publishers make the receivers' checks before sending, as the hub's own does.
        """
        if self.federation is None:
            return None
        link = await self.federation.link(as_id)
        link.publisher.guard = self._verifier.check_outgoing
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

        `via` reads as a participant over its own link (`await bus.link(id)`), so the
        server's permissions apply; the stream is then addressed in the hub's domain.
        """
        if via is not None:
            return Consumer(
                via.nc,
                self._verifier,
                via.publisher,
                stream=stream,
                durable=durable,
                subjects=subjects,
                domain=via.domain_for(stream_at_hub=True),
                **options,
            )
        return Consumer(
            self.nc,
            self._verifier,
            self.publisher,
            stream=stream,
            durable=durable,
            subjects=subjects,
            **options,
        )


class Signer:
    """Signs and publishes events as the participants whose keys this home holds."""

    def __init__(self, trust: Trust, bus: Bus, keys: HomeKeys) -> None:
        self._trust = trust
        self._bus = bus
        self._keys = keys

    @property
    def keystore(self) -> KeyStore:
        """The private keys this home holds (opened on first use: needs the passphrase)."""
        return self._keys.store

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
        schema = self._trust.schemas.by_name(schema_name)
        subject = subject or default_subject(as_id, schema.name)
        check_subject(subject)
        if not may_publish(as_id, subject):
            raise RegistryError(
                f"{as_id} may not publish on {subject}; its subjects are <channel>.{as_id}.>"
            )
        sender = self._trust.participants.get(as_id)
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
        link = await self._bus.link(as_id)
        return link.publisher if link is not None else self._bus.publisher


@dataclass(frozen=True)
class Parts:
    """What the services of `govhub serve` are built from; each factory takes what it uses."""

    settings: Settings
    pool: asyncpg.Pool
    pg_dsn: str
    trust: Trust
    bus: Bus
    signer: Signer
