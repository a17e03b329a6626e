"""Reading the directory: entries, search with facets, requests and the grants valid now.

Search runs in up to three modes, reported in the result's `mode`:

- `grams`: every gram of the query is in the entry (GIN `@>` on the gram array, so the index
  intersects posting lists); ranked by where the query occurs as a substring (title first),
  then by modification time. This is substring matching for Chinese and Latin alike.
- `fuzzy`: when no entry holds every gram, entries holding at least 60 % of them (GIN `&&`),
  ranked by the share of grams matched: trigram matching, so a typo still finds its entry.
- `substring`: a query of one Chinese character has no bigram, so the normalised text is
  scanned with `LIKE` (slower, bounded by the directory's size).

The same rules run in memory over the KV copy (`search_documents`), which is how a county
searches its mirror while the uplink is down.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.directory.model import Entry
from hub.directory.ngrams import entry_grams, gram_keys, normalize, query_grams
from hub.directory.rows import searchable_texts
from hub.errors import InputError, UnknownRequest, UnknownResource

FUZZY_SHARE = 0.6
MAX_LIMIT = 200
FACETS = ("provider", "unit", "class_code", "category", "sharing_type")
_STATE_SQL = (
    "CASE WHEN state = 'granted' AND valid_until IS NOT NULL AND valid_until <= $1"
    " THEN 'expired' ELSE state END"
)
REQUEST_STATES = ("pending", "granted", "denied", "expired", "revoked")


@dataclass(frozen=True, kw_only=True)
class SearchFilters:
    """Facet filters of a search (None: any)."""

    provider: str | None = None
    unit: str | None = None
    class_code: str | None = None
    category: str | None = None
    sharing_type: str | None = None
    open_only: bool = False

    def matches(self, doc: dict[str, Any]) -> bool:
        """Whether a KV document passes the filters (the in-memory search)."""
        entry = doc["entry"]
        checks = (
            (self.provider, doc["provider"]),
            (self.unit, doc["provider"].split(".", 1)[0]),
            (self.class_code, entry["class_code"]),
            (self.category, entry["category"].lower()),
            (self.sharing_type, entry["sharing_type"].lower()),
        )
        if any(want is not None and want != have for want, have in checks):
            return False
        return not self.open_only or bool(entry["open_public"])


@dataclass
class SearchResult:
    """Hits, their total, facet counts and how the query was matched."""

    query: str
    mode: str
    total: int
    results: list[dict[str, Any]]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    took_ms: float = 0.0
    source: str = "postgresql"

    def to_json(self) -> dict[str, Any]:
        """As `dir search --json` prints it."""
        return {
            "query": self.query,
            "mode": self.mode,
            "source": self.source,
            "total": self.total,
            "took_ms": self.took_ms,
            "results": self.results,
            "facets": self.facets,
        }


def _hit(entry: dict[str, Any], score: float) -> dict[str, Any]:
    return {
        "code": entry["code"],
        "title": entry["title"],
        "title_en": entry.get("title_en"),
        "provider": entry["provider"],
        "unit": entry["provider"].split(".", 1)[0],
        "category": entry["category"].lower(),
        "class_code": entry["class_code"],
        "sharing_type": entry["sharing_type"].lower(),
        "open_public": entry["open_public"],
        "version": entry["version"],
        "keywords": entry["keywords"],
        "score": round(score, 3),
    }


def _where(filters: SearchFilters, args: list[Any]) -> str:
    clauses = ["status = 'active'"]
    for column in FACETS:
        value = getattr(filters, column)
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if filters.open_only:
        clauses.append("open_public")
    return " AND ".join(clauses)


async def search(
    pool: asyncpg.Pool | asyncpg.Connection,
    query: str,
    filters: SearchFilters | None = None,
    *,
    limit: int = 20,
) -> SearchResult:
    """Search the materialized directory (see the module docstring for the modes)."""
    started = time.perf_counter()
    filters = filters or SearchFilters()
    limit = max(1, min(limit, MAX_LIMIT))
    needle = normalize(query).strip()
    grams = query_grams(query)
    if not grams:
        raise InputError("the query holds no letters, digits or Chinese characters to search for")
    cond_args: list[Any]
    if len(grams) == 1 and len(grams[0]) == 1:
        mode, cond, cond_args = "substring", "search_text LIKE $%d", [f"%{_like(needle)}%"]
    else:
        mode, cond, cond_args = "grams", "grams @> $%d::int4[]", [gram_keys(grams)]
    result = await _run(pool, mode, cond, cond_args, needle, grams, filters, limit)
    if result.total == 0 and mode == "grams" and len(grams) >= 3:
        need = math.ceil(FUZZY_SHARE * len(grams))
        cond = f"grams && $%d::int4[] AND {_overlap('$%d')} >= {need}"
        keys = gram_keys(grams)
        result = await _run(pool, "fuzzy", cond, [keys, keys], needle, grams, filters, limit)
    result.query = query
    result.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return result


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _overlap(param: str) -> str:
    return f"(SELECT count(*) FROM unnest(grams) g WHERE g = ANY({param}::int4[]))"


async def _run(
    pool: Any,
    mode: str,
    cond: str,
    cond_args: list[Any],
    needle: str,
    grams: list[str],
    filters: SearchFilters,
    limit: int,
) -> SearchResult:
    args: list[Any] = []
    where = _where(filters, args)
    marks = []
    for value in cond_args:
        args.append(value)
        marks.append(len(args))
    cond = cond % tuple(marks)
    args += [needle, limit]
    n_needle, n_limit = len(args) - 1, len(args)
    # Only fuzzy matches differ in how many grams they hold; counting them costs an unnest
    # per matched row, so the exact modes skip it.
    share = "1.0"
    if mode == "fuzzy":
        args.append(gram_keys(grams))
        share = f"{_overlap(f'${len(args)}')}::float / {len(grams)}"
    sql = f"""
        WITH m AS MATERIALIZED (
            SELECT code, provider, unit, class_code, category, sharing_type, modified_at,
                   {share} AS share,
                   CASE WHEN position(${n_needle} IN title) > 0 THEN 2 ELSE 0 END
                   + CASE WHEN position(${n_needle} IN search_text) > 0 THEN 1 ELSE 0 END
                   AS boost
            FROM directory_search WHERE {where} AND {cond}
        ),
        ranked AS (
            SELECT code, share + boost AS score, modified_at
            FROM m ORDER BY score DESC, modified_at DESC, code LIMIT ${n_limit}
        )
        SELECT (SELECT count(*) FROM m) AS total,
               (SELECT json_agg(json_build_object('code', r.code, 'score', r.score,
                                                  'entry', e.entry) ORDER BY r.score DESC,
                                r.modified_at DESC, r.code)
                FROM ranked r JOIN directory_entries e USING (code)) AS hits,
               {", ".join(_facet_sql(f) for f in FACETS)}
    """
    row = await pool.fetchrow(sql, *args)
    hits = json.loads(row["hits"]) if row["hits"] else []
    facets = {f: json.loads(row[f]) if row[f] else {} for f in FACETS}
    return SearchResult(
        query="",
        mode=mode,
        total=int(row["total"]),
        results=[_hit(h["entry"], float(h["score"])) for h in hits],
        facets=facets,
    )


def _facet_sql(column: str) -> str:
    return (
        f"(SELECT json_object_agg(k, n) FROM (SELECT {column} AS k, count(*) AS n FROM m"
        f" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50) f) AS {column}"
    )


def search_documents(
    docs: Iterable[dict[str, Any]],
    query: str,
    filters: SearchFilters | None = None,
    *,
    limit: int = 20,
) -> SearchResult:
    """The same search over KV documents in memory (a county's mirror, offline)."""
    started = time.perf_counter()
    filters = filters or SearchFilters()
    needle = normalize(query).strip()
    wanted = set(query_grams(query))
    if not wanted:
        raise InputError("the query holds no letters, digits or Chinese characters to search for")
    scored: list[tuple[float, str, dict[str, Any]]] = []
    fuzzy: list[tuple[float, str, dict[str, Any]]] = []
    substring = len(wanted) == 1 and len(next(iter(wanted))) == 1
    for doc in docs:
        if doc["status"] != "active" or not filters.matches(doc):
            continue
        texts = searchable_texts(Entry.from_record(doc["entry"]))
        text = normalize(" | ".join(t for t in texts if t))
        title = normalize(doc["entry"]["title"])
        boost = (2 if needle in title else 0) + (1 if needle in text else 0)
        if substring:
            if needle in text:
                scored.append((1 + boost, doc["modified_at"], doc))
            continue
        share = len(wanted & set(entry_grams(texts))) / len(wanted)
        if share == 1:
            scored.append((share + boost, doc["modified_at"], doc))
        elif share >= FUZZY_SHARE and len(wanted) >= 3:
            fuzzy.append((share + boost, doc["modified_at"], doc))
    mode = "substring" if substring else "grams"
    if not scored and fuzzy:
        scored, mode = fuzzy, "fuzzy"
    scored.sort(key=lambda t: (-t[0], _neg_time(t[1]), t[2]["code"]))
    facets: dict[str, dict[str, int]] = {}
    for column in FACETS:
        counts = Counter(_facet_value(column, doc) for _, _, doc in scored)
        facets[column] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50])
    return SearchResult(
        query=query,
        mode=mode,
        total=len(scored),
        results=[_hit({**d["entry"], "version": d["version"]}, s) for s, _, d in scored[:limit]],
        facets=facets,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        source="kv",
    )


def _neg_time(text: str) -> float:
    return -datetime.fromisoformat(text).timestamp()


def _facet_value(column: str, doc: dict[str, Any]) -> str:
    if column == "provider":
        return str(doc["provider"])
    if column == "unit":
        return str(doc["provider"]).split(".", 1)[0]
    return str(doc["entry"][column]).lower()


async def entry_document(pool: Any, code: str) -> dict[str, Any]:
    """One entry as `dir show` prints it: the entry file plus status and history."""
    row = await pool.fetchrow("SELECT * FROM directory_entries WHERE code = $1", code)
    if row is None:
        raise UnknownResource(f"no resource {code} is in the directory")
    versions = await pool.fetch(
        "SELECT version, kind, event_id, recorded_at FROM directory_versions WHERE code = $1"
        " ORDER BY version",
        code,
    )
    record = json.loads(row["entry"])
    counts = await pool.fetch(
        f"SELECT {_STATE_SQL} AS s, count(*) AS n FROM directory_requests WHERE code = $2"
        " GROUP BY 1",
        datetime.now(UTC),
        code,
    )
    return {
        "code": code,
        "status": row["status"],
        "version": row["version"],
        "provider": row["provider"],
        "published_at": row["published_at"],
        "modified_at": row["modified_at"],
        "withdrawn_at": row["withdrawn_at"],
        "withdraw_reason": row["withdraw_reason"],
        "event_id": row["event_id"],
        "schema_fingerprint": record.get("schema_fingerprint", ""),
        "entry": Entry.from_record(record).to_file(),
        "versions": [dict(v) for v in versions],
        "requests": {r["s"]: r["n"] for r in counts},
    }


async def load_entry(pool: Any, code: str) -> tuple[Entry, str, str]:
    """(entry, status, event id) of a stored resource, or UnknownResource."""
    row = await pool.fetchrow(
        "SELECT entry, status, event_id FROM directory_entries WHERE code = $1", code
    )
    if row is None:
        raise UnknownResource(f"no resource {code} is in the directory")
    return Entry.from_record(json.loads(row["entry"])), row["status"], row["event_id"]


def _request_json(row: Any) -> dict[str, Any]:
    return dict(row)


async def list_requests(
    pool: Any,
    participant: str,
    *,
    role: str = "any",
    state: str | None = None,
    code: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Requests a participant made (`requester`), answers (`provider`), or both (`any`)."""
    if state is not None and state not in REQUEST_STATES:
        raise InputError(f"unknown state {state!r}; states are {', '.join(REQUEST_STATES)}")
    who = {
        "requester": "requester = $2",
        "provider": "provider = $2",
        "any": "(requester = $2 OR provider = $2)",
        "operator": "true",
    }[role]
    rows = await pool.fetch(
        f"SELECT request_id, code, provider, requester, purpose, fields, {_STATE_SQL} AS state,"
        " auto_granted, requested_at, received_at, deadline, granted_fields, valid_until,"
        " decided_at, reason, revoked_at, reminded_at, escalated_at, request_event_id,"
        " decision_event_id, revoke_event_id"
        f" FROM directory_requests WHERE {who} AND ($3::text IS NULL OR {_STATE_SQL} = $3)"
        " AND ($4::text IS NULL OR code = $4) ORDER BY requested_at DESC, request_id",
        now or datetime.now(UTC),
        participant,
        state,
        code,
    )
    return [_request_json(r) for r in rows]


async def get_request(pool: Any, request_id: str, now: datetime | None = None) -> dict[str, Any]:
    """One request with its derived state, or UnknownRequest."""
    row = await pool.fetchrow(
        f"SELECT *, {_STATE_SQL} AS current_state FROM directory_requests WHERE request_id = $2",
        now or datetime.now(UTC),
        request_id,
    )
    if row is None:
        raise UnknownRequest(f"no request {request_id} has reached the directory")
    out = _request_json(row)
    out["state"] = out.pop("current_state")
    return out


@dataclass(frozen=True)
class Grant:
    """A grant valid at some moment: who, which fields, until when, under which request."""

    request_id: str
    grantee: str
    fields: tuple[str, ...]
    valid_until: datetime | None
    decision_event_id: str


async def valid_grants(pool: Any, code: str, now: datetime | None = None) -> list[Grant]:
    """Grants of an active resource valid now (not expired, not revoked), one per grantee.

    A grantee holding several grants gets the newest; the union of fields would let an old,
    narrower grant widen a later one, so it is not used.
    """
    rows = await pool.fetch(
        "SELECT DISTINCT ON (r.requester) r.request_id, r.requester, r.granted_fields,"
        " r.fields, r.valid_until, coalesce(r.decision_event_id, r.request_event_id) AS ev"
        " FROM directory_requests r JOIN directory_entries e USING (code)"
        " WHERE r.code = $2 AND e.status = 'active' AND r.state = 'granted'"
        " AND (r.valid_until IS NULL OR r.valid_until > $1)"
        " ORDER BY r.requester, r.decided_at DESC",
        now or datetime.now(UTC),
        code,
    )
    return [
        Grant(
            r["request_id"],
            r["requester"],
            tuple(r["granted_fields"] or ()),
            r["valid_until"],
            r["ev"],
        )
        for r in rows
    ]


def dedupe(values: Sequence[str]) -> list[str]:
    """Values in order without repeats."""
    return list(dict.fromkeys(values))
