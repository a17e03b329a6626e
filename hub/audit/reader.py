"""Reading the audit tree: node hashes from stored tiles, proofs, roots, leaves and checkpoints.

A proof for a tree of size N needs O(log N) node hashes; every node of level ``L`` lives in a
hash tile of tile level ``L // 8`` (directly when ``L`` is a multiple of 8, otherwise as the
Merkle hash of a power-of-two run inside the tile). ``TileReader.prepare`` fetches every tile a
set of nodes needs in one query; a proof at any log size reads a handful of 8 KiB rows.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from hub import merkle
from hub.audit.tiles import ENTRIES, TILE_HEIGHT, Tile, tile_for_node
from hub.errors import NotInLog
from hub.merkle import NodeId, ProofPlan

HASH = merkle.HASH_SIZE
_MEMO_LIMIT = 1 << 20

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


class TileReader:
    """Node hashes from stored tiles, with the tiles it read and the nodes it derived cached.

    Tiles only ever grow by appending, so a cached tile answers every node it is wide enough
    for; a node beyond it makes ``prepare`` read the tile again.
    """

    def __init__(self, db: Db) -> None:
        """Read through a pool or a connection."""
        self._db = db
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._memo: dict[NodeId, bytes] = {}

    async def prepare(self, nodes: Iterable[NodeId]) -> None:
        """Fetch, in one query, every tile the given nodes need that is not cached wide enough."""
        need: dict[tuple[int, int], int] = {}
        for level, index in nodes:
            tile, _, _ = tile_for_node(level, index)
            key = (tile.level, tile.index)
            if len(self._tiles.get(key, b"")) < tile.width * HASH:
                need[key] = max(need.get(key, 0), tile.width)
        if not need:
            return
        rows = await self._db.fetch(
            "SELECT t.level, t.idx, t.hashes"
            " FROM unnest($1::smallint[], $2::bigint[]) AS k(level, idx)"
            " JOIN audit_tiles t ON t.level = k.level AND t.idx = k.idx",
            [k[0] for k in need],
            [k[1] for k in need],
        )
        for r in rows:
            self._tiles[r["level"], r["idx"]] = bytes(r["hashes"])
        for (level, index), width in need.items():
            if len(self._tiles.get((level, index), b"")) < width * HASH:
                raise NotInLog(f"hash tile {level}/{index} does not hold {width} hashes yet")

    def hash_at(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree ``(level, index)`` (its tile must be prepared)."""
        if level % TILE_HEIGHT == 0:
            data = self._tiles[level // TILE_HEIGHT, index >> TILE_HEIGHT]
            pos = (index & ((1 << TILE_HEIGHT) - 1)) * HASH
            return data[pos : pos + HASH]
        cached = self._memo.get((level, index))
        if cached is None:
            left = self.hash_at(level - 1, 2 * index)
            cached = merkle.node_hash(left, self.hash_at(level - 1, 2 * index + 1))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[level, index] = cached
        return cached

    async def proof(self, plan: ProofPlan) -> list[bytes]:
        """Assemble a planned proof, reading its tiles in one query."""
        await self.prepare(merkle.plan_nodes(plan))
        return merkle.assemble_proof(plan, self.hash_at)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        return await self.proof(merkle.inclusion_plan(index, size))

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """Consistency proof from the tree of ``old_size`` to the tree of ``new_size``."""
        return await self.proof(merkle.consistency_plan(old_size, new_size))

    async def root(self, size: int) -> bytes:
        """Root hash of the tree of ``size`` leaves."""
        nodes = merkle.range_nodes(0, size)
        await self.prepare(nodes)
        return merkle.root_at(size, self.hash_at)

    async def tile(self, tile: Tile) -> bytes:
        """The bytes of a hash tile at exactly its width (its stored prefix)."""
        key = (tile.level, tile.index)
        if len(self._tiles.get(key, b"")) < tile.width * HASH:
            self._tiles.pop(key, None)
            await self.prepare(
                [(tile.node_level, tile.index * (1 << TILE_HEIGHT) + tile.width - 1)]
            )
        return self._tiles[key][: tile.width * HASH]


async def tree_size(db: Db) -> int:
    """Number of leaves committed."""
    return int(await db.fetchval("SELECT size FROM audit_state"))


async def leaves(db: Db, start: int, end: int) -> list[bytes]:
    """Leaf bytes of indexes ``[start, end)``; raises NotInLog if any is missing."""
    rows = await db.fetch(
        "SELECT idx, leaf FROM audit_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end
    )
    if len(rows) != end - start:
        raise NotInLog(f"leaves {start}..{end - 1} are not all in the log")
    return [bytes(r["leaf"]) for r in rows]


async def entry_bundle(db: Db, tile: Tile) -> list[bytes]:
    """The leaves of an entry bundle (``tile/entries/...``) at its width."""
    if tile.level != ENTRIES:
        raise ValueError("not an entry bundle")
    return await leaves(db, tile.start, tile.end)


@dataclass(frozen=True)
class LeafRow:
    """A leaf with the search columns stored beside it."""

    index: int
    leaf: bytes
    event_id: str
    source: str
    type: str
    subject: str
    verdict: str
    reason: str | None
    event_time: Any
    received_at: Any

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> LeafRow:
        """Build from an ``audit_leaves`` row."""
        return cls(
            r["idx"], bytes(r["leaf"]), r["event_id"], r["source"], r["type"], r["subject"],
            r["verdict"], r["reason"], r["event_time"], r["received_at"],
        )  # fmt: skip


_LEAF_SELECT = (
    "SELECT idx, leaf, event_id, source, type, subject, verdict, reason, event_time,"
    " received_at FROM audit_leaves"
)


async def find_event(db: Db, event_id: str) -> LeafRow:
    """The leaf of an event id: the accepted one if any, else its first quarantined leaf."""
    row = await db.fetchrow(
        f"{_LEAF_SELECT} WHERE event_id = $1 ORDER BY verdict <> 'accepted', idx LIMIT 1",
        event_id,
    )
    if row is None:
        raise NotInLog(f"event {event_id} is not in the audit log")
    return LeafRow.from_row(row)


async def search(
    db: Db,
    *,
    participant: str | None = None,
    type_name: str | None = None,
    since: Any = None,
    until: Any = None,
    below: int | None = None,
    limit: int = 1000,
) -> list[LeafRow]:
    """Leaves matching every given filter, by index; times bound ``event_time`` (until excluded).

    ``below`` keeps only indexes under a tree size, so every result can be proven against it.
    """
    rows = await db.fetch(
        f"{_LEAF_SELECT} WHERE ($1::text IS NULL OR source = $1)"
        " AND ($2::text IS NULL OR type = $2)"
        " AND ($3::timestamptz IS NULL OR event_time >= $3)"
        " AND ($4::timestamptz IS NULL OR event_time < $4)"
        " AND ($5::bigint IS NULL OR idx < $5)"
        " ORDER BY idx LIMIT $6",
        participant,
        type_name,
        since,
        until,
        below,
        limit,
    )
    return [LeafRow.from_row(r) for r in rows]


async def types(db: Db) -> list[str]:
    """Every event type (``ce-type``) the log holds, sorted.

    One index probe per distinct type (a loose scan of ``audit_leaves_type_time``), so it
    stays cheap however many leaves each type has.
    """
    rows = await db.fetch(
        "WITH RECURSIVE t(type) AS (SELECT min(type) FROM audit_leaves UNION ALL"
        " SELECT (SELECT min(type) FROM audit_leaves WHERE type > t.type) FROM t"
        " WHERE t.type IS NOT NULL) SELECT type FROM t WHERE type IS NOT NULL"
    )
    return [r["type"] for r in rows]


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint row: size, root, the signed (and maybe cosigned) note."""

    size: int
    root: bytes
    note: str
    cosigners: tuple[str, ...]
    signed_at: Any
    published_at: Any

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> StoredCheckpoint:
        """Build from an ``audit_checkpoints`` row."""
        return cls(
            r["size"], bytes(r["root"]), r["note"], tuple(r["cosigners"]), r["signed_at"],
            r["published_at"],
        )  # fmt: skip


async def latest_checkpoint(db: Db, *, published: bool = True) -> StoredCheckpoint | None:
    """The largest checkpoint (only published ones unless ``published`` is False)."""
    where = "WHERE published_at IS NOT NULL" if published else ""
    row = await db.fetchrow(f"SELECT * FROM audit_checkpoints {where} ORDER BY size DESC LIMIT 1")
    return StoredCheckpoint.from_row(row) if row else None


async def checkpoints(db: Db, *, published: bool = False) -> list[StoredCheckpoint]:
    """Every stored checkpoint, ascending by size."""
    where = "WHERE published_at IS NOT NULL" if published else ""
    rows = await db.fetch(f"SELECT * FROM audit_checkpoints {where} ORDER BY size")
    return [StoredCheckpoint.from_row(r) for r in rows]


async def open_gaps(db: Db) -> list[dict[str, Any]]:
    """Sequence ranges of origin streams that never reached the log."""
    rows = await db.fetch("SELECT * FROM audit_gaps ORDER BY stream, first_seq")
    return [dict(r) for r in rows]


def b64list(hashes: Sequence[bytes]) -> list[str]:
    """Hashes as standard base64 strings."""
    return [base64.b64encode(h).decode() for h in hashes]
