"""The directory's rows: an entry's and a request's state, and how they are written.

`directory_entries` keeps the signed entry as JSON; `directory_search` is its narrow search
side (facets, normalised text, 32-bit gram keys), written in the same statement batch so the
two never disagree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.directory.model import Entry
from hub.directory.ngrams import entry_grams, gram_keys, normalize


@dataclass
class EntryRow:
    """The current state of one resource code."""

    code: str
    provider: str
    status: str
    version: int
    record: dict[str, Any]
    event_id: str
    seq: int
    published_at: datetime
    modified_at: datetime
    withdrawn_at: datetime | None = None
    withdraw_reason: str | None = None

    def entry(self) -> Entry:
        """The entry as the model sees it."""
        return Entry.from_record(self.record)


@dataclass
class RequestRow:
    """One access request and where its workflow stands."""

    request_id: str
    code: str
    provider: str
    requester: str
    purpose: str
    fields: list[str]
    requested_until: datetime | None
    entry_version: int
    sharing_type: str
    state: str
    auto_granted: bool
    requested_at: datetime
    received_at: datetime
    deadline: datetime | None
    request_event_id: str
    granted_fields: list[str] | None = None
    valid_until: datetime | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    decision_event_id: str | None = None
    revoked_at: datetime | None = None
    revoke_event_id: str | None = None
    reminded_at: datetime | None = None
    reminder_event_id: str | None = None
    escalated_at: datetime | None = None
    escalation_event_id: str | None = None


REQUEST_COLUMNS = [f.name for f in dataclasses.fields(RequestRow)]


async def write_rows(
    conn: asyncpg.Connection,
    entries: Mapping[str, EntryRow],
    requests: Mapping[str, RequestRow],
    versions: Sequence[tuple[Any, ...]],
    cases: Sequence[tuple[Any, ...]],
) -> None:
    """Write changed rows (one statement per table) inside the caller's transaction."""
    if entries:
        rows = [entry_values(row) for row in entries.values()]
        await conn.executemany(
            """
            INSERT INTO directory_entries (code, provider, status, version, entry, event_id,
                published_at, modified_at, withdrawn_at, withdraw_reason, seq)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (code) DO UPDATE SET provider = EXCLUDED.provider,
                status = EXCLUDED.status, version = EXCLUDED.version,
                entry = EXCLUDED.entry, event_id = EXCLUDED.event_id,
                published_at = EXCLUDED.published_at, modified_at = EXCLUDED.modified_at,
                withdrawn_at = EXCLUDED.withdrawn_at,
                withdraw_reason = EXCLUDED.withdraw_reason, seq = EXCLUDED.seq
            """,
            [r[0] for r in rows],
        )
        await conn.executemany(
            f"INSERT INTO directory_search ({', '.join(SEARCH_COLUMNS)})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (code) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in SEARCH_COLUMNS[1:]),
            [r[1] for r in rows],
        )
    if versions:
        await conn.executemany(
            "INSERT INTO directory_versions (code, version, kind, entry, event_id,"
            " recorded_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT DO NOTHING",
            versions,
        )
    if requests:
        columns = ", ".join(REQUEST_COLUMNS)
        marks = ", ".join(f"${i}" for i in range(1, len(REQUEST_COLUMNS) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in REQUEST_COLUMNS[1:])
        await conn.executemany(
            f"INSERT INTO directory_requests ({columns}) VALUES ({marks})"
            f" ON CONFLICT (request_id) DO UPDATE SET {updates}",
            [dataclasses.astuple(req) for req in requests.values()],
        )
    if cases:
        await conn.executemany(
            "INSERT INTO directory_cases (case_id, code, provider, requester, operator,"
            " purpose, opened_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            cases,
        )


def searchable_texts(entry: Entry) -> list[str | None]:
    """Every text of an entry that search looks at."""
    return [
        entry.title,
        entry.title_en,
        entry.abstract,
        entry.abstract_en,
        " ".join(entry.keywords),
        entry.class_name,
        entry.theme,
        entry.code,
        entry.provider,
        " ".join(f"{i.name} {i.label_zh}" for i in entry.data_items),
        entry.spatial,
    ]


SEARCH_COLUMNS = (
    "code",
    "status",
    "provider",
    "unit",
    "category",
    "class_code",
    "sharing_type",
    "open_public",
    "modified_at",
    "title",
    "search_text",
    "grams",
)


def entry_values(row: EntryRow) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The directory_entries row and the directory_search row of an entry."""
    entry = row.entry()
    texts = searchable_texts(entry)
    stored = (
        row.code,
        row.provider,
        row.status,
        row.version,
        json.dumps(row.record, ensure_ascii=False),
        row.event_id,
        row.published_at,
        row.modified_at,
        row.withdrawn_at,
        row.withdraw_reason,
        row.seq,
    )
    searched = (
        row.code,
        row.status,
        row.provider,
        entry.unit,
        entry.category.value,
        entry.class_code,
        entry.sharing_type.value,
        entry.open_public,
        row.modified_at,
        normalize(entry.title),
        normalize(" | ".join(t for t in texts if t)),
        gram_keys(entry_grams(texts)),
    )
    return stored, searched
