"""How a participant reaches document stores: its own connection, and which copy it reads.

On a single node everything goes through the hub's connection. In a federation a participant
sends and fetches through its own link (hub/federation/links.py): its county's node, its own
server permissions, working while the uplink is down. Its documents are stored in its own
unit's `DOCS_<UNIT>` in the domain of that node (the hub's domain `pref` for the prefecture
and the region, which runs no JetStream), and the hub keeps a mirror of every county's store
under the same name (hub/federation/streams.py `document_copy`).

Readers fetch from the sender's own store when they are on the sender's node, and from the
hub otherwise: a circular to four counties then crosses the sender's uplink once (into the
hub's copy), counties never talk to each other directly (the hub isolates leaf interest),
and a document stays readable while its sender's county is cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from hub.bus import Publisher
from hub.collaborators import Bus
from hub.exchange.model import StoreRef
from hub.topology import HUB_DOMAIN


@dataclass(frozen=True)
class Access:
    """One participant's way to the bus for documents."""

    participant: str
    nc: NatsClient
    publisher: Publisher
    # The JetStream domain to store this participant's documents in; None: the domain of
    # the connection's own server (single node).
    store_domain: str | None
    # The domain of the node the participant is connected to, when federated.
    node_domain: str | None
    federated: bool

    def read_location(self, ref: StoreRef) -> StoreRef:
        """Where this participant reads a document stored at `ref`: the sender's own store
        when it is local (or at the hub), else the hub's copy of it."""
        if not self.federated or not ref.domain or ref.domain == HUB_DOMAIN:
            return ref
        if ref.domain == self.node_domain:
            return ref
        return StoreRef(HUB_DOMAIN, ref.stream, ref.prefix)


async def access_for(bus: Bus, participant: str) -> Access:
    """The participant's access: its own link in a federation, the hub's connection else."""
    link = await bus.link(participant)
    if link is None:
        return Access(participant, bus.nc, bus.publisher, None, None, federated=False)
    return Access(
        participant,
        link.nc,
        link.publisher,
        store_domain=link.node.domain or HUB_DOMAIN,
        node_domain=link.node.domain,
        federated=True,
    )
