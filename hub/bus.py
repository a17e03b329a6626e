"""The bus: one NATS connection, stream provisioning, acknowledged publishing, quarantine.

Publishing does not use nats-py's `publish_async`, whose futures never resolve when the server
answers with an error (nats.py #985). Each publish carries its own reply subject under one
inbox subscription, waits a bounded time for the PubAck, and is re-sent with the same
`Nats-Msg-Id` on timeout, so JetStream's duplicate window turns retries into exactly one
stored event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType

from hub.envelope import Envelope
from hub.errors import PublishError, PublishTimeout, Reason, ServerUnavailable, StreamFull
from hub.subjects import QUARANTINE_PREFIX
from hub.topology import StreamSpec

log = structlog.get_logger("hub.bus")

H_REASON = "govhub-reason"
H_DETAIL = "govhub-detail"
H_ORIG_SUBJECT = "govhub-orig-subject"
H_ORIG_STREAM = "govhub-orig-stream"
H_ORIG_SEQ = "govhub-orig-seq"

# JetStream error codes that mean "the stream refuses more data" (limits with discard new).
_FULL_CODES = {10047, 10077, 10078}


@dataclass(frozen=True, slots=True)
class PubAck:
    """JetStream's acknowledgement of a stored (or deduplicated) event."""

    stream: str
    seq: int
    duplicate: bool = False
    domain: str | None = None


async def connect(url: str, *, name: str = "govhub", connect_timeout: float = 5.0) -> NatsClient:
    """Connect to NATS, reconnecting forever once connected; unreachable at start is an error."""

    async def _quiet(_exc: Exception) -> None:
        # nats-py reports every reconnect attempt here; the publisher's retries and the
        # consumers' fetch timeouts already surface what matters to a person.
        return None

    try:
        # With unlimited reconnects nats-py also retries the *first* connect forever; bound it,
        # because a server that is not there at start is an error a person must see.
        return await asyncio.wait_for(
            nats.connect(
                url,
                name=name,
                connect_timeout=min(connect_timeout, 2.0),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_quiet,
                pending_size=64 * 1024 * 1024,
            ),
            connect_timeout,
        )
    except (TimeoutError, OSError, nats.errors.NoServersError) as exc:
        raise ServerUnavailable(
            f"cannot reach NATS at {url}: {str(exc) or 'no answer within the connect timeout'}",
            hint="Start the embedded servers with `govhub up` or check GOVHUB_NATS_URL.",
        ) from exc


async def close(nc: NatsClient) -> None:
    """Close a connection; a server that is already gone is not an error at shutdown."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 5.0)


async def provision(
    nc: NatsClient, specs: Iterable[StreamSpec], buckets: Iterable[str] = ()
) -> None:
    """Create or update streams and KV buckets so they match the specs (idempotent)."""
    js = nc.jetstream()
    for spec in specs:
        config = spec.config()
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)
    for bucket in buckets:
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.create_key_value(
                KeyValueConfig(bucket=bucket, history=16, storage=StorageType.FILE)
            )


class Publisher:
    """Pipelined, acknowledged JetStream publishing with bounded in-flight events."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        max_inflight: int = 1024,
        ack_timeout: float = 5.0,
        attempts: int = 8,
    ) -> None:
        self._nc = nc
        self._sem = asyncio.Semaphore(max_inflight)
        self._timeout = ack_timeout
        self._attempts = attempts
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._sub: Any = None
        self._lock = asyncio.Lock()

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._sub is None:
                self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def publish(self, env: Envelope) -> PubAck:
        """Publish one event and return its PubAck, retrying with the same id until acked."""
        if self._sub is None:
            await self._subscribe()
        async with self._sem:
            return await self._publish(env)

    async def publish_many(self, envs: Sequence[Envelope]) -> list[PubAck]:
        """Publish events concurrently (bounded), returning PubAcks in input order."""
        if self._sub is None:
            await self._subscribe()
        return list(await asyncio.gather(*(self.publish(env) for env in envs)))

    async def _publish(self, env: Envelope) -> PubAck:
        loop = asyncio.get_running_loop()
        headers = dict(env.headers)
        delay = 0.05
        last_error = "no acknowledgement"
        for _attempt in range(self._attempts):
            token = f"{self._prefix}.{next(self._tokens)}"
            future: asyncio.Future[Msg] = loop.create_future()
            self._pending[token] = future
            try:
                await self._nc.publish(env.subject, env.body, reply=token, headers=headers)
                async with asyncio.timeout(self._timeout):
                    reply = await future
            except (TimeoutError, nats.errors.ConnectionReconnectingError) as exc:
                last_error = f"no acknowledgement within {self._timeout:g} s ({type(exc).__name__})"
            except nats.errors.OutboundBufferLimitError:
                last_error = "NATS is unreachable and the outbound buffer is full"
            else:
                result = _read_ack(env, reply)
                if result is not None:
                    return result
                last_error = "no stream answered (NATS may be restarting)"
            finally:
                self._pending.pop(token, None)
            log.warning(
                "bus.publish.retry", subject=env.subject, event_id=env.event_id, error=last_error
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise PublishTimeout(
            f"event {env.event_id} on {env.subject} was not acknowledged after "
            f"{self._attempts} attempts: {last_error}"
        )

    async def close(self) -> None:
        """Stop listening for acknowledgements (idempotent)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()


def _read_ack(env: Envelope, reply: Msg) -> PubAck | None:
    """Turn a JetStream reply into a PubAck; None means "retry" (no responders)."""
    if reply.headers and reply.headers.get("Status") == "503":
        return None
    try:
        data = json.loads(reply.data)
    except ValueError as exc:
        raise PublishError(f"JetStream sent an unreadable reply for {env.subject}") from exc
    error = data.get("error")
    if error:
        code = int(error.get("err_code", 0))
        description = error.get("description", "unknown error")
        if code in _FULL_CODES or "maximum" in description:
            raise StreamFull(
                f"the stream refused event {env.event_id} on {env.subject}: {description}"
            )
        if int(error.get("code", 0)) == 503:
            return None
        raise PublishError(
            f"JetStream refused event {env.event_id} on {env.subject}: {description}"
        )
    return PubAck(
        stream=data["stream"],
        seq=int(data["seq"]),
        duplicate=bool(data.get("duplicate", False)),
        domain=data.get("domain"),
    )


def quarantine_envelope(
    env: Envelope,
    reason: Reason,
    detail: str,
    *,
    stream: str | None = None,
    seq: int | None = None,
) -> Envelope:
    """The quarantine copy of a refused event: original headers and body plus the reason.

    The message id is a hash of the original bytes, so several consumers refusing the same
    message leave one quarantine entry, while two different forgeries never collide.
    """
    digest = hashlib.sha256()
    digest.update(env.subject.encode())
    for name in sorted(env.headers):
        digest.update(f"\n{name}: {env.headers[name]}".encode())
    digest.update(b"\n\n" + env.body)
    headers = {k: v for k, v in env.headers.items() if k != "Nats-Msg-Id"}
    headers.update(
        {
            H_REASON: reason.value,
            H_DETAIL: _header_safe(detail),
            H_ORIG_SUBJECT: env.subject,
            "Nats-Msg-Id": f"q-{digest.hexdigest()[:40]}",
        }
    )
    if stream is not None and seq is not None:
        headers[H_ORIG_STREAM] = stream
        headers[H_ORIG_SEQ] = str(seq)
    return Envelope(f"{QUARANTINE_PREFIX}.{reason.value}", headers, env.body)


def _header_safe(text: str) -> str:
    """NATS header values are one line of printable ASCII-compatible text."""
    return " ".join(text.split())[:500]
