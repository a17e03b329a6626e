"""The sending side of batch signatures: seal runs of events once, flush on size or after a moment.

``seal_batch`` signs a run of one sender's events with one govhub-sig-v2 signature (a single
event gets a plain v1 signature). ``BatchSender`` is the hub client an adapter hands records to
one at a time: it collects them and flushes a batch as soon as it holds ``max_batch`` events or
``linger`` seconds after its first event, whichever comes first, so a batch never waits to be
full. Each flush is signed once; a full one, or one of ``ATOMIC_FROM`` events or more, is
stored as one JetStream atomic batch (one disk sync). Up to ``max_inflight`` flushes are stored
at the same time. A record's future resolves with its PubAck once JetStream has it on disk.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.batchsig import (
    H_BATCH_INDEX,
    H_BATCH_PATH,
    H_BATCH_SIG,
    H_BATCH_SIZE,
    MAX_BATCH_EVENTS,
    signing_input,
    statement,
    tree,
)
from hub.bus import MAX_BATCH, PubAck, Publisher
from hub.codec import Schema
from hub.envelope import (
    CONTENT_TYPE,
    H_CONTENT_TYPE,
    H_ID,
    H_KEY,
    H_MSG_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_TIME,
    H_TYPE,
    Envelope,
    SigningKey,
    format_time,
    new_event_id,
    seal,
)
from hub.errors import PublishError

_sha256 = hashlib.sha256

ATOMIC_FROM = 50
"""Smallest flush stored as one JetStream atomic batch; smaller ones are published one by one.

An atomic batch saves a disk sync per event, which pays under load; for a handful of events
its extra round trip and server-side staging cost more than it saves, and its latency varies
more: at 1,000 events/s (flushes of about 10) the p99 from record to audit log fell from
44–69 ms to 27–48 ms when such flushes were published one by one (docs/performance.md).
Either way every event keeps its Nats-Msg-Id, so a retry never stores it twice."""


@dataclass(frozen=True, slots=True)
class Item:
    """One event to seal: the body is already Avro-encoded."""

    subject: str
    type_name: str
    body: bytes
    event_id: str | None = None
    time_text: str | None = None


def seal_batch(key: SigningKey, items: Sequence[Item]) -> list[Envelope]:
    """Sign a run of events of one sender: one v2 signature, or v1 for a single event.

    A gm key signs every event on its own (v1-sm2): batch signatures are Ed25519 only so far
    (docs/gm.md, "not yet covered")."""
    if len(items) <= 1 or key.suite.name != "intl":
        return [
            seal(key, i.subject, i.type_name, i.body, event_id=i.event_id, time_text=i.time_text)
            for i in items
        ]
    if len(items) > MAX_BATCH_EVENTS:
        raise PublishError(
            f"a batch signature covers at most {MAX_BATCH_EVENTS} events, not {len(items)}"
        )
    source = key.participant
    now = format_time()
    ids = [i.event_id or new_event_id() for i in items]
    times = [i.time_text or now for i in items]
    leaves = [
        _sha256(b"\x00" + statement(i.subject, eid, source, i.type_name, t, i.body)).digest()
        for i, eid, t in zip(items, ids, times, strict=True)
    ]
    root, paths = tree(leaves)
    signature = base64.b64encode(key.sign(signing_input(source, len(items), root)))
    shared = {
        H_SPECVERSION: "1.0",
        H_SOURCE: source,
        H_CONTENT_TYPE: CONTENT_TYPE,
        H_KEY: f"{source}/{key.key_id}",
        H_BATCH_SIG: signature.decode(),
        H_BATCH_SIZE: str(len(items)),
    }
    envs = []
    for index, (item, eid, t, path) in enumerate(zip(items, ids, times, paths, strict=True)):
        headers = {
            **shared,
            H_ID: eid,
            H_TYPE: item.type_name,
            H_TIME: t,
            H_BATCH_INDEX: str(index),
            H_BATCH_PATH: base64.b64encode(path).decode(),
            H_MSG_ID: eid,
        }
        envs.append(Envelope(item.subject, headers, item.body))
    return envs


class BatchSender:
    """Collects one participant's events and publishes them in signed, atomic batches."""

    def __init__(
        self,
        publisher: Publisher,
        key: SigningKey,
        *,
        max_batch: int = MAX_BATCH,
        linger: float = 0.002,
        max_inflight: int = 2,
        batch_signatures: bool = True,
    ) -> None:
        """``linger``: seconds a batch waits for more events after its first one;
        ``batch_signatures=False`` signs every event on its own (v1), for comparison."""
        self._publisher = publisher
        self._key = key
        self._max_batch = min(max_batch, MAX_BATCH, MAX_BATCH_EVENTS)
        self._linger = linger
        self._slots = asyncio.Semaphore(max_inflight)
        self._max_inflight = max_inflight
        self._inflight = 0
        self._v2 = batch_signatures
        self._items: list[Item] = []
        self._futures: list[asyncio.Future[PubAck]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, item: Item) -> asyncio.Future[PubAck]:
        """Queue an event; the future resolves with its PubAck once it is stored."""
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._items) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._flush)
        return future

    def submit_record(
        self,
        subject: str,
        schema: Schema,
        record: Mapping[str, Any],
        *,
        event_id: str | None = None,
    ) -> asyncio.Future[PubAck]:
        """Encode a record with its schema and queue it as an event."""
        return self.submit(Item(subject, schema.name, schema.encode(record), event_id))

    async def send(self, item: Item) -> PubAck:
        """Queue an event and wait until it is stored."""
        return await self.submit(item)

    def _flush(self, *, force: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        busy = self._inflight >= self._max_inflight
        if busy and not force and len(self._items) < self._max_batch:
            # Every slot is storing a batch: keep filling this one rather than queueing many
            # small ones behind them, so batches grow with the load (fewer signatures, syncs
            # and commits per event). A finishing store flushes it.
            return
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        self._inflight += 1
        task = asyncio.get_running_loop().create_task(self._store(items, futures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, items: list[Item], futures: list[asyncio.Future[PubAck]]) -> None:
        async with self._slots:
            try:
                envs = (
                    seal_batch(self._key, items)
                    if self._v2
                    else [envelope for item in items for envelope in seal_batch(self._key, [item])]
                )
                atomic = len(envs) >= min(ATOMIC_FROM, self._max_batch)
                # Each event meets the receivers' checks first; one they would refuse fails
                # its own future and the others are stored (a leaf left out of a v2 batch
                # costs the others nothing: each carries its own path).
                results = await self._publisher.publish_each(envs, atomic=atomic)
            except Exception as exc:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                return
            finally:
                self._inflight -= 1
                if self._items and self._timer is None:
                    self._flush()
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, PubAck):
                future.set_result(result)
            else:
                future.set_exception(result)

    async def flush(self) -> None:
        """Publish whatever is queued and wait for every batch in flight."""
        self._flush(force=True)
        while self._tasks or self._items:
            if self._items and not self._tasks:
                self._flush(force=True)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
