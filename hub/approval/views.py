"""Reading cases: one case whole, the applicant's progress (办件进度), the supervisor's list.

Everything here reads the tables the projection derives from signed events, and computes each
open review's clock at `now` (hub/approval/clock.py), so a view is the same whenever it is
asked with the same `now`. The supervisor's list puts overdue reviews first (most overdue
first), then open cases by their nearest deadline, then closed cases, newest first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg

from hub.approval.casetypes import Config
from hub.approval.clock import Pause
from hub.approval.model import CASE_ZH, OUTCOME_ZH, REVIEW_ZH, CaseState, ReviewState, check_case_id
from hub.collaborators import Trust
from hub.errors import UnknownCase
from hub.timetext import rfc3339

Db: TypeAlias = Any  # an asyncpg pool or connection


async def load_case(db: Db, case_id: str) -> Any:
    """One case row, or UnknownCase."""
    row = await db.fetchrow("SELECT * FROM apr_cases WHERE case_id = $1", case_id)
    if row is None:
        raise UnknownCase(f"no case {case_id} has been opened on the bus")
    return row


async def find_case(db: Db, key: str) -> Any:
    """A case by id or by its case number (what the applicant holds)."""
    key = key.strip()
    if len(key) == 36 and key.count("-") == 4:
        return await load_case(db, check_case_id(key))
    row = await db.fetchrow(
        "SELECT * FROM apr_cases WHERE case_number = $1 ORDER BY opened_at DESC LIMIT 1", key
    )
    if row is None:
        raise UnknownCase(f"no case numbered {key!r} has been opened on the bus")
    return row


def _reviews(
    config: Config, case: Any, rows: Sequence[Any], material: Sequence[Any], now: datetime
) -> list[dict[str, Any]]:
    clock = config.clock
    out = []
    for a in rows:
        requests = [m for m in material if m["reviewer"] == a["reviewer"]]
        pauses = [Pause(m["requested_at"], m["ended_at"]) for m in requests]
        state = ReviewState(a["state"])
        item: dict[str, Any] = {
            "reviewer": a["reviewer"],
            "label": a["label"],
            "state": state.value,
            "state_zh": REVIEW_ZH[state],
            "working_days": a["working_days"],
            "assigned_at": rfc3339(a["assigned_at"]),
            "refusal_ends_case": a["refusal_ends_case"],
            "material_requests_allowed": a["material_requests"],
            "opinion_event_id": a["opinion_event_id"],
            "opinion_at": rfc3339(a["opinion_at"]),
            "timed_by": a["timed_by"],
            "reasons": a["reasons"],
            "conditions": list(a["conditions"] or []),
            "legal_basis": a["legal_basis"],
            "late": a["late"],
            "warned_at": rfc3339(a["warned_at"]),
            "escalated_at": rfc3339(a["escalated_at"]),
            "resources": list(a["resources"]),
            "material": [
                {
                    "request_id": m["request_id"],
                    "items": list(m["items"]),
                    "reason": m["reason"],
                    "requested_at": rfc3339(m["requested_at"]),
                    "ended_at": rfc3339(m["ended_at"]),
                    "ended_by": m["ended_by"],
                    "attachments": json.loads(m["attachments"]) if m["attachments"] else [],
                }
                for m in requests
            ],
        }
        tick = clock.state(a["assigned_at"], a["working_days"], pauses, now)
        item.update(
            deadline=rfc3339(tick.deadline),
            paused_working_days=tick.paused_days,
            overdue=state.open and tick.overdue,
            paused=state.open and tick.paused,
            working_days_left=tick.working_days_left if state.open else None,
        )
        if tick.deadline is not None and not config.calendar.covers(
            config.calendar.local_date(tick.deadline)
        ):
            item["calendar_note"] = (
                f"no holiday calendar for {config.calendar.local_date(tick.deadline).year}: "
                "weekends only; the operator adds ops/approval/holidays-<year>.toml"
            )
        out.append(item)
    return out


async def _resources(db: Db, reviews: list[dict[str, Any]], now: datetime) -> None:
    """Each reviewer's needed directory resources, with the state of its access."""
    codes = sorted({c for r in reviews for c in r["resources"]})
    if not codes:
        return
    entries = {
        r["code"]: r
        for r in await db.fetch(
            "SELECT code, provider, entry->>'title' AS title, status FROM directory_entries"
            " WHERE code = ANY($1)",
            codes,
        )
    }
    requests = await db.fetch(
        "SELECT DISTINCT ON (code, requester) code, requester, state, valid_until, request_id"
        " FROM directory_requests WHERE code = ANY($1) ORDER BY code, requester, requested_at DESC",
        codes,
    )
    latest = {(r["code"], r["requester"]): r for r in requests}
    for review in reviews:
        listed = []
        for code in review["resources"]:
            entry = entries.get(code)
            req = latest.get((code, review["reviewer"]))
            state = "none" if req is None else req["state"]
            if (
                req is not None
                and state == "granted"
                and req["valid_until"] is not None
                and req["valid_until"] <= now
            ):
                state = "expired"
            listed.append(
                {
                    "code": code,
                    "title": entry["title"] if entry else None,
                    "provider": entry["provider"] if entry else None,
                    "access": state if entry else "not_in_directory",
                    "request_id": req["request_id"] if req else None,
                }
            )
        review["resources"] = listed


async def _attachments(db: Db, attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's materials with each exchange document's recipient states."""
    ids = [a["doc_id"] for a in attachments]
    states: dict[str, dict[str, str]] = {}
    for r in await db.fetch(
        "SELECT doc_id, recipient, state FROM doc_recipients WHERE doc_id = ANY($1)", ids
    ):
        states.setdefault(r["doc_id"], {})[r["recipient"]] = r["state"]
    return [
        {
            "name": a["name"],
            "label": a["label"],
            "doc_id": a["doc_id"],
            "sha256": a["sha256"],
            "deliveries": states.get(a["doc_id"], {}),
        }
        for a in attachments
    ]


def _summary(case: Any) -> dict[str, Any]:
    state = CaseState(case["state"])
    outcome = case["outcome"]
    return {
        "case_id": case["case_id"],
        "case_number": case["case_number"],
        "case_type": case["case_type"],
        "title": case["title"],
        "applicant": case["applicant_name"],
        "lead": case["lead"],
        "supervisor": case["supervisor"],
        "unit": case["unit"],
        "state": state.value,
        "state_zh": CASE_ZH[state],
        "outcome": outcome,
        "outcome_zh": OUTCOME_ZH[outcome] if outcome else None,
        "opened_at": rfc3339(case["opened_at"]),
        "decided_at": rfc3339(case["decided_at"]),
        "withdrawn_at": rfc3339(case["withdrawn_at"]),
        "withdraw_reason": case["withdraw_reason"],
    }


async def _parts(db: Db, case_ids: list[str]) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    rows: dict[str, list[Any]] = {}
    for r in await db.fetch(
        "SELECT * FROM apr_assignments WHERE case_id = ANY($1) ORDER BY position",
        case_ids,
    ):
        rows.setdefault(r["case_id"], []).append(r)
    material: dict[str, list[Any]] = {}
    for m in await db.fetch(
        "SELECT * FROM apr_material WHERE case_id = ANY($1) ORDER BY requested_at", case_ids
    ):
        material.setdefault(m["case_id"], []).append(m)
    return rows, material


async def case_view(
    pool: asyncpg.Pool, config: Config, case_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """One case: every review with its clock, materials, history and refused events."""
    now = now or datetime.now(UTC)
    case = await find_case(pool, case_id)
    rows, material = await _parts(pool, [case["case_id"]])
    reviews = _reviews(
        config, case, rows.get(case["case_id"], []), material.get(case["case_id"], []), now
    )
    await _resources(pool, reviews, now)
    history = [
        {
            "kind": e["kind"],
            "event_id": e["event_id"],
            "signed_by": json.loads(e["headers"]).get("govhub-key", ""),
            "at": rfc3339(e["at"]),
            "timed_by": e["timed_by"],
            "stored_at": rfc3339(e["stored_at"]),
            "outcome": e["outcome"],
        }
        for e in await pool.fetch(
            "SELECT * FROM apr_events WHERE case_id = $1 ORDER BY stream_seq", case["case_id"]
        )
    ]
    refused = [
        {
            "event_id": r["event_id"],
            "source": r["source"],
            "subject": r["subject"],
            "stored_at": rfc3339(r["stored_at"]),
            "reason": r["reason"],
            "detail": r["detail"],
        }
        for r in await pool.fetch(
            "SELECT * FROM apr_refused WHERE case_id = $1 ORDER BY stream_seq", case["case_id"]
        )
    ]
    return {
        **_summary(case),
        "type_digest": case["type_digest"],
        "opened_event_id": case["opened_event_id"],
        "decided_event_id": case["decided_event_id"],
        "ready_outcome": case["ready_outcome"],
        "attachments": await _attachments(pool, json.loads(case["attachments"])),
        "reviews": reviews,
        "history": history,
        "refused": refused,
        "as_of": rfc3339(now),
    }


async def progress(
    pool: asyncpg.Pool, trust: Trust, config: Config, key: str, now: datetime | None = None
) -> dict[str, Any]:
    """办件进度: what the applicant may see, by case number or id, with Chinese labels.

    Department opinions show their conclusion, conditions and (for a refusal) its reasons,
    which the applicant must be told; internal identifiers and signatures are left out.
    """
    now = now or datetime.now(UTC)
    case = await find_case(pool, key)
    rows, material = await _parts(pool, [case["case_id"]])
    reviews = _reviews(
        config, case, rows.get(case["case_id"], []), material.get(case["case_id"], []), now
    )
    names = {p.id: p.name for p in trust.participants.all()}
    steps = []
    for r in reviews:
        open_request = next((m for m in r["material"] if m["ended_at"] is None), None)
        steps.append(
            {
                "department": names.get(r["reviewer"], r["reviewer"]),
                "matter": r["label"],
                "status": r["state_zh"] if not r["overdue"] else "已超期",
                "working_days_left": r["working_days_left"],
                "deadline": r["deadline"],
                "paused": r["paused"],
                "to_supply": open_request["items"] if open_request else [],
                "conditions": r["conditions"],
                "reasons": r["reasons"] if r["state"] == ReviewState.REFUSED else None,
                "decided_at": r["opinion_at"],
            }
        )
    s = _summary(case)
    return {
        "case_number": s["case_number"],
        "title": s["title"],
        "applicant": s["applicant"],
        "lead": names.get(case["lead"], case["lead"]),
        "opened_at": s["opened_at"],
        "status": s["state_zh"],
        "outcome": s["outcome_zh"],
        "decided_at": s["decided_at"],
        "withdrawn_at": s["withdrawn_at"],
        "departments": steps,
        "as_of": rfc3339(now),
    }


async def list_cases(
    pool: asyncpg.Pool,
    config: Config,
    *,
    now: datetime | None = None,
    participant: str | None = None,
    state: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Every case (or a participant's: led or reviewed by it), overdue reviews first."""
    now = now or datetime.now(UTC)
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if participant is not None:
        params.append(participant)
        where.append(
            f"(c.lead = ${len(params)} OR EXISTS (SELECT 1 FROM apr_assignments x"
            f" WHERE x.case_id = c.case_id AND x.reviewer = ${len(params)}))"
        )
    if state is not None:
        params.append(CaseState(state).value)
        where.append(f"c.state = ${len(params)}")
    params.append(limit)
    cases = await pool.fetch(
        f"SELECT * FROM apr_cases c WHERE {' AND '.join(where)}"
        f" ORDER BY (c.state = 'open') DESC, c.opened_at DESC LIMIT ${len(params)}",
        *params,
    )
    rows, material = await _parts(pool, [c["case_id"] for c in cases])
    out = []
    for case in cases:
        reviews = _reviews(
            config, case, rows.get(case["case_id"], []), material.get(case["case_id"], []), now
        )
        open_reviews = [r for r in reviews if r["state"] in ("reviewing", "material_requested")]
        deadlines = sorted(r["deadline"] for r in open_reviews if r["deadline"])
        item = {
            **_summary(case),
            "reviews": len(reviews),
            "decided_reviews": sum(1 for r in reviews if r["opinion_event_id"]),
            "overdue": [r["reviewer"] for r in open_reviews if r["overdue"]],
            "warned": [r["reviewer"] for r in open_reviews if r["warned_at"]],
            "paused": [r["reviewer"] for r in open_reviews if r["paused"]],
            "late": [r["reviewer"] for r in reviews if r["late"]],
            "next_deadline": deadlines[0] if deadlines else None,
            "closed_at": rfc3339(case["decided_at"] or case["withdrawn_at"]),
        }
        out.append(item)
    pending = [i for i in out if i["state"] == CaseState.OPEN]
    pending.sort(
        key=lambda i: (not i["overdue"], i["next_deadline"] is None, i["next_deadline"] or "")
    )
    closed = [i for i in out if i["state"] != CaseState.OPEN]
    closed.sort(key=lambda i: i["closed_at"] or "", reverse=True)
    return pending + closed
