"""``govhub audit verify``: check what PostgreSQL holds against the log's own signed history.

The quick check opens every stored checkpoint with the offline verifier's own checks
(``hub.audit.verify.open_checkpoint``: a trusted log key, the origin, valid witness cosignatures
none dated in the future), holds published ones to the witness policy and every one to its
signing key's validity window (bounded by the leaves it covers, as offline), recomputes the
latest checkpoint's root from the stored tiles, and proves the latest consistent with every
other stored checkpoint. The keys and windows are a trust file's (``load_trust``), so online and
offline verification judge a log by the same rules.

``full=True`` then replays the log from its entries: it reads every leaf in index order, checks
the indexes run 0, 1, 2... with nothing missing or extra, that the search columns (and the
receipt time) agree with the leaf bytes, re-runs the receiver checks on every accepted event
(sender signature, key window, schema), recomputes every leaf hash and tile and compares them
with the stored tiles, and compares the rebuilt root with every stored checkpoint at its size.
The first failure is raised as ``TamperEvidence`` naming the first bad leaf index. A row
altered, removed, inserted or moved shows up as a leaf whose hash is not the one the tiles and
the signed checkpoints commit to.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub import merkle
from hub.audit import verify
from hub.audit.leaf import column_text, content_digest, quarantine_key
from hub.audit.note import Checkpoint
from hub.audit.reader import StoredCheckpoint, TileReader, checkpoints, open_gaps
from hub.audit.tiles import TILE_HEIGHT, TILE_WIDTH, tiles_for_size
from hub.audit.verify import Trust, VerificationError, parse_leaf
from hub.envelope import Envelope
from hub.errors import RejectedEvent, TamperEvidence
from hub.merkle import CompactRange
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


async def _received_before(pool: asyncpg.Pool, stored: Sequence[StoredCheckpoint]) -> list[float]:
    """For each stored checkpoint, the latest time a leaf it covers was received (-inf: none).

    One pass over the leaves: the latest of each range between consecutive checkpoint sizes,
    carried forward.
    """
    sizes = [cp.size for cp in stored]
    rows = await pool.fetch(
        "SELECT (SELECT max(received_at) FROM audit_leaves WHERE idx >= r.prev AND idx < r.size)"
        " AS latest FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS r(size, prev, n)"
        " ORDER BY r.n",
        sizes,
        [0, *sizes[:-1]],
    )
    out, running = [], -math.inf
    for row in rows:
        if row["latest"] is not None:
            running = max(running, row["latest"].timestamp())
        out.append(running)
    return out


def _open(
    cp: StoredCheckpoint, trust: Trust, origin: str, now: float, received: float
) -> Checkpoint:
    """Check a stored checkpoint exactly as the offline verifier checks a bundle's.

    The same function opens it (hub/audit/verify.py), so `audit verify` cannot pass a
    checkpoint that `python -m hub.audit.verify` rejects: a log key outside its window, a
    witness cosignature that does not verify or is dated in the future, another origin.
    """
    try:
        signed = verify.open_checkpoint(cp.note, origin, trust, now, "stored checkpoint")
    except (verify.BundleError, verify.VerificationError) as exc:
        raise TamperEvidence(str(exc)) from exc
    parsed = signed.checkpoint
    if (parsed.size, parsed.root_hash) != (cp.size, cp.root):
        raise TamperEvidence(
            f"checkpoint {cp.size}: the stored size or root differs from the signed note"
        )
    if cp.published_at is not None and len(signed.cosigned) < trust.k:
        raise TamperEvidence(
            f"published checkpoint {cp.size} has {len(signed.cosigned)} valid witness "
            f"cosignatures, the policy needs {trust.k}"
        )
    if not signed.signed_in_window(received):
        raise TamperEvidence(
            f"checkpoint {cp.size} is signed only by log keys used out of their window"
        )
    return parsed


async def verify_log(
    pool: asyncpg.Pool,
    trust: Trust,
    origin: str,
    *,
    full: bool = False,
    events: EventVerifier | None = None,
    progress: Progress | None = None,
    now: float | None = None,
) -> VerifyReport:
    """Verify the stored log against the log and witness keys of ``trust``.

    Raises TamperEvidence at the first failure. ``trust`` is what the offline verifier would
    use (hub/audit/verify.py ``load_trust``), windows included.
    """
    stored = await checkpoints(pool)
    size = int(await pool.fetchval("SELECT size FROM audit_state"))
    moment = time.time() if now is None else now
    received = await _received_before(pool, stored)
    parsed = [_open(cp, trust, origin, moment, t) for cp, t in zip(stored, received, strict=True)]
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
    # The quick check bounds each log key's window with this column; the offline verifier
    # uses the leaf bytes. They must be the same time, or the two could disagree.
    if _parsed_time(obj.get("received_at")) != row["received_at"]:
        raise TamperEvidence(
            f"leaf {index}: the stored received_at column disagrees with the leaf bytes",
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


def _parsed_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
