"""Claim-check storage: a document's chunks in a JetStream stream of the sender's own domain.

Each unit has one stream, `DOCS_<UNIT>`, in the JetStream domain its departments connect to
(the one server of a single-node hub, the county's leaf domain in a federated one). A document
is a set of messages under its sender's prefix:

```
<prefix> = dstore.docs_<unit>.<dept>.<doc_id>
<prefix>.c.<index>   one chunk (≤ 768 KiB), header govhub-digest = SHA-256 of the body
<prefix>.i.<part>    the chunk digest list, for documents too large to list in the manifest
<prefix>.k           the sealed content keys of a confidential document
```

Why not nats-py's object store: its `put` publishes one chunk at a time and waits for each
acknowledgement, it puts chunks under a fresh random subject on every attempt (so an
interrupted upload cannot resume), and `get` cannot start in the middle. Here chunks have
stable subjects, uploads are pipelined under a bounded window, a resumed upload lists what is
stored (headers only, no bodies) and sends only the rest, and a reader fetches any chunk by
direct get. The `dstore.` root keeps the unit out of the second token, so these subjects are
never captured by a county stream that takes `*.<unit>.>` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
)

from hub.bus import PubAck, Publisher, jetstream
from hub.envelope import Envelope
from hub.errors import ContentCorrupted, ExchangeError, Retryable, ServiceError, TransferInterrupted
from hub.exchange.model import StoreRef
from hub.subjects import check_participant_id
from hub.topology import document_store_prefix, document_stream, document_stream_config

log = structlog.get_logger("hub.exchange.store")

H_DIGEST = "govhub-digest"
DEFAULT_WINDOW = 16
DEFAULT_STALL_S = 60.0
BATCH_TIMEOUT_S = 10.0

T = TypeVar("T")

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
)


def store_ref(sender: str, domain: str, doc_id: str) -> StoreRef:
    """Where a participant's document goes: `dstore.docs_<unit>.<dept>.<doc_id>`."""
    unit, _ = check_participant_id(sender)
    return StoreRef(domain, document_stream(unit), f"{document_store_prefix(sender)}.{doc_id}")


def chunk_subject(ref: StoreRef, index: int) -> str:
    """The subject of one chunk."""
    return f"{ref.prefix}.c.{index}"


def index_subject(ref: StoreRef, part: int) -> str:
    """The subject of one part of the chunk digest list."""
    return f"{ref.prefix}.i.{part}"


def keys_subject(ref: StoreRef) -> str:
    """The subject of the sealed content keys."""
    return f"{ref.prefix}.k"


async def open_sender_store(nc: NatsClient, unit: str, *, domain: str | None = None) -> str:
    """Make sure the unit's stream exists (in `domain`, default the connection's own server's);
    returns that domain's name.

    An existing stream is used as it is: in a federated deployment the operator provisions
    `DOCS_<UNIT>` (hub/federation/streams.py) and departments may not create or change
    streams.
    """
    js = jetstream(nc, domain=domain)
    try:
        await js.stream_info(document_stream(unit))
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(document_stream_config(unit))
        except nats.js.errors.BadRequestError:
            pass  # created meanwhile by another sender of the unit
        except nats.errors.Error as exc:
            raise ServiceError(
                f"the document store {document_stream(unit)} does not exist and cannot be created "
                f"here ({type(exc).__name__}: {exc})",
                hint="The operator provisions it: hub.topology.document_stream_config(unit).",
            ) from exc
    info = await js.account_info()
    return str(info.domain or "")


class StoreWriter:
    """Pipelined, acknowledged writes of one document's messages, at most `window` in flight."""

    def __init__(self, nc: NatsClient, ref: StoreRef, publisher: Publisher, window: int) -> None:
        self._nc = nc
        self.ref = ref
        self._publisher = publisher
        self._window = asyncio.Semaphore(window)
        self._tasks: set[asyncio.Task[PubAck]] = set()
        self._failure: BaseException | None = None
        self._list_s = DEFAULT_STALL_S

    async def stored_chunks(self) -> dict[int, str]:
        """Index → hex digest of the chunks already stored (headers only, no bodies)."""
        js = jetstream(self._nc, domain=self.ref.domain or None)
        config = ConsumerConfig(
            headers_only=True,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30.0,
            mem_storage=True,
        )
        sub = await js.pull_subscribe(
            f"{self.ref.prefix}.c.>", durable=None, stream=self.ref.stream, config=config
        )
        found: dict[int, str] = {}
        give_up = time.monotonic() + self._list_s
        try:
            pending = int((await sub.consumer_info()).num_pending or 0)
            while pending > 0:
                try:
                    msgs = await sub.fetch(min(pending, 1024), timeout=2.0)
                except TimeoutError:
                    # A server that just restarted can be slow to answer; an incomplete list
                    # would only cost re-sending chunks, but keep asking for a while.
                    if time.monotonic() > give_up:
                        break
                    continue
                for msg in msgs:
                    index = int(msg.subject.rsplit(".", 1)[1])
                    found[index] = (msg.headers or {}).get(H_DIGEST, "")
                pending -= len(msgs)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return found

    async def put(self, subject: str, body: bytes, digest: str, msg_id: str) -> None:
        """Queue one message; waits only while the window is full. Raises an earlier failure."""
        if self._failure is not None:
            raise self._failure
        await self._window.acquire()
        env = Envelope(subject, {"Nats-Msg-Id": msg_id, H_DIGEST: digest}, body)
        task = asyncio.create_task(self._publisher.publish(env))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[PubAck]) -> None:
        self._tasks.discard(task)
        self._window.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def drain(self) -> None:
        """Wait until everything queued is acknowledged; raise the first failure."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    async def abort(self) -> None:
        """Cancel what is in flight (idempotent)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def purge(self) -> None:
        """Withdraw every stored message of this document (after a failed send).

        Best effort: in a federation departments may not purge (a purge request cannot be
        limited to one's own prefix by server permissions), so the orphan chunks stay,
        announced by no manifest, until the stream's limits age them out.
        """
        # A short timeout: a server that refuses the purge drops the request without an answer.
        js = self._nc.jetstream(domain=self.ref.domain or None, timeout=5.0)
        with contextlib.suppress(Exception):
            await js.purge_stream(self.ref.stream, subject=f"{self.ref.prefix}.>")


class _BatchFailed(ExchangeError, Retryable):
    """A batched direct get ended without its end-of-batch marker (retry it)."""


class _NotCopiedYet(ExchangeError, Retryable):
    """The hub's copy of a county's store does not hold a message yet (retry it)."""


class StoreReader:
    """Reads from a document's store, retried through a dropped connection.

    `get` is one direct get; `get_many` is one *batched* direct get (ADR-31 `multi_last`,
    nats-server 2.11+): a single request returns the last message of each named subject,
    so a download costs one round trip per batch of chunks instead of one per chunk.

    `copy_of` says `ref` is the hub's mirror of that store (hub/exchange/access.py). The
    mirror may be behind the manifest (the two travel separately from a county, and not at
    all while it is cut off), so a message missing there is waited for, up to the stall
    budget, instead of being taken for damage.
    """

    def __init__(
        self,
        nc: NatsClient,
        ref: StoreRef,
        *,
        stall_s: float = DEFAULT_STALL_S,
        copy_of: StoreRef | None = None,
    ) -> None:
        self._nc = nc
        self._copy_of = copy_of
        self._js = nc.jetstream(domain=ref.domain or None)
        self._api = f"$JS.{ref.domain}.API" if ref.domain else "$JS.API"
        self.ref = ref
        self._stall_s = stall_s
        self._inbox = ""
        self._sub: Any = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Queue[Any]] = {}

    async def get(self, subject: str) -> bytes:
        """The body of the last message on a subject; ContentCorrupted if it is not there."""
        return await self._retrying(subject, lambda: self._get_one(subject))

    async def _get_one(self, subject: str) -> bytes:
        try:
            msg: Any = await self._js.get_msg(self.ref.stream, subject=subject, direct=True)
        except nats.js.errors.NotFoundError:
            if self._copy_of is not None:
                raise _NotCopiedYet(subject) from None
            raise ContentCorrupted(
                f"{subject} is missing from the sender's store {self.ref.stream}"
            ) from None
        return bytes(msg.data or b"")

    async def get_many(self, subjects: list[str]) -> dict[str, bytes]:
        """The last message of each subject, in one batched request; missing ones are absent."""
        return await self._retrying(subjects[0], lambda: self._get_batch(subjects))

    async def _get_batch(self, subjects: list[str]) -> dict[str, bytes]:
        if self._sub is None:
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
        token = f"{self._inbox}.{next(self._tokens)}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting[token] = queue
        request = json.dumps({"multi_last": subjects, "batch": len(subjects)}).encode()
        found: dict[str, bytes] = {}
        try:
            await self._nc.publish(
                f"{self._api}.DIRECT.GET.{self.ref.stream}", request, reply=token
            )
            async with asyncio.timeout(BATCH_TIMEOUT_S):
                while True:
                    msg = await queue.get()
                    status = (msg.headers or {}).get("Status")
                    if status in ("204", "404"):  # end of batch; 404: none of them exist
                        if self._copy_of is not None and len(found) < len(subjects):
                            raise _NotCopiedYet(subjects[0])
                        return found
                    if status is not None:
                        raise _BatchFailed(f"status {status}")
                    found[msg.headers["Nats-Subject"]] = bytes(msg.data)
        finally:
            self._waiting.pop(token, None)

    async def _on_reply(self, msg: Any) -> None:
        queue = self._waiting.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        give_up = time.monotonic() + self._stall_s
        delay = 0.1
        while True:
            try:
                return await attempt()
            except (*_RETRYABLE, _BatchFailed, _NotCopiedYet, nats.js.errors.APIError) as exc:
                if isinstance(exc, nats.js.errors.APIError) and not _transient(exc):
                    raise
                if time.monotonic() > give_up:
                    raise self._stalled(exc) from exc
                log.debug("exchange.store.get.retry", subject=what, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _stalled(self, exc: BaseException) -> TransferInterrupted:
        if isinstance(exc, _NotCopiedYet) and self._copy_of is not None:
            return TransferInterrupted(
                f"the hub's copy of {self.ref.stream} has not received this document's content "
                f"from {self._copy_of.domain} within {self._stall_s:g} s (is that county cut "
                "off?); its sender's store still holds it, try again later"
            )
        where = (
            f"{self.ref.stream} in domain {self.ref.domain}"
            if self.ref.domain
            else (self.ref.stream)
        )
        return TransferInterrupted(
            f"the store {where} did not answer for {self._stall_s:g} s "
            f"({type(exc).__name__}); is this node cut off from it? try again later"
        )

    async def close(self) -> None:
        """Stop listening for batch replies (idempotent)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None


def _transient(exc: Any) -> bool:
    code = getattr(exc, "code", None)
    return code in (408, 503) or code is None
