"""``govhub audit verify``: check what PostgreSQL holds against the log's own signed history.

The quick check verifies every stored checkpoint's log signature (and, for published ones, the
witness policy), recomputes the latest checkpoint's root from the stored tiles, and proves the
latest consistent with every other stored checkpoint.

``full=True`` then replays the log from its entries: it reads every leaf in index order, checks
the indexes run 0, 1, 2... with nothing missing or extra, that the search columns agree with the
leaf bytes, re-runs the receiver checks on every accepted event (sender signature, key window,
schema), recomputes every leaf hash and tile and compares them with the stored tiles, and
compares the rebuilt root with every stored checkpoint at its size. The first failure is raised
as ``TamperEvidence`` naming the first bad leaf index. A row altered, removed, inserted or moved
shows up as a leaf whose hash is not the one the tiles and the signed checkpoints commit to.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub.audit import merkle, note
from hub.audit.leaf import column_text, content_digest, quarantine_key
from hub.audit.merkle import CompactRange
from hub.audit.note import Checkpoint, Verifier
from hub.audit.reader import StoredCheckpoint, TileReader, checkpoints, open_gaps
from hub.audit.tiles import TILE_HEIGHT, TILE_WIDTH, tiles_for_size
from hub.audit.verify import VerificationError, parse_leaf
from hub.envelope import Envelope
from hub.errors import RejectedEvent, TamperEvidence
from hub.verifier import Verifier as EventVerifier

PAGE = 5000
HASH = merkle.HASH_SIZE

Progress = Callable[[int], None]


@dataclass
class VerifyReport:
    """What a verification established."""

    tree_size: int
    checkpoints: int
    latest_size: int | None
    latest_root: str | None
    latest_cosigners: list[str]
    full: bool = False
    leaves_checked: int = 0
    accepted_verified: int = 0
    quarantined: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": True, **self.__dict__}


def _open(cp: StoredCheckpoint, log_keys: Sequence[Verifier]) -> tuple[Checkpoint, note.Note]:
    """Parse a stored checkpoint and check a log key signed exactly what the row claims."""
    what = f"checkpoint {cp.size}"
    try:
        signed, _ = note.open_note(cp.note, list(log_keys))
        parsed = Checkpoint.parse(signed.text)
    except note.NoteError as exc:
        raise TamperEvidence(f"{what}: {exc}") from exc
    if (parsed.size, parsed.root_hash) != (cp.size, cp.root):
        raise TamperEvidence(f"{what}: the stored size or root differs from the signed note")
    return parsed, signed


async def verify_log(
    pool: asyncpg.Pool,
    log_keys: Sequence[Verifier],
    witnesses: Sequence[Verifier],
    k: int,
    *,
    full: bool = False,
    events: EventVerifier | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the stored log; raise TamperEvidence at the first failure."""
    stored = await checkpoints(pool)
    size = int(await pool.fetchval("SELECT size FROM audit_state"))
    parsed: list[Checkpoint] = []
    for cp in stored:
        checkpoint, signed = _open(cp, log_keys)
        if cp.published_at is not None:
            cosigned, _ = note.verify_signatures(signed, list(witnesses))
            if len(cosigned) < k:
                raise TamperEvidence(
                    f"published checkpoint {cp.size} has {len(cosigned)} valid witness "
                    f"cosignatures, the policy needs {k}"
                )
        parsed.append(checkpoint)
    report = VerifyReport(size, len(stored), None, None, [], full=full)
    report.gaps = [_gap_json(g) for g in await open_gaps(pool)]
    if stored:
        latest, latest_row = parsed[-1], stored[-1]
        if latest.size > size:
            raise TamperEvidence(
                f"checkpoint {latest.size} was signed but the stored tree has only {size} leaves",
                index=size,
            )
        tiles = TileReader(pool)
        if await tiles.root(latest.size) != latest.root_hash:
            raise TamperEvidence(
                f"the stored tiles do not give the root of signed checkpoint {latest.size}"
            )
        for earlier in parsed[:-1]:
            proof = await tiles.consistency(earlier.size, latest.size)
            try:
                merkle.verify_consistency(
                    earlier.size, latest.size, earlier.root_hash, latest.root_hash, proof
                )
            except merkle.ProofError as exc:
                raise TamperEvidence(
                    f"checkpoint {earlier.size} is not consistent with checkpoint "
                    f"{latest.size}: {exc}"
                ) from exc
        report.latest_size = latest.size
        report.latest_root = base64.b64encode(latest.root_hash).decode()
        report.latest_cosigners = list(latest_row.cosigners)
    if full:
        await _replay(pool, size, parsed, report, events, progress)
    return report


def _gap_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in row.items()
        if k in ("stream", "first_seq", "last_seq", "detected_at", "after_leaf")
    }


class _TileCheck:
    """Compares recomputed tile hashes with stored tiles, level by level, as the replay goes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._built: dict[int, bytearray] = {}
        self._stored: dict[tuple[int, int], bytes] = {}

    async def _tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._stored:
            if len(self._stored) > 64:
                self._stored.clear()
            rows = await self._pool.fetch(
                "SELECT idx, hashes FROM audit_tiles WHERE level = $1 AND idx >= $2 AND idx < $3",
                level,
                index,
                index + 32,
            )
            for r in rows:
                self._stored[level, r["idx"]] = bytes(r["hashes"])
        return self._stored.get(key, b"")

    async def node(self, level: int, index: int, h: bytes) -> None:
        """Check one recomputed node that belongs in a tile (``level`` a multiple of 8)."""
        tile_level = level // TILE_HEIGHT
        stored = await self._tile(tile_level, index // TILE_WIDTH)
        pos = (index % TILE_WIDTH) * HASH
        if stored[pos : pos + HASH] != h:
            first = index << level
            where = (
                "leaf"
                if level == 0
                else f"the subtree of leaves {first}..{first + (1 << level) - 1}, first"
            )
            raise TamperEvidence(
                f"{where} {first}: the stored tile {tile_level}/{index // TILE_WIDTH} holds "
                "another hash than the one recomputed from the entries",
                index=first,
            )


async def _replay(
    pool: asyncpg.Pool,
    size: int,
    signed: list[Checkpoint],
    report: VerifyReport,
    events: EventVerifier | None,
    progress: Progress | None,
) -> None:
    crange = CompactRange()
    tiles = _TileCheck(pool)
    pending = list(signed)
    if pending and pending[0].size == 0 and pending.pop(0).root_hash != merkle.EMPTY_ROOT:
        raise TamperEvidence("the signed checkpoint of the empty tree has a non-empty root")
    expected = 0
    last = await pool.fetchval("SELECT max(idx) FROM audit_leaves")
    while True:
        rows = await pool.fetch(
            "SELECT * FROM audit_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2", expected, PAGE
        )
        if not rows:
            break
        for row in rows:
            index = row["idx"]
            if index != expected:
                raise TamperEvidence(
                    f"leaf index {expected} is missing from the log", index=expected
                )
            if index >= size:
                raise TamperEvidence(
                    f"leaf index {index} is stored but the tree state has only {size} leaves",
                    index=index,
                )
            leaf = bytes(row["leaf"])
            _check_columns(row, leaf, events, report)
            for level, node_index, h in crange.append(merkle.leaf_hash(leaf)):
                if level % TILE_HEIGHT == 0:
                    await tiles.node(level, node_index, h)
            while pending and pending[0].size == crange.size:
                cp = pending.pop(0)
                if crange.root() != cp.root_hash:
                    raise TamperEvidence(
                        f"the entries before index {cp.size} do not give the root of signed "
                        f"checkpoint {cp.size}: an entry in that range was altered",
                        index=max(0, cp.size - 1),
                    )
            expected += 1
        report.leaves_checked = expected
        if progress is not None:
            progress(expected)
    if expected != size or (last is not None and last + 1 != expected):
        raise TamperEvidence(f"leaf index {expected} is missing from the log", index=expected)
    if pending:
        raise TamperEvidence(f"checkpoint {pending[0].size} covers leaves that are not stored")
    stored = await pool.fetchval("SELECT compact_range FROM audit_state")
    if bytes(stored) != crange.to_bytes():
        raise TamperEvidence("the stored tree state (compact range) differs from the replay")
    want = {(t.level, t.index): t.width for t in tiles_for_size(size)}
    have = {
        (r["level"], r["idx"]): r["w"]
        for r in await pool.fetch(
            "SELECT level, idx, octet_length(hashes) / 32 AS w FROM audit_tiles"
        )
    }
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            raise TamperEvidence(
                f"stored tile {key[0]}/{key[1]} has {have.get(key, 0)} hashes; a tree of {size} "
                f"leaves has {want.get(key, 0)} there"
            )


def _check_columns(
    row: asyncpg.Record, leaf: bytes, events: EventVerifier | None, report: VerifyReport
) -> None:
    """The search columns must say what the leaf says; accepted events must still verify."""
    index = row["idx"]
    try:
        # The offline verifier's reader: stored bytes are evidence, checked field by field.
        obj = parse_leaf(leaf)
        body = base64.b64decode(obj["body"], validate=True)
    except (VerificationError, ValueError):
        raise TamperEvidence(f"leaf {index} is not a version 1 leaf", index=index) from None
    headers: dict[str, str] = obj["headers"]
    claims = {
        "event_id": column_text(headers.get("ce-id", "")),
        "source": column_text(headers.get("ce-source", "")),
        "type": column_text(headers.get("ce-type", "")),
        "subject": column_text(obj["subject"]),
        "verdict": obj["verdict"],
        "reason": obj["reason"],
    }
    for column, value in claims.items():
        if row[column] != value:
            raise TamperEvidence(
                f"leaf {index}: the stored {column} column disagrees with the leaf bytes",
                index=index,
            )
    if obj["verdict"] == "accepted":
        if row["event_key"] != headers.get("ce-id"):
            raise TamperEvidence(
                f"leaf {index}: its idempotency key is not its event id", index=index
            )
        if events is not None:
            env = Envelope(obj["subject"], headers, body)
            try:
                events.verify(env, row["received_at"])
            except RejectedEvent as exc:
                raise TamperEvidence(
                    f"leaf {index}: logged as accepted but fails the receiver checks: {exc}",
                    index=index,
                ) from exc
            report.accepted_verified += 1
    else:
        report.quarantined += 1
        if obj["body"] or not (obj["detail"] or "").count("omitted"):
            digest = content_digest(obj["subject"], headers, body)
            if row["event_key"] != quarantine_key(digest):
                raise TamperEvidence(
                    f"leaf {index}: its idempotency key does not match its content", index=index
                )
