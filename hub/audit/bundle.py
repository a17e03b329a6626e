"""Evidence bundles for the offline verifier, and the proofs the auditor commands print.

A bundle (format in hub/audit/verify.py) holds leaves with inclusion proofs against the latest
published checkpoint, a chain of published checkpoints with consistency proofs between them,
the log and witness keys with their policy, and the participant keys from the registry, so that
``python -m hub.audit.verify BUNDLE`` needs nothing else. Bundles are written as a stream, so
exporting a large log does not hold it in memory.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from hub import merkle
from hub.audit import reader
from hub.audit.reader import LeafRow, StoredCheckpoint, TileReader, b64list
from hub.audit.verify import BUNDLE_FORMAT
from hub.enrollment import load_participants
from hub.envelope import format_time
from hub.errors import NotInLog

PAGE = 2000
SERVE_APPENDS = "`govhub serve` appends events to the log and checkpoints them continuously"


class Writer(Protocol):
    """Where a bundle is streamed: stdout, or an output file (hub.userfiles)."""

    def write(self, text: str, /) -> object:
        """Write `text`."""


async def participant_keys(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every registered sender key with its window, in the bundle's ``participant_keys`` form."""
    out = []
    for p in await load_participants(pool):
        for k in p.keys:
            entry = {
                "participant": p.id,
                "key_id": k.key_id,
                "public_key": base64.b64encode(k.public_key).decode(),
                "not_before": format_time(k.not_before),
                "not_after": format_time(k.not_after) if k.not_after else None,
                "revoked_at": format_time(p.revoked_at) if p.revoked_at else None,
            }
            if k.algorithm != "ed25519":
                # Only SM2 keys name their algorithm: bundles of an intl hub stay byte for byte
                # what verifiers written before the gm suite read.
                entry["algorithm"] = k.algorithm
            out.append(entry)
    return out


async def published(pool: asyncpg.Pool) -> StoredCheckpoint:
    """The latest published checkpoint, or NotInLog when there is none yet."""
    cp = await reader.latest_checkpoint(pool)
    if cp is None:
        raise NotInLog(
            "no checkpoint has been published yet",
            hint=f"{SERVE_APPENDS}; without it, `govhub audit checkpoint --fresh` signs one now.",
        )
    return cp


def sample(checkpoints: Sequence[StoredCheckpoint], count: int) -> list[StoredCheckpoint]:
    """At most ``count`` checkpoints spread evenly, always the first and the last."""
    if len(checkpoints) <= count:
        return list(checkpoints)
    step = (len(checkpoints) - 1) / (count - 1)
    picks = sorted({round(i * step) for i in range(count)})
    return [checkpoints[i] for i in picks]


async def inclusion(tiles: TileReader, row: LeafRow, size: int) -> dict[str, Any]:
    """One leaf with its inclusion proof, as the bundle's entries hold it."""
    proof = await tiles.inclusion(row.index, size)
    return {
        "leaf_index": row.index,
        "leaf": base64.b64encode(row.leaf).decode(),
        "inclusion": b64list(proof),
    }


async def proof_for_event(pool: asyncpg.Pool, event_id: str) -> dict[str, Any]:
    """``govhub audit proof``: the event's leaf, its hash and its inclusion proof."""
    # One round trip for the leaf and the checkpoint, one for the tiles: proofs are hot.
    found = await pool.fetchrow(
        "SELECT l.idx, l.leaf, c.size, c.note FROM (SELECT idx, leaf FROM audit_leaves"
        " WHERE event_id = $1 ORDER BY verdict <> 'accepted', idx LIMIT 1) l"
        " LEFT JOIN LATERAL (SELECT size, note FROM audit_checkpoints"
        " WHERE published_at IS NOT NULL ORDER BY size DESC LIMIT 1) c ON true",
        event_id,
    )
    if found is None:
        raise NotInLog(
            f"event {event_id} is not in the audit log",
            hint=f"{SERVE_APPENDS}: is it running? An event published moments ago may be on "
            "its way.",
        )
    if found["size"] is None:
        await published(pool)  # raises with the explanation
    index, leaf, size, note = found["idx"], bytes(found["leaf"]), found["size"], found["note"]
    if index >= size:
        raise NotInLog(
            f"event {event_id} is leaf {index}, not yet covered by a published checkpoint "
            f"(size {size})",
            hint=f"{SERVE_APPENDS}; without it, `govhub audit checkpoint --fresh` signs one now.",
        )
    proof = await TileReader(pool).inclusion(index, size)
    return {
        "event_id": event_id,
        "leaf_index": index,
        "tree_size": size,
        "leaf": base64.b64encode(leaf).decode(),
        "leaf_hash": base64.b64encode(merkle.leaf_hash(leaf)).decode(),
        "inclusion": b64list(proof),
        "checkpoint": note,
    }


async def consistency(pool: asyncpg.Pool, old_size: int, new_size: int) -> dict[str, Any]:
    """``govhub audit consistency``: both roots and the proof between them."""
    size = await reader.tree_size(pool)
    if not 0 <= old_size <= new_size <= size:
        raise NotInLog(
            f"sizes must satisfy 0 <= OLD <= NEW <= {size} (the tree size); got {old_size}, "
            f"{new_size}"
        )
    tiles = TileReader(pool)
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": base64.b64encode(await tiles.root(old_size)).decode(),
        "new_root": base64.b64encode(await tiles.root(new_size)).decode(),
        "proof": b64list(await tiles.consistency(old_size, new_size)),
    }


async def _selected(
    pool: asyncpg.Pool, start: int, end: int, filters: dict[str, Any]
) -> AsyncIterator[LeafRow]:
    if any(v is not None for v in filters.values()):
        for row in await reader.search(pool, below=end, limit=1_000_000, **filters):
            if row.index >= start:
                yield row
        return
    for page in range(start, end, PAGE):
        rows = await pool.fetch(
            "SELECT idx, leaf, event_id, source, type, subject, verdict, reason, event_time,"
            " received_at FROM audit_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            page,
            min(page + PAGE, end),
        )
        for r in rows:
            yield LeafRow.from_row(r)


async def write_bundle(
    pool: asyncpg.Pool,
    trust: dict[str, Any],
    origin: str,
    out: Writer,
    *,
    start: int = 0,
    end: int | None = None,
    participant: str | None = None,
    type_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    max_checkpoints: int = 10,
) -> dict[str, int]:
    """Write a bundle to ``out``; ``trust`` holds ``log_keys`` and ``witnesses``.

    Without filters it claims (``entries_range``) every leaf in ``[start, end)``.
    """
    latest = await published(pool)
    end = latest.size if end is None else min(end, latest.size)
    start = max(0, min(start, end))
    chain = sample(
        [c for c in await reader.checkpoints(pool, published=True) if c.size <= latest.size],
        max(2, max_checkpoints),
    )
    tiles = TileReader(pool)
    header: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "origin": origin,
        "log_keys": trust["log_keys"],
        "witnesses": trust["witnesses"],
        "participant_keys": await participant_keys(pool),
        **({"log_keys_sm2": trust["log_keys_sm2"]} if trust.get("log_keys_sm2") else {}),
        "checkpoints": [c.note for c in chain],
        "consistency": [
            {
                "old_size": a.size,
                "new_size": b.size,
                "proof": b64list(await tiles.consistency(a.size, b.size)),
            }
            for a, b in itertools.pairwise(chain)
        ],
    }
    filters = {"participant": participant, "type_name": type_name, "since": since, "until": until}
    if all(v is None for v in filters.values()):
        header["entries_range"] = {"start": start, "end": end}
    out.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "entries": [')
    count = 0
    async for row in _selected(pool, start, end, filters):
        entry = await inclusion(tiles, row, latest.size)
        out.write(("," if count else "") + "\n" + json.dumps(entry))
        count += 1
    out.write("\n]}\n")
    return {"entries": count, "tree_size": latest.size, "checkpoints": len(chain)}
