"""Whether events published at a county have reached the hub stream yet.

A county department's publish is acknowledged by its county's stream; the hub stores the
event when its source of that stream catches up (milliseconds with the uplink up, after
the outage otherwise). Commands that report a state computed at the hub (the directory's
`settle`, the demo, the document tracker's catch-up) wait here, bounded, instead of
reading a state that does not include their own event yet. On a single node every event
is in the hub stream once acknowledged, so these return at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient

from hub.bus import jetstream
from hub.envelope import H_ID, Envelope
from hub.topology import HUB_STREAM
from hub.waits import poll

POLL_S = 0.05

Event: TypeAlias = Envelope | tuple[str, str]
"""An event to look for: its envelope, or (subject, event id)."""


def _key(event: Event) -> tuple[str, str]:
    return (event.subject, event.event_id) if isinstance(event, Envelope) else event


async def missing_at_hub(nc: NatsClient, events: Iterable[Event]) -> list[Event]:
    """The events not (yet) in the hub stream, by the last message on each one's subject.

    Every govhub subject ends with a token naming its event's object (document, request,
    resource), so a later event on the same subject is rare; it counts as missing here and
    is waited for, never wrongly reported as arrived.
    """
    js = jetstream(nc)
    missing = []
    for event in events:
        subject, event_id = _key(event)
        try:
            msg = await js.get_msg(HUB_STREAM, subject=subject, direct=True)
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError, TimeoutError):
            missing.append(event)
            continue
        if (msg.headers or {}).get(H_ID) != event_id:
            missing.append(event)
    return missing


async def wait_at_hub(nc: NatsClient, events: Iterable[Event], *, timeout: float) -> bool:
    """Wait until every event is in the hub stream; False if some are not after `timeout`."""
    waiting = list(events)
    if not waiting:
        return True

    async def arrived() -> bool:
        nonlocal waiting
        waiting = await missing_at_hub(nc, waiting)
        return not waiting

    # Sourcing happens inside nats-server; there is no event to await from here.
    return await poll(arrived, timeout=timeout, every=POLL_S)
