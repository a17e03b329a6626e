"""Batched pull from a JetStream consumer: one pull request per batch, messages taken in bulk.

nats-py's ``PullSubscription.fetch`` waits for each message of a batch with its own task and
timer (``next_msg``), which cost more than verifying a batch-signed event. Here one request asks
for the whole batch; the messages the server sends are taken from the subscription's queue
without waiting when they are already there, and a timer runs only while the queue is empty.
When nothing is available the request lingers until the first message arrives, and the batch
returns with whatever came with it: a batch fills up under load and never waits for its last
slot at low load. Messages the lingering request brings later stay queued for the next call.

The subscription, inbox and request subject are those nats-py's ``pull_subscribe`` set up
(nats-py 2.16, pinned in pyproject.toml); only the waiting is done differently. A failure of
the connection or an error status of the server is raised as a govhub error
(hub.outage.nats_failure), never as nats-py's own exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg

from hub.outage import nats_failure

log = structlog.get_logger("hub.pull")

# JetStream status codes that end a pull request without an error: 404 no messages (no_wait),
# 408 request expired, 409 conflicts (max waiting, consumer changed); 100 is a heartbeat.
_END = frozenset({"404", "408", "409"})
_STATUS = "Status"
_ACK_PREFIX = "$JS.ACK."
RESEND_S = 0.25
"""Seconds after which a `no_wait` request that got no answer at all is sent again.

The server answers such a request at once, with messages or a 404. Silence means nobody
received it: right after a stream leader is lost, the consumer's new leader takes over a
moment after it answers consumer info, and a request sent in between is dropped. Asked once,
the fetch returned nothing and a reader took the stream for fully read (the leader-kill drill
read fewer events than were acknowledged). A resent request can only bring more messages
than asked, and those stay queued for the next fetch.

A request that reaches no consumer leader at all comes back as status 503 (no responders),
which is the same gap seen from the other side: it is asked again every RESEND_S, and only
if nobody has answered by the deadline does the fetch raise ServerUnavailable. Raised at
once, the 503 ended the leader-kill drill's read while the new leader was being elected.
"""


def _accept(sub: Any, msg: Msg, msgs: list[Msg]) -> bool:
    """Keep a delivered message; True if it is the status that ends a pull request."""
    sub._pending_size -= len(msg.data)  # nats-py's slow-consumer accounting
    # A stored message comes with its ack subject; a status from the server comes with none.
    # The headers cannot tell them apart: a publisher may write `Status: 404` itself, and a
    # message taken for a status would never be handled nor quarantined, only redelivered.
    stored = msg.reply.startswith(_ACK_PREFIX)
    status = msg.headers.get(_STATUS) if msg.headers and not stored else None
    if status is None:
        msgs.append(msg)
        return False
    if status in _END:
        return True
    if status == "503":
        raise nats.errors.NoRespondersError
    if status != "100":
        raise nats.js.errors.APIError.from_msg(msg)
    return False


def _take(sub: Any, queue: asyncio.Queue[Msg], msgs: list[Msg], want: int) -> bool:
    """Move queued messages into ``msgs`` (up to ``want``); True if a request ended on the way."""
    ended = False
    while len(msgs) < want and not queue.empty():
        msg = queue.get_nowait()
        queue.task_done()
        ended = _accept(sub, msg, msgs) or ended
    return ended


async def _wait(
    sub: Any, queue: asyncio.Queue[Msg], msgs: list[Msg], deadline: float
) -> bool | None:
    """Wait for one message until ``deadline``: None on timeout, else whether a request ended."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        async with asyncio.timeout(remaining):
            msg = await queue.get()
    except TimeoutError:
        return None
    queue.task_done()
    return _accept(sub, msg, msgs)


async def fetch(psub: Any, batch: int, timeout: float, *, linger: bool = True) -> list[Msg]:
    """Up to ``batch`` messages from a nats-py pull subscription; [] after ``timeout`` seconds.

    ``linger=False`` takes only what the server has now and never waits for new messages.
    Raises ServerUnavailable when the connection is lost or no consumer leader has answered
    by the deadline (see RESEND_S), ServerError on an error status.
    """
    try:
        return await _fetch(psub, batch, timeout, linger)
    except nats.errors.Error as exc:
        doing = f"fetch events from consumer {psub._consumer} of stream {psub._stream}"
        raise nats_failure(exc, doing) from exc


async def _fetch(psub: Any, batch: int, timeout: float, linger: bool) -> list[Msg]:
    sub, nc = psub._sub, psub._nc
    queue: asyncio.Queue[Msg] = sub._pending_queue
    msgs: list[Msg] = []
    # A 503 still queued answers an earlier request, which its fetch no longer waits for.
    with contextlib.suppress(nats.errors.NoRespondersError):
        _take(sub, queue, msgs, batch)
    if len(msgs) >= batch:
        return msgs
    deadline = time.monotonic() + timeout
    # First ask for what is there now; the server answers with messages, then 404 if fewer.
    # A request nobody answers at all is asked again (see RESEND_S).
    request = json.dumps({"batch": batch - len(msgs), "no_wait": True}).encode()
    await nc.publish(psub._nms, request, psub._deliver)
    answered = False
    resend_at = time.monotonic() + RESEND_S
    while len(msgs) < batch:
        try:
            if _take(sub, queue, msgs, batch) or len(msgs) >= batch:
                break
            answered = answered or bool(msgs)
            ended = await _wait(
                sub, queue, msgs, deadline if answered else min(deadline, resend_at)
            )
        except nats.errors.NoRespondersError:
            if answered or msgs:
                break
            if time.monotonic() + RESEND_S >= deadline:
                raise
            await asyncio.sleep(max(0.0, resend_at - time.monotonic()))
            ended = None
        if ended is None:
            if answered or time.monotonic() >= deadline:
                break
            await nc.publish(psub._nms, request, psub._deliver)
            resend_at = time.monotonic() + RESEND_S
            log.info("pull.request.resent", subject=psub._nms)
            continue
        answered = True
        if ended:
            break
    if msgs or not linger:
        return msgs
    # Nothing yet: linger until the first message or the deadline.
    expires = int((deadline - time.monotonic()) * 1e9) - 1_000_000
    if expires <= 0:
        return msgs
    request = json.dumps({"batch": batch, "expires": expires}).encode()
    await nc.publish(psub._nms, request, psub._deliver)
    while not msgs:
        if await _wait(sub, queue, msgs, deadline) is None:
            break
    _take(sub, queue, msgs, batch)
    return msgs


async def hand_back(psub: Any) -> int:
    """Nak the messages a subscription was sent but nobody fetched yet; returns how many.

    Called before unsubscribing: JetStream would otherwise hold them as delivered to no one
    until their ack wait runs out, while later messages go ahead (a receipt before its
    manifest). Best effort: a nak that cannot be sent leaves the ack wait to redeliver.
    """
    sub = psub._sub
    queue: asyncio.Queue[Msg] = sub._pending_queue
    naked = 0
    while not queue.empty():
        msg = queue.get_nowait()
        queue.task_done()
        sub._pending_size -= len(msg.data)
        if msg.headers and msg.headers.get(_STATUS):
            continue  # a status of the pull request, not a message
        try:
            await msg.nak()
        except Exception:  # best effort, see above
            break
        naked += 1
    return naked
