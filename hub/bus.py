"""The bus: one NATS connection, stream provisioning, acknowledged publishing, quarantine.

Publishing does not use nats-py's `publish_async`, whose futures never resolve when the server
answers with an error (nats.py #985). Each publish carries its own reply subject under one
inbox subscription, waits a bounded time for the PubAck, and is re-sent with the same
`Nats-Msg-Id` on timeout, so JetStream's duplicate window turns retries into exactly one
stored event.

Before anything is sent, a Publisher checks each message (`Publisher.check`): it must fit the
server's max_payload, and an event on a participant channel must pass its `guard`, the
receivers' own checks (hub.verifier.Verifier.check_outgoing, which every hub gives its
publishers), so nothing is acknowledged that a receiver will quarantine.

Failures of nats-py do not leave the public functions as nats-py's exceptions: they are raised
as PublishTimeout, ServerUnavailable (retryable) or ServerError (hub.outage.nats_failure), so a
caller handles one error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType
from nats.protocol.command import hpub_cmd

from hub.envelope import Envelope
from hub.errors import (
    AccessDenied,
    PublishError,
    PublishTimeout,
    Reason,
    ServerUnavailable,
    StreamFull,
    Unpublishable,
)
from hub.outage import first_failure, nats_failure
from hub.subjects import CHANNELS, QUARANTINE_PREFIX
from hub.topology import StreamSpec

log = structlog.get_logger("hub.bus")

# nats-py 2.16's rules for header names and values it sends (nats/aio/client.py).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})

H_REASON = "govhub-reason"
H_DETAIL = "govhub-detail"
H_ORIG_SUBJECT = "govhub-orig-subject"
H_ORIG_STREAM = "govhub-orig-stream"
H_ORIG_SEQ = "govhub-orig-seq"
# An adapter's dead letter (hub/integration/deadletter.py): which adapter, which record.
H_ADAPTER = "govhub-adapter"
H_RECORD_KEY = "govhub-record-key"

# JetStream error codes that mean "the stream refuses more data" (limits with discard new).
_FULL_CODES = {10047, 10077, 10078}

# ADR-50 atomic batch headers; the server caps a batch at 1,000 messages.
H_BATCH_ID = "Nats-Batch-Id"
H_BATCH_SEQ = "Nats-Batch-Sequence"
H_BATCH_COMMIT = "Nats-Batch-Commit"
MAX_BATCH = 1000


Guard = Callable[[Envelope], Awaitable[None]]
"""A check an event must pass before it is published; raises Unpublishable."""


@dataclass(frozen=True, slots=True)
class PubAck:
    """JetStream's acknowledgement of a stored (or deduplicated) event."""

    stream: str
    seq: int
    duplicate: bool = False
    domain: str | None = None


_UNSENT = PubAck("", 0)  # a placeholder publish_each replaces before returning


class HubClient(NatsClient):
    """nats-py's client with faster header parsing and writing (same bytes, same results).

    nats-py 2.16 tests every character of every received header name with a generator
    expression, and validates and encodes every header name of every message it sends; at
    thousands of events a second, each with a dozen headers, both showed in profiles
    (docs/performance.md). Names are validated once here and remembered.
    """

    _names: ClassVar[dict[str, bytes]] = {}

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if headers is None or subject == "":
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        names = self._names
        parts = [b"NATS/1.0\r\n"]
        for name, value in headers.items():
            prefix = names.get(name)
            if prefix is None:
                key = name.strip()
                if key and not _HEADER_NAME.fullmatch(key):
                    raise nats.errors.BadHeaderError(key)
                prefix = key.encode() + b": " if key else b""
                if len(names) < 4096:  # header names are few; never let the cache grow
                    names[name] = prefix
            if prefix:
                text = value.strip()
                if "\r" in text or "\n" in text:
                    text = text.translate(_NEWLINES)
                parts.append(prefix + text.encode() + b"\r\n")
        parts.append(b"\r\n")
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(hpub_cmd(subject, reply, b"".join(parts), payload))
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    # nats-server forwards a publisher's subject and header block as written. nats-py decodes
    # both strictly and raises on a header block shorter than its version line; any exception
    # there ends the connection's read loop, so one hostile message would silently stop every
    # subscription of the process. Here such bytes are read leniently instead: the message is
    # delivered, fails the receiver checks (what was signed no longer matches) and is
    # quarantined like any other refused event.

    async def _process_headers(self, headers: bytes) -> dict[str, str] | None:
        try:
            parsed: dict[str, str] | None = await super()._process_headers(headers)
        except (UnicodeDecodeError, IndexError):
            # Not a status line the server writes: keep the header lines, drop the status.
            return self._parse_header_lines(headers.partition(b"\r\n")[2]) or None
        return parsed

    def _build_message(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any
    ) -> Msg:
        return self.msg_class(
            subject=subject.decode("utf-8", "replace"),
            reply=reply.decode("utf-8", "replace"),
            data=data,
            headers=headers,
            _client=self,
            _sid=sid,
        )

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            # A name with whitespace inside is invalid and skipped, as nats-py does.
            if key and key.split() != [key]:
                continue
            out[key] = value.strip().decode("utf-8", "replace")
        return out


async def connect(
    url: str,
    *,
    name: str = "govhub",
    connect_timeout: float = 5.0,
    nkey_seed: str | None = None,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
) -> NatsClient:
    """Connect to NATS, reconnecting forever once connected; unreachable at start is an error.

    `url` may list several servers separated by commas (a hub cluster); `nkey_seed` signs in
    as a federated user (hub/federation/credentials.py); `on_error` sees asynchronous server
    errors such as permission violations.
    """

    refused: list[str] = []

    async def _quiet(exc: Exception) -> None:
        # nats-py reports every reconnect attempt here; the publisher's retries and the
        # consumers' fetch timeouts already surface what matters to a person.
        if "authorization violation" in str(exc).lower():
            refused.append(str(exc))
        if on_error is not None:
            await on_error(exc)

    try:
        # With unlimited reconnects nats-py also retries the *first* connect forever; bound it,
        # because a server that is not there at start is an error a person must see.
        nc = HubClient()
        options: dict[str, Any] = {  # nats-py annotates these seconds as int; it takes floats
            "connect_timeout": min(connect_timeout, 2.0),
            "reconnect_time_wait": 0.5,
        }
        await asyncio.wait_for(
            nc.connect(
                [u.strip() for u in url.split(",")],
                name=name,
                nkeys_seed_str=nkey_seed,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                **options,
                error_cb=_quiet,
                pending_size=64 * 1024 * 1024,
            ),
            connect_timeout,
        )
        return nc
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        if refused:
            raise AccessDenied(
                f"the NATS server at {url} refused these credentials (revoked or unknown)"
            ) from exc
        raise ServerUnavailable(
            f"cannot reach NATS at {url}: {str(exc) or 'no answer within the connect timeout'}",
            hint="Start the embedded servers with `govhub up` or check GOVHUB_NATS_URL.",
        ) from exc


# JetStream API calls (stream and consumer management, KV) wait this long for the server; a
# busy machine whose disks fsync every write can take seconds, and a timeout here is an error.
JS_API_TIMEOUT = 20.0


def jetstream(nc: NatsClient, **options: Any) -> Any:
    """The JetStream context every govhub module uses, with a patient API timeout."""
    return nc.jetstream(timeout=JS_API_TIMEOUT, **options)


async def close(nc: NatsClient) -> None:
    """Close a connection; a server that is already gone is not an error at shutdown."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 5.0)


async def provision(
    nc: NatsClient, specs: Iterable[StreamSpec], buckets: Iterable[str] = (), *, replicas: int = 1
) -> None:
    """Create or update streams and KV buckets so they match the specs (idempotent).

    `replicas` is for the KV buckets (3 on a federated hub cluster); streams carry their own.
    """
    js = jetstream(nc)
    for spec in specs:
        config = spec.config()
        try:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await js.update_stream(config)
        except (nats.errors.Error, TimeoutError) as exc:
            raise nats_failure(exc, f"create or update stream {config.name}") from exc
    for bucket in buckets:
        try:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await js.create_key_value(
                    KeyValueConfig(
                        bucket=bucket, history=16, storage=StorageType.FILE, replicas=replicas
                    )
                )
        except (nats.errors.Error, TimeoutError) as exc:
            raise nats_failure(exc, f"create key-value bucket {bucket}") from exc


class Publisher:
    """Pipelined, acknowledged JetStream publishing with bounded in-flight events."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        max_inflight: int = 1024,
        ack_timeout: float = 5.0,
        attempts: int = 8,
        guard: Guard | None = None,
    ) -> None:
        """`guard` checks every event on a participant channel before it is sent; without
        one the Publisher is a bare transport (what a client that skips its checks sends)."""
        self.guard = guard
        self._nc = nc
        self._sem = asyncio.Semaphore(max_inflight)
        self._max_inflight = max_inflight
        self._timeout = ack_timeout
        self._attempts = attempts
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._subject_of: dict[str, str] = {}
        self._sub: Any = None
        self._lock = asyncio.Lock()

    def refuse(self, subject: str | None, message: str) -> None:
        """The server refused publishing on `subject` (None: the user itself) — NATS reports
        permission violations asynchronously — so fail the waiting publishes at once."""
        for token, waiting in list(self._subject_of.items()):
            future = self._pending.get(token)
            # nats-py lowercases the server's error text, subject included.
            matches = subject is None or subject.lower() == waiting.lower()
            if matches and future is not None and not future.done():
                future.set_exception(AccessDenied(message))

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._sub is None:
                try:
                    self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)
                except nats.errors.Error as exc:
                    raise nats_failure(exc, "listen for publish acknowledgements") from exc

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def check(self, env: Envelope) -> None:
        """Raise Unpublishable unless `env` can be published and its receivers would take it.

        Only subjects of the participant channels reach receivers that verify, so only they
        meet the guard (quarantine copies, checkpoints and document chunks do not); it comes
        first, as its sentence names the event limit, far below the server's. Then the size:
        nats-py refuses a payload over the server's max_payload with an untyped
        MaxPayloadError, and the server closes the connection over one whose headers push
        it past.
        """
        if self.guard is not None and env.subject.split(".", 1)[0] in CHANNELS:
            await self.guard(env)
        size, limit = _wire_size(env), self._nc.max_payload
        if size > limit:
            raise Unpublishable(
                Reason.OVERSIZED,
                f"the message on {env.subject} is {size:,} bytes; the NATS server takes at "
                f"most {limit:,} bytes per message",
            )

    async def publish(self, env: Envelope) -> PubAck:
        """Publish one event and return its PubAck, retrying with the same id until acked.

        Raises Unpublishable, with nothing sent, if `check` refuses it.
        """
        await self.check(env)
        if self._sub is None:
            await self._subscribe()
        async with self._sem:
            return await self._publish(env)

    async def publish_many(
        self, envs: Iterable[Envelope], *, window: int | None = None, atomic: bool = True
    ) -> list[PubAck]:
        """Publish events in order, returning their PubAcks in the same order.

        Runs of events for the same unit's stream go as atomic batches (one server sync per
        batch instead of one per event, see `publish_batch`); other subjects are pipelined
        one by one with at most `window` in flight. Every event is checked first: if `check`
        refuses one, Unpublishable is raised and none of them is sent.
        """
        pending = list(envs)
        for env in pending:
            await self.check(env)
        return await self._publish_runs(pending, window, atomic)

    async def publish_each(
        self, envs: Sequence[Envelope], *, window: int | None = None, atomic: bool = True
    ) -> list[PubAck | Unpublishable]:
        """Like `publish_many`, but an event `check` refuses gets its Unpublishable in its
        place and the others are published: for senders that settle each event on its own."""
        results: list[PubAck | Unpublishable] = []
        passing: list[int] = []
        for index, env in enumerate(envs):
            try:
                await self.check(env)
            except Unpublishable as exc:
                results.append(exc)
            else:
                results.append(_UNSENT)
                passing.append(index)
        acks = await self._publish_runs([envs[i] for i in passing], window, atomic)
        for index, ack in zip(passing, acks, strict=True):
            results[index] = ack
        return results

    async def _publish_runs(
        self, pending: list[Envelope], window: int | None, atomic: bool
    ) -> list[PubAck]:
        if not atomic:
            return await self._pipelined(pending, window)
        acks: list[PubAck] = []
        start = 0
        while start < len(pending):
            key = _batch_key(pending[start].subject)
            end = start + 1
            while (
                end < len(pending)
                and end - start < MAX_BATCH
                and key is not None
                and _batch_key(pending[end].subject) == key
            ):
                end += 1
            run = pending[start:end]
            acks += await (self._publish_batch(run) if key else self._pipelined(run, window))
            start = end
        return acks

    async def _pipelined(self, envs: list[Envelope], window: int | None) -> list[PubAck]:
        # A fixed set of workers pulls from the list, so no task waits on the semaphore:
        # asyncio's semaphore wakes waiters in O(waiters), which made thousands of queued
        # publishes quadratic.
        if self._sub is None:
            await self._subscribe()
        source = enumerate(envs)
        acks: dict[int, PubAck] = {}

        async def worker() -> None:
            for index, env in source:
                async with self._sem:
                    acks[index] = await self._publish(env)

        width = max(1, min(window or self._max_inflight, self._max_inflight, len(envs)))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(width):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            # The first worker's failure (a govhub error) cancels the others; a caller of
            # publish_many expects that error itself, as from publish, not a group of it.
            raise first_failure(failed) from None
        return [acks[i] for i in range(len(envs))]

    async def publish_batch(self, envs: Sequence[Envelope]) -> list[PubAck]:
        """Store up to MAX_BATCH events of one stream atomically (JetStream ADR-50).

        The batch is all-or-nothing and costs one server sync. If the outcome is unknown
        (no commit acknowledgement) or the server refuses it because an event id is already
        stored (a retry of a batch that did commit), the events are re-sent one by one with
        the same ids: JetStream's duplicate window then stores exactly the missing ones.
        Every event is checked first, as in `publish_many`. More than MAX_BATCH events are
        refused (PublishError) before any is sent: `publish_many` splits longer runs.
        """
        if len(envs) > MAX_BATCH:
            raise PublishError(
                f"a batch holds at most {MAX_BATCH} events, not {len(envs)}: "
                "publish_many splits longer runs"
            )
        for env in envs:
            await self.check(env)
        return await self._publish_batch(envs)

    async def _publish_batch(self, envs: Sequence[Envelope]) -> list[PubAck]:
        if len(envs) <= 1:
            if self._sub is None:
                await self._subscribe()
            acks = []
            for env in envs:
                async with self._sem:
                    acks.append(await self._publish(env))
            return acks
        if self._sub is None:
            await self._subscribe()
        batch_id = uuid.uuid4().hex
        last = len(envs)
        try:
            async with self._sem:
                for number, env in enumerate(envs, start=1):
                    headers = {**env.headers, H_BATCH_ID: batch_id, H_BATCH_SEQ: str(number)}
                    if number == last:
                        headers[H_BATCH_COMMIT] = "1"
                    if number in (1, last):
                        reply = await self._request(env.subject, env.body, headers)
                        if number == 1 and not reply.data:
                            continue
                        result = _read_batch_ack(envs, reply)
                        if result is not None:
                            return result
                        break
                    await self._nc.publish(env.subject, env.body, headers=headers)
        except (
            TimeoutError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError,
        ):
            pass
        except nats.errors.MaxPayloadError:
            # `check` measured every message; a server that lowered its limit since we
            # connected is the one way here. Nothing of the batch was committed.
            raise _too_large(envs[0], self._nc.max_payload) from None
        except nats.errors.Error as exc:  # a closed connection: re-sending cannot help
            raise nats_failure(exc, f"publish a batch of {len(envs)} events") from exc
        log.info("bus.batch.fallback", events=len(envs), batch=batch_id)
        return await self._pipelined(list(envs), None)

    async def _request(self, subject: str, body: bytes, headers: dict[str, str]) -> Msg:
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        token = f"{self._prefix}.{next(self._tokens)}"
        self._pending[token] = future
        self._subject_of[token] = subject
        try:
            await self._nc.publish(subject, body, reply=token, headers=headers)
            async with asyncio.timeout(self._timeout):
                return await future
        finally:
            self._pending.pop(token, None)
            self._subject_of.pop(token, None)

    async def _publish(self, env: Envelope) -> PubAck:
        loop = asyncio.get_running_loop()
        headers = dict(env.headers)
        delay = 0.05
        last_error = "no acknowledgement"
        for _attempt in range(self._attempts):
            token = f"{self._prefix}.{next(self._tokens)}"
            future: asyncio.Future[Msg] = loop.create_future()
            self._pending[token] = future
            self._subject_of[token] = env.subject
            try:
                await self._nc.publish(env.subject, env.body, reply=token, headers=headers)
                async with asyncio.timeout(self._timeout):
                    reply = await future
            except (TimeoutError, nats.errors.ConnectionReconnectingError) as exc:
                last_error = f"no acknowledgement within {self._timeout:g} s ({type(exc).__name__})"
            except nats.errors.OutboundBufferLimitError:
                last_error = "NATS is unreachable and the outbound buffer is full"
            except nats.errors.MaxPayloadError:
                raise _too_large(env, self._nc.max_payload) from None
            except nats.errors.Error as exc:  # a closed connection: re-sending cannot help
                raise nats_failure(exc, f"publish event {env.event_id} on {env.subject}") from exc
            else:
                result = _read_ack(env, reply)
                if result is not None:
                    return result
                last_error = "no stream answered (NATS may be restarting)"
            finally:
                self._pending.pop(token, None)
                self._subject_of.pop(token, None)
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


def _wire_size(env: Envelope) -> int:
    """Bytes the server counts against max_payload: the header block and the body."""
    if not env.headers:
        return len(env.body)
    block = 12 + sum(len(k) + len(v.encode()) + 4 for k, v in env.headers.items())
    # The atomic-batch headers publish_batch adds (ADR-50) take at most this much more.
    return len(env.body) + block + 96


def _too_large(env: Envelope, limit: int) -> Unpublishable:
    return Unpublishable(
        Reason.OVERSIZED,
        f"the message on {env.subject} is larger than the {limit:,} bytes the NATS server "
        "takes per message",
    )


def _batch_key(subject: str) -> str | None:
    """Events of one unit on the participant channels share a stream, so they may batch."""
    tokens = subject.split(".", 2)
    return tokens[1] if len(tokens) == 3 and tokens[0] in CHANNELS else None


def _read_batch_ack(envs: Sequence[Envelope], reply: Msg) -> list[PubAck] | None:
    """PubAcks for every event of a committed batch; None means "re-send one by one"."""
    try:
        data = json.loads(reply.data) if reply.data else {}
    except ValueError:
        return None
    error = data.get("error")
    if error or "batch" not in data:
        code = int((error or {}).get("err_code", 0))
        if error and code in _FULL_CODES:
            raise StreamFull(
                f"the stream refused a batch of {len(envs)} events: {error.get('description')}"
            )
        return None
    last, count = int(data["seq"]), int(data.get("count", len(envs)))
    first = last - count + 1
    domain = data.get("domain")
    return [PubAck(data["stream"], first + i, False, domain) for i in range(len(envs))]


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
    # JetStream control headers (message id, batch markers, source info) belong to the
    # original store operation; copied along they would steer the quarantine write instead.
    headers = {k: v for k, v in env.headers.items() if not k.lower().startswith("nats-")}
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
    """NATS header values are one line of UTF-8 text (lone surrogates cannot be sent)."""
    return " ".join(text.split())[:500].encode("utf-8", "replace").decode()
