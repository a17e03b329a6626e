"""Signed checkpoints of the committed tree, cosigned by witnesses, stored and published.

``Checkpointer.sign`` signs what PostgreSQL holds, never what a process believes: under a lock
on the checkpoint table it reads the committed size and root, recomputes the root from the
stored tiles, and proves the new tree consistent with the latest stored checkpoint before it
signs. One checkpoint per size (primary key) and that proof make it impossible for the log to
sign two inconsistent checkpoints, even with a second process signing on demand.

It then asks every witness for a cosignature (c2sp.org/tlog-witness, with a consistency proof
from the size that witness last cosigned); once ``k`` have cosigned, the checkpoint is
*published*: marked in the table, served at ``/checkpoint`` and sent on ``sys.audit.checkpoint``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog

from hub import merkle
from hub.audit import note
from hub.audit.logkeys import LogKeyRing
from hub.audit.note import Checkpoint, NoteSignature
from hub.audit.reader import StoredCheckpoint, TileReader, latest_checkpoint
from hub.audit.witness import WitnessClient, format_request
from hub.errors import TamperEvidence
from hub.metrics import Counter, Gauge
from hub.outage import describe, is_transient

log = structlog.get_logger("hub.audit.checkpoints")

CHECKPOINT_SUBJECT = "sys.audit.checkpoint"
ALARM_SUBJECT = "sys.audit.alarm"

CHECKPOINTS = Counter(
    "govhub_audit_checkpoints_total", "Checkpoints signed, by outcome.", ("outcome",)
)
CHECKPOINT_SIZE = Gauge(
    "govhub_audit_checkpoint_size", "Tree size of the latest published checkpoint."
)

Publish = Callable[[str, int], Awaitable[None]]


class Checkpointer:
    """Signs checkpoints with the log key ring and gathers witness cosignatures."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ring: LogKeyRing,
        witnesses: Sequence[WitnessClient] = (),
        *,
        k: int = 0,
        publish: Publish | None = None,
        timeout: float = 5.0,
    ) -> None:
        """``publish(note, size)`` announces a published checkpoint (on the bus, in serve)."""
        self._pool, self.ring, self.witnesses, self.k = pool, ring, list(witnesses), k
        self._publish, self._timeout = publish, timeout
        self._sizes: dict[str, int] = {}
        self._busy: dict[str, asyncio.Lock] = {w.verifier.name: asyncio.Lock() for w in witnesses}
        self._stragglers: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def sign(self) -> StoredCheckpoint:
        """Sign the committed tree if it grew (else return the latest), then get it cosigned."""
        async with self._lock:
            stored, fresh = await self._sign_committed()
            if fresh or stored.published_at is None:
                stored = await self._cosign(stored)
            return stored

    async def _sign_committed(self) -> tuple[StoredCheckpoint, bool]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE audit_checkpoints IN SHARE ROW EXCLUSIVE MODE")
            state = await conn.fetchrow("SELECT size, root FROM audit_state")
            size, root = state["size"], bytes(state["root"])
            last = await latest_checkpoint(conn, published=False)
            if last is not None and last.size == size:
                return last, False
            reader = TileReader(conn)
            if await reader.root(size) != root:
                raise TamperEvidence(f"the stored tiles do not give the stored root at size {size}")
            if last is not None:
                if last.size > size:
                    raise TamperEvidence(
                        f"the tree has {size} leaves but a checkpoint for {last.size} was signed"
                    )
                proof = await reader.consistency(last.size, size)
                try:
                    merkle.verify_consistency(last.size, size, last.root, root, proof)
                except merkle.ProofError as exc:
                    CHECKPOINTS.inc("refused")
                    raise TamperEvidence(
                        f"refusing to sign size {size}: it does not extend checkpoint {last.size}"
                        f" ({exc})"
                    ) from exc
            body = Checkpoint(self.ring.origin, size, root).body()
            signed = note.sign_note(body, *self.ring.signers(), *self.ring.sm2_signers())
            row = await conn.fetchrow(
                "INSERT INTO audit_checkpoints (size, root, note, published_at)"
                " VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END) RETURNING *",
                size,
                root,
                signed,
                self.k == 0,
            )
        CHECKPOINTS.inc("signed")
        log.info("audit.checkpoint.signed", size=size)
        return StoredCheckpoint.from_row(row), True

    async def _cosign(self, cp: StoredCheckpoint) -> StoredCheckpoint:
        """Ask every witness; publish once ``k`` cosigned; late answers are added afterwards."""
        if not self.witnesses:
            await self._announce(cp)
            return cp
        tasks = [asyncio.create_task(self._ask(w, cp)) for w in self.witnesses]
        got: list[NoteSignature] = []
        published = cp.published_at is not None
        pending: set[asyncio.Task[NoteSignature | None]] = set(tasks)
        while pending and not published:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            got += [s for t in done if (s := t.result()) is not None]
            if len(got) >= self.k:
                cp = await self._record(cp, got, publish=True)
                published = True
        if not published:
            cp = await self._record(cp, got, publish=False)
            CHECKPOINTS.inc("unpublished")
            log.warning("audit.checkpoint.unpublished", size=cp.size, cosigned=len(got), k=self.k)
        elif pending:
            task = asyncio.create_task(self._late(cp, got, pending))
            self._stragglers.add(task)
            task.add_done_callback(self._stragglers.discard)
        return cp

    async def _late(
        self,
        cp: StoredCheckpoint,
        got: list[NoteSignature],
        pending: set[asyncio.Task[NoteSignature | None]],
    ) -> None:
        results = await asyncio.gather(*pending)
        late = [s for s in results if s is not None]
        if late:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._record(cp, got + late, publish=False)

    async def _record(
        self, cp: StoredCheckpoint, sigs: list[NoteSignature], *, publish: bool
    ) -> StoredCheckpoint:
        cosigned = note.add_signatures(cp.note, *sigs)
        names = sorted({s.name for s in sigs} | set(cp.cosigners))
        row = await self._pool.fetchrow(
            "UPDATE audit_checkpoints SET note = $2, cosigners = $3,"
            " published_at = COALESCE(published_at, CASE WHEN $4 THEN now() END)"
            " WHERE size = $1 RETURNING *",
            cp.size,
            cosigned,
            names,
            publish,
        )
        updated = StoredCheckpoint.from_row(row)
        if publish:
            await self._announce(updated)
        return updated

    async def _announce(self, cp: StoredCheckpoint) -> None:
        CHECKPOINT_SIZE.set(cp.size)
        CHECKPOINTS.inc("published")
        log.info("audit.checkpoint.published", size=cp.size, cosigners=len(cp.cosigners))
        if self._publish is not None:
            await self._publish(cp.note, cp.size)

    async def _ask(self, witness: WitnessClient, cp: StoredCheckpoint) -> NoteSignature | None:
        """One witness's cosignature, or None (refused, unreachable, or busy with an older one)."""
        name = witness.verifier.name
        busy = self._busy[name]
        if busy.locked():
            return None
        async with busy:
            for _attempt in range(2):
                old = self._sizes.get(name, 0)
                if old > cp.size:
                    return None  # it already cosigned a newer checkpoint
                try:
                    proof = await TileReader(self._pool).consistency(old, cp.size) if old else []
                except Exception as exc:
                    # The database went away: this witness is asked again with the next
                    # checkpoint (an unpublished one is cosigned again on the next sign()).
                    if not is_transient(exc):
                        raise
                    log.warning("audit.witness.unasked", witness=name, error=describe(exc))
                    return None
                try:
                    answer = await asyncio.wait_for(
                        witness.add_checkpoint(format_request(old, proof, cp.note)), self._timeout
                    )
                except TimeoutError:
                    log.warning("audit.witness.timeout", witness=name, size=cp.size)
                    return None
                size = resync_size(answer.body) if answer.status == 409 else None
                if size is not None:
                    self._sizes[name] = size
                    continue
                if not answer.ok:
                    log.warning(
                        "audit.witness.refused",
                        witness=name,
                        size=cp.size,
                        status=answer.status,
                        error=answer.body.strip()[:200],
                    )
                    return None
                return self._accept(witness, cp, answer.body)
        return None

    def _accept(
        self, witness: WitnessClient, cp: StoredCheckpoint, lines: str
    ) -> NoteSignature | None:
        signature = read_cosignature(cp.note, lines, witness.verifier)
        if signature is not None:
            self._sizes[witness.verifier.name] = cp.size
        return signature

    async def close(self) -> None:
        """Wait for late cosignature answers still in flight (bounded by the witness timeout)."""
        if self._stragglers:
            await asyncio.wait(set(self._stragglers), timeout=self._timeout + 1)


def resync_size(body: str) -> int | None:
    """The tree size a witness's 409 answer says it last cosigned; None if it says no size."""
    return note.plain_size(body.strip())


def read_cosignature(signed: str, lines: str, verifier: note.Verifier) -> NoteSignature | None:
    """The witness's valid cosignature of ``signed`` among its answer ``lines``, if there is one.

    The answer comes from another party; anything but a cosignature by that witness's key over
    exactly this checkpoint is logged and ignored.
    """
    try:
        combined = note.parse_note(signed + lines)
        verified, _ = note.verify_signatures(combined, [verifier])
    except note.NoteError as exc:
        log.warning("audit.witness.bad_cosignature", witness=verifier.name, error=str(exc))
        return None
    return verified[0].signature if verified else None
