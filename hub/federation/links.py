"""Participants' own connections: each to its unit's node, signed in with its own nkey.

A county department publishes into its county's stream on its county's leaf node, so its
publish is acknowledged while the uplink is down; the server, not the client library, checks
that it publishes only on its own subjects. A link reads hub streams through the hub's
JetStream domain and its own node's streams locally. A county link verifies with its node's
mirrored registry, so reading keeps working offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient

from hub.bus import Publisher, close, connect, jetstream
from hub.codec import SchemaCache
from hub.consumer import Consumer
from hub.errors import KeyStoreError
from hub.federation.credentials import participant_nkey
from hub.federation.plan import HUB_ROLE, Node, Plan
from hub.home import Home
from hub.participants import ParticipantCache
from hub.topology import HUB_DOMAIN
from hub.verifier import Verifier

log = structlog.get_logger("hub.federation.links")

_DENIED_PUBLISH = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


@dataclass
class Link:
    """One participant's connection to its own node."""

    participant: str
    node: Node
    nc: NatsClient
    publisher: Publisher
    denied: list[str] = field(default_factory=list)
    # Publishers with their own timeouts on this connection (adapters), told of refusals too.
    extra_publishers: list[Publisher] = field(default_factory=list, repr=False)
    _participants: ParticipantCache | None = field(default=None, repr=False)

    def new_publisher(self, **options: Any) -> Publisher:
        """Another publisher on this link (its own ack timeout and attempts) that fails at once,
        like the link's own, when the server refuses a publish, and checks what it sends with
        the link's own guard (pass `guard=None` for a bare transport)."""
        publisher = Publisher(self.nc, **{"guard": self.publisher.guard, **options})
        self.extra_publishers.append(publisher)
        return publisher

    def refuse(self, subject: str | None, message: str) -> None:
        """Fail the waiting publishes of every publisher on this link that the server refused."""
        for publisher in (self.publisher, *self.extra_publishers):
            publisher.refuse(subject, message)

    @property
    def at_hub(self) -> bool:
        """Whether the participant's node is a hub node (hub streams are local)."""
        return self.node.role == HUB_ROLE

    def domain_for(self, stream_at_hub: bool) -> str | None:
        """The JetStream domain to address: None for the node's own, `pref` for the hub's."""
        return HUB_DOMAIN if stream_at_hub and not self.at_hub else None

    def jetstream(self, *, at_hub: bool = True) -> Any:
        """A JetStream context for the hub's streams (default) or this node's own."""
        return jetstream(self.nc, domain=self.domain_for(at_hub))

    async def participants(self) -> ParticipantCache:
        """The registry as this node sees it: its local mirror on a county, the hub's KV else."""
        if self._participants is None:
            cache = ParticipantCache()
            js = jetstream(self.nc, domain=None if self.node.domain else HUB_DOMAIN)
            # A node answers "no responders" for a moment while it reloads its config (an
            # uplink cut, a revocation): retry briefly rather than fail the reader.
            for delay in (0.1, 0.2, 0.5, 1.0, 2.0, 0.0):
                try:
                    await cache.watch(js)
                    break
                except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
                    if not delay:
                        raise
                    await asyncio.sleep(delay)
            self._participants = cache
        return self._participants

    async def consumer(
        self,
        stream: str,
        durable: str | None,
        subjects: Sequence[str],
        *,
        schemas: SchemaCache,
        at_hub: bool,
        **options: Any,
    ) -> Consumer:
        """A verifying consumer over this link that checks senders against the node's own
        registry copy, so a county reads and verifies its mirrors with the uplink down."""
        verifier = Verifier(await self.participants(), schemas)
        return Consumer(
            self.nc,
            verifier,
            self.publisher,
            stream=stream,
            durable=durable,
            subjects=subjects,
            domain=self.domain_for(at_hub),
            **options,
        )

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._participants is not None:
            await self._participants.stop()
            self._participants = None
        for publisher in (self.publisher, *self.extra_publishers):
            await publisher.close()
        await close(self.nc)


async def open_link(home: Home, plan: Plan, participant: str) -> Link:
    """Connect as a participant to its unit's node with the nkey held in its key folder."""
    node = plan.node_for_unit(participant.split(".", 1)[0])
    nkey = participant_nkey(home, participant, create=False)
    if nkey is None:
        raise KeyStoreError(
            f"this home holds no NATS credential for {participant}",
            hint="A participant's nkey lives in keys/<id>/nats.nk on its own machine.",
        )
    holder: list[Link] = []

    async def on_error(exc: Exception) -> None:
        # Permission violations arrive asynchronously; hand them to the publisher so the
        # waiting publish fails at once with AccessDenied instead of timing out.
        text = str(exc)
        match = _DENIED_PUBLISH.search(text)
        if holder and match:
            holder[0].denied.append(match.group(1))
            holder[0].refuse(
                match.group(1),
                f"the server refused {participant} publishing on {match.group(1)}",
            )
        elif holder and "authorization violation" in text.lower():
            holder[0].refuse(None, f"the server no longer accepts {participant}")

    urls = node.client_url if node.role != HUB_ROLE else ",".join(plan.hub_client_urls())
    nc = await connect(urls, name=f"govhub {participant}", nkey_seed=nkey.seed, on_error=on_error)
    link = Link(participant=participant, node=node, nc=nc, publisher=Publisher(nc))
    holder.append(link)
    log.debug("federation.link.opened", participant=participant, node=node.name)
    return link


class Links:
    """The participant links one process has opened, closed together."""

    def __init__(self, home: Home, plan: Plan) -> None:
        self._home = home
        self._plan = plan
        self._open: dict[str, Link] = {}

    async def get(self, participant: str) -> Link:
        """The participant's link, opened on first use."""
        link = self._open.get(participant)
        if link is None or link.nc.is_closed:
            link = await open_link(self._home, self._plan, participant)
            self._open[participant] = link
        return link

    async def close(self) -> None:
        """Close every link (idempotent)."""
        links, self._open = list(self._open.values()), {}
        for link in links:
            with contextlib.suppress(Exception):
                await link.close()
