"""The audit tree in PostgreSQL: batches, tiles, idempotency keys, sequence gaps, proofs."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from hub import merkle
from hub.audit import store
from hub.audit.leaf import LeafRecord, canonical_json, quarantine_key
from hub.audit.reader import TileReader
from hub.audit.sequences import SequenceTracker
from hub.audit.tiles import TILE_WIDTH, tiles_for_size
from hub.db import create_pool, migrate
from hub.errors import AuditError
from hub.merkle import CompactRange

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def record(
    n: int,
    *,
    verdict: str = "accepted",
    event_id: str | None = None,
    body: str = "",
    stream_seq: int | None = None,
    origin: tuple[str, int] | None = None,
) -> LeafRecord:
    """A synthetic leaf (the store does not care what is inside, only about keys and order)."""
    event_id = event_id or f"event-{n}"
    leaf = canonical_json({"v": 1, "n": n, "id": event_id, "body": body, "verdict": verdict})
    digest = hashlib.sha256(f"{event_id}/{body}".encode()).digest()
    return LeafRecord(
        key=event_id if verdict == "accepted" else quarantine_key(digest),
        digest=digest,
        leaf=leaf,
        event_id=event_id,
        source="akto.civil",
        type="gov.common.v1.Notice",
        subject="evt.akto.civil.notice",
        verdict=verdict,
        reason=None if verdict == "accepted" else "bad_signature",
        detail=None,
        event_time=NOW,
        received_at=NOW,
        stream="GOVHUB",
        stream_seq=n + 1 if stream_seq is None else stream_seq,
        origin=origin,
    )


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(pg_dsn)
    await migrate(p)
    try:
        yield p
    finally:
        await p.close()


class Writer:
    """The appender's use of the store, without NATS."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.state: store.TreeState | None = None
        self.tracker = SequenceTracker()

    async def load(self) -> None:
        self.state = await store.load_state(self.conn)
        self.tracker = await store.load_tracker(self.conn)

    async def append(self, records: list[LeafRecord]) -> store.BatchOutcome:
        assert self.state is not None
        self.state, self.tracker, outcome = await store.append_batch(
            self.conn, self.state, self.tracker, records
        )
        return outcome


@pytest.fixture
async def writer(pool: asyncpg.Pool) -> AsyncIterator[Writer]:
    async with pool.acquire() as conn:
        w = Writer(conn)
        await w.load()
        yield w


async def test_batches_of_any_size_give_the_tiles_and_root_of_the_whole_tree(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    records = [record(i) for i in range(70_000 // 64)]  # crosses level-0 tile boundaries
    for start, size in ((0, 1), (1, 255), (256, 1), (257, 300), (557, 537)):
        await writer.append(records[start : start + size])
    leaves = [r.leaf for r in records]
    expected = CompactRange()
    nodes = {}
    for leaf in leaves:
        for level, index, h in expected.append(merkle.leaf_hash(leaf)):
            nodes[level, index] = h
    tiles = TileReader(pool)
    assert await tiles.root(len(leaves)) == expected.root()
    for tile in tiles_for_size(len(leaves)):
        want = b"".join(nodes[node] for node in tile.node_ids())
        assert await tiles.tile(tile) == want
    row = await pool.fetchrow("SELECT size, root FROM audit_state")
    assert (row["size"], bytes(row["root"])) == (len(leaves), expected.root())


async def test_proofs_from_stored_tiles_verify_for_every_leaf_and_many_sizes(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    await writer.append([record(i) for i in range(600)])
    tiles = TileReader(pool)
    for size in (1, 2, 7, 256, 257, 511, 600):
        root = await tiles.root(size)
        for index in {0, size // 2, size - 1}:
            proof = await tiles.inclusion(index, size)
            leaf = record(index).leaf
            merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, proof, root)
        for old in (1, 3, 256, size):
            if old <= size:
                proof = await tiles.consistency(old, size)
                merkle.verify_consistency(old, size, await tiles.root(old), root, proof)


async def test_a_restarted_writer_continues_from_the_committed_state(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    await writer.append([record(i) for i in range(300)])
    async with pool.acquire() as conn:
        second = Writer(conn)
        await second.load()
        assert second.state is not None and writer.state is not None
        assert second.state.crange == writer.state.crange
        assert second.state.edges == writer.state.edges
        await second.append([record(i) for i in range(300, 520)])
    root = CompactRange()
    root.extend(merkle.leaf_hash(record(i).leaf) for i in range(520))
    assert await TileReader(pool).root(520) == root.root()


async def test_a_redelivered_event_never_becomes_a_second_leaf(writer: Writer) -> None:
    first = await writer.append([record(0), record(1)])
    again = await writer.append([record(1), record(2), record(2)])
    assert (first.appended, again.appended, again.duplicates) == (2, 1, 2)
    assert again.final[0] is None and again.final[2] is None
    assert writer.state is not None and writer.state.size == 3


async def test_an_accepted_event_id_reused_for_other_content_is_logged_quarantined(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    await writer.append([record(0, event_id="same")])
    outcome = await writer.append([record(1, event_id="same", body="other")])
    final = outcome.final[0]
    assert final is not None and final.verdict == "quarantined"
    assert final.reason == "duplicate_id" and final.key.startswith("q:")
    assert b'"reason":"duplicate_id"' in final.leaf
    # The same conflicting copy arriving again is a duplicate of that quarantined leaf.
    again = await writer.append([record(1, event_id="same", body="other")])
    assert again.duplicates == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_leaves WHERE event_id = 'same'") == 2


async def test_a_quarantined_message_reusing_a_real_event_id_does_not_displace_it(
    writer: Writer,
) -> None:
    forged = record(0, event_id="real", body="forged", verdict="quarantined")
    outcome = await writer.append([forged, record(1, event_id="real")])
    assert outcome.appended == 2
    assert [r.verdict for r in outcome.final if r] == ["quarantined", "accepted"]


async def test_a_writer_whose_state_is_stale_refuses_to_write(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    async with pool.acquire() as conn:
        other = Writer(conn)
        await other.load()
        await other.append([record(0)])
    with pytest.raises(store.StaleState, match="expected 0"):
        await writer.append([record(1)])
    assert await pool.fetchval("SELECT count(*) FROM audit_leaves") == 1


async def test_a_stored_tile_is_never_rewritten_only_extended(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    await writer.append([record(i) for i in range(10)])
    await pool.execute("UPDATE audit_tiles SET hashes = overlay(hashes placing '\\xff' FROM 1)")
    with pytest.raises(AuditError, match="stored tile 0/0 is not a prefix"):
        await writer.append([record(10)])
    assert await pool.fetchval("SELECT size FROM audit_state") == 10


async def test_per_origin_gaps_are_recorded_and_closed_when_late_messages_arrive(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    county = [record(i, origin=("GOV_AKTO", seq)) for i, seq in enumerate((1, 2, 5, 6))]
    outcome = await writer.append(county)
    assert [(g.stream, g.first, g.last) for g in outcome.new_gaps] == [("GOV_AKTO", 3, 4)]
    await writer.append([record(4, origin=("GOV_AKTO", 3))])
    gaps = await pool.fetch("SELECT stream, first_seq, last_seq FROM audit_gaps")
    assert [tuple(g) for g in gaps] == [("GOV_AKTO", 4, 4)]
    assert await pool.fetchval("SELECT last_seq FROM audit_origins WHERE stream='GOV_AKTO'") == 6


def test_a_sequence_tracker_splits_a_gap_around_a_late_arrival() -> None:
    tracker = SequenceTracker()
    assert all(tracker.observe("S", seq) for seq in (1, 10))
    assert tracker.observe("S", 5) and not tracker.observe("S", 5) and not tracker.observe("S", 1)
    assert [(g.first, g.last) for g in tracker.open_gaps()] == [(2, 4), (6, 9)]


async def test_the_writer_lock_admits_one_writer_at_a_time(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as first, pool.acquire() as second:
        assert await store.try_lock(first)
        assert not await store.try_lock(second)
        await first.execute("SELECT pg_advisory_unlock_all()")
        assert await store.try_lock(second)


async def test_a_full_tile_holds_exactly_256_hashes(pool: asyncpg.Pool, writer: Writer) -> None:
    await writer.append([record(i) for i in range(TILE_WIDTH + 3)])
    widths = dict(
        ((r["level"], r["idx"]), r["w"])
        for r in await pool.fetch(
            "SELECT level, idx, octet_length(hashes) / 32 AS w FROM audit_tiles"
        )
    )
    assert widths == {(0, 0): 256, (0, 1): 3, (1, 0): 1}
