"""Publishing past the client's own checks, as a forger or a broken client would.

Every hub publisher refuses what receivers would refuse (hub.bus.Publisher.check); tests of
the receivers still need such events on the bus, so they send them with a bare Publisher.
"""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from hub.bus import PubAck, Publisher
from hub.envelope import Envelope


async def publish_unchecked(nc: NatsClient, *envs: Envelope) -> list[PubAck]:
    """Publish events with no guard (only the server's own limits apply)."""
    publisher = Publisher(nc)
    try:
        return await publisher.publish_many(envs)
    finally:
        await publisher.close()
