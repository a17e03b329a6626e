"""The audit tree in PostgreSQL, written by one appender: leaves, tiles, state, origins, gaps.

Writing happens only on the connection that holds the advisory lock ``WRITER_LOCK``, one
transaction per batch: new leaves (COPY), the hash tiles they extend, the tree state (size,
root, compact range), the per-origin sequences and gaps. Leaf indexes are assigned here from the
committed size, so they are gap-free from 0 whatever happens to a batch that does not commit.
Every transaction first re-reads the stored size under ``FOR UPDATE`` and refuses to write if
it is not the size this writer expected (another writer, or a commit whose outcome was lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from hub.audit import leaf as leafmod
from hub.audit.leaf import LeafRecord
from hub.audit.sequences import Gap, SequenceTracker
from hub.audit.tiles import TILE_HEIGHT, TILE_WIDTH
from hub.errors import AuditError, Reason
from hub.merkle import CompactRange, leaf_hash

WRITER_LOCK = 0x60_76_68_75_62_00_00_03
"""Advisory lock key of the single audit writer (any constant shared by all govhub processes)."""

HASH = 32
LEAF_COLUMNS = (
    "idx", "event_key", "digest", "leaf", "event_id", "source", "type", "subject", "verdict",
    "reason", "event_time", "received_at", "stream", "stream_seq", "origin_stream", "origin_seq",
)  # fmt: skip


class StaleState(AuditError):
    """The stored tree is not the one this writer holds in memory; reload before writing."""


@dataclass
class TreeState:
    """What the writer keeps in memory: O(log n) hashes, whatever the size of the log.

    ``edges[L]`` holds the hashes of the rightmost, not yet full, tile at tile level ``L``.
    """

    crange: CompactRange
    edges: dict[int, bytearray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of leaves committed."""
        return self.crange.size

    def copy(self) -> TreeState:
        """An independent copy to extend speculatively until the batch commits."""
        return TreeState(self.crange.copy(), {k: bytearray(v) for k, v in self.edges.items()})

    def extend(self, hashes: list[bytes]) -> list[tuple[int, int, bytes]]:
        """Append leaf hashes; return every tile ``(level, index, hashes)`` that changed."""
        full: list[tuple[int, int, bytes]] = []
        levels: set[int] = set()
        for h in hashes:
            for level, index, node in self.crange.append(h):
                if level % TILE_HEIGHT:
                    continue
                tile_level = level // TILE_HEIGHT
                edge = self.edges.setdefault(tile_level, bytearray())
                edge += node
                levels.add(tile_level)
                if len(edge) == TILE_WIDTH * HASH:
                    full.append((tile_level, index // TILE_WIDTH, bytes(edge)))
                    edge.clear()
        partial = [
            (lv, (self.size >> (TILE_HEIGHT * lv)) // TILE_WIDTH, bytes(self.edges[lv]))
            for lv in sorted(levels)
            if self.edges[lv]
        ]
        return full + partial


@dataclass
class BatchOutcome:
    """What one committed batch did; ``final[i]`` is input ``i`` as logged, None if a duplicate."""

    final: list[LeafRecord | None]
    first_index: int
    new_gaps: list[Gap]

    @property
    def appended(self) -> int:
        """Leaves added."""
        return sum(r is not None for r in self.final)

    @property
    def duplicates(self) -> int:
        """Inputs that were already in the log (or earlier in the batch)."""
        return sum(r is None for r in self.final)


async def load_state(conn: asyncpg.Connection) -> TreeState:
    """Read the committed tree state and the right-edge tiles, checking they agree."""
    row = await conn.fetchrow("SELECT size, root, compact_range FROM audit_state")
    if row is None:
        raise AuditError("the audit_state row is missing; the audit migration did not run")
    crange = CompactRange.from_bytes(bytes(row["compact_range"]))
    if crange.size != row["size"] or crange.root() != bytes(row["root"]):
        raise AuditError("the stored audit tree state is inconsistent (size or root disagree)")
    edges: dict[int, bytearray] = {}
    wanted = []
    level = 0
    while crange.size >> (TILE_HEIGHT * level):
        count = crange.size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            wanted.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    rows = await conn.fetch(
        "SELECT t.level, t.idx, t.hashes"
        " FROM unnest($1::smallint[], $2::bigint[]) AS k(level, idx)"
        " JOIN audit_tiles t ON t.level = k.level AND t.idx = k.idx",
        [w[0] for w in wanted],
        [w[1] for w in wanted],
    )
    stored = {(r["level"], r["idx"]): bytes(r["hashes"]) for r in rows}
    for level, index, width in wanted:
        data = stored.get((level, index), b"")
        if len(data) != width * HASH:
            raise AuditError(
                f"tile {level}/{index} holds {len(data) // HASH} hashes, the tree needs {width}"
            )
        edges[level] = bytearray(data)
    return TreeState(crange, edges)


async def load_tracker(conn: asyncpg.Connection) -> SequenceTracker:
    """Read the per-origin sequences and open gaps."""
    tracker = SequenceTracker()
    for r in await conn.fetch("SELECT stream, last_seq FROM audit_origins"):
        tracker.last[r["stream"]] = r["last_seq"]
    for r in await conn.fetch("SELECT * FROM audit_gaps ORDER BY stream, first_seq"):
        tracker.gaps.setdefault(r["stream"], []).append(
            Gap(r["stream"], r["first_seq"], r["last_seq"], r["detected_at"], r["after_leaf"])
        )
    return tracker


def _resolve(records: list[LeafRecord], existing: dict[str, bytes]) -> list[LeafRecord | None]:
    """Drop what is already logged; an accepted event id reused for other content is quarantined."""
    seen = dict(existing)
    out: list[LeafRecord | None] = []
    for record in records:
        if (
            record.key in seen
            and record.verdict == "accepted"
            and seen[record.key] != record.digest
        ):
            record = leafmod.requalify(
                record,
                Reason.DUPLICATE_ID,
                f"event id {record.event_id} is already logged for different content",
            )
        if record.key in seen:
            out.append(None)
            continue
        seen[record.key] = record.digest
        out.append(record)
    return out


async def append_batch(
    conn: asyncpg.Connection,
    state: TreeState,
    tracker: SequenceTracker,
    records: list[LeafRecord],
) -> tuple[TreeState, SequenceTracker, BatchOutcome]:
    """Append a batch in one transaction; return the new state and tracker once committed.

    ``state`` and ``tracker`` are not modified: if the transaction fails they are still exact.
    """
    new_state, new_tracker = state.copy(), tracker.copy()
    keys = [r.key for r in records]
    keys += [leafmod.quarantine_key(r.digest) for r in records if r.verdict == "accepted"]
    async with conn.transaction():
        size = await conn.fetchval("SELECT size FROM audit_state FOR UPDATE")
        if size != state.size:
            raise StaleState(
                f"the stored tree has {size} leaves, this writer expected {state.size}"
            )
        rows = await conn.fetch(
            "SELECT event_key, digest FROM audit_leaves WHERE event_key = ANY($1::text[])", keys
        )
        final = _resolve(records, {r["event_key"]: bytes(r["digest"]) for r in rows})
        fresh = [r for r in final if r is not None]
        for record in records:
            new_tracker.observe(record.stream, record.stream_seq, size)
            if record.origin is not None:
                new_tracker.observe(record.origin[0], record.origin[1], size)
        if fresh:
            tiles = new_state.extend([leaf_hash(r.leaf) for r in fresh])
            await conn.copy_records_to_table(
                "audit_leaves",
                records=[leaf_row(size + i, r) for i, r in enumerate(fresh)],
                columns=LEAF_COLUMNS,
            )
            await _write_tiles(conn, tiles)
            await conn.execute(
                "UPDATE audit_state SET size = $1, root = $2, compact_range = $3,"
                " updated_at = now()",
                new_state.size,
                new_state.crange.root(),
                new_state.crange.to_bytes(),
            )
        await _write_sequences(conn, new_tracker)
    outcome = BatchOutcome(final, size, list(new_tracker.new_gaps))
    new_tracker.changed.clear()
    new_tracker.new_gaps.clear()
    return new_state, new_tracker, outcome


def leaf_row(index: int, r: LeafRecord) -> tuple[object, ...]:
    """The ``audit_leaves`` row of a record at ``index``, in ``LEAF_COLUMNS`` order."""
    origin_stream, origin_seq = r.origin if r.origin is not None else (None, None)
    return (
        index, r.key, r.digest, r.leaf, r.event_id, r.source, r.type, r.subject, r.verdict,
        r.reason, r.event_time, r.received_at, r.stream, r.stream_seq, origin_stream, origin_seq,
    )  # fmt: skip


async def _write_tiles(conn: asyncpg.Connection, tiles: list[tuple[int, int, bytes]]) -> None:
    """Insert or extend tiles; a stored tile is only ever extended, never rewritten."""
    written = await conn.fetch(
        "INSERT INTO audit_tiles AS t (level, idx, hashes)"
        " SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])"
        " ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes"
        " WHERE substring(EXCLUDED.hashes FROM 1 FOR octet_length(t.hashes)) = t.hashes"
        " RETURNING level, idx",
        [t[0] for t in tiles],
        [t[1] for t in tiles],
        [t[2] for t in tiles],
    )
    if len(written) != len(tiles):
        # Only a second writer or a damaged table can get here; never overwrite history.
        done = {(r["level"], r["idx"]) for r in written}
        level, index, _ = next(t for t in tiles if (t[0], t[1]) not in done)
        raise AuditError(f"stored tile {level}/{index} is not a prefix of the one computed now")


async def _write_sequences(conn: asyncpg.Connection, tracker: SequenceTracker) -> None:
    if not tracker.changed:
        return
    streams = sorted(tracker.changed)
    await conn.execute(
        "INSERT INTO audit_origins (stream, last_seq)"
        " SELECT * FROM unnest($1::text[], $2::bigint[])"
        " ON CONFLICT (stream) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()",
        streams,
        [tracker.last[s] for s in streams],
    )
    await conn.execute("DELETE FROM audit_gaps WHERE stream = ANY($1::text[])", streams)
    gaps = tracker.open_gaps(set(streams))
    if gaps:
        await conn.executemany(
            "INSERT INTO audit_gaps (stream, first_seq, last_seq, detected_at, after_leaf)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(g.stream, g.first, g.last, g.detected_at, g.after_leaf) for g in gaps],
        )


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the writer lock if free (the session keeps it until it ends)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK))


async def lock(conn: asyncpg.Connection) -> None:
    """Wait for the writer lock: a standby blocks here until the writer's session ends."""
    await conn.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK)
