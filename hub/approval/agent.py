"""What falls to a key holder once the projection has moved: the lead's decisions, the clock.

- **Decisions (办结).** When the opinions of a case decide it (every opinion in, or a binding
  refusal), the lead department's agent signs a `CaseDecided` that names the opinions it
  follows; the projection checks that it does. It runs wherever the lead's key is (its `govhub
  serve`, or any `approval` command run there), so no one else can decide a case.
- **The clock (超期预警, 超期督办).** The hub operator's agent sweeps every open review: a
  warning when few working days are left, an escalation to the supervising office when the
  deadline has passed (hub/approval/clock.py), each once per review.

Event ids are derived from what they are about (case, reviewer, kind), so two processes that
hold the same key and act on the same state publish one event: JetStream's duplicate window
drops the second, and the projection records a later copy as a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from hub.approval.casetypes import Config
from hub.approval.clock import Pause
from hub.approval.model import (
    DECIDED_SCHEMA,
    ESCALATED_SCHEMA,
    WARNING_SCHEMA,
    Kind,
    Outcome,
    case_subject,
)
from hub.collaborators import Signer, Trust
from hub.envelope import Envelope
from hub.errors import KeyStoreError, RegistryError
from hub.integration.connector import derive_event_id

log = structlog.get_logger("hub.approval.agent")

ID_NAMESPACE = "govhub.approval"


def local_participants(signer: Signer) -> list[str]:
    """The participants whose signing keys this home holds."""
    try:
        return signer.keystore.participants()
    except Exception:  # no passphrase on this machine: it holds no one's key
        return []


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


async def _publish(signer: Signer, envs: list[tuple[str, Envelope]]) -> None:
    """Publish signed events through each signer's own link (in a federation: its server
    permissions, its stream), pipelined. Not as atomic batches: a batch holding an id the
    stream already has would be refused whole, and these ids repeat by design."""
    by_signer: dict[str, list[Envelope]] = {}
    for as_id, env in envs:
        by_signer.setdefault(as_id, []).append(env)
    for as_id, group in by_signer.items():
        await (await signer.publisher_for(as_id)).publish_many(group, atomic=False)


def decision_record(case: Any, opinions: list[Any]) -> dict[str, Any]:
    """The CaseDecided record that follows from a ready case's opinions (in stream order)."""
    conditions: list[str] = []
    for o in opinions:
        for c in o["conditions"] or []:
            if c not in conditions:
                conditions.append(c)
    outcome = Outcome(case["ready_outcome"])
    return {
        "case_id": case["case_id"],
        "opened_event_id": case["opened_event_id"],
        "outcome": outcome.symbol,
        "opinion_event_ids": [o["opinion_event_id"] for o in opinions],
        "conditions": conditions if outcome is Outcome.APPROVED_WITH_CONDITIONS else [],
        "refused_by": sorted(o["reviewer"] for o in opinions if o["state"] == "refused"),
    }


async def decide_ready(pool: asyncpg.Pool, signer: Signer) -> list[Envelope]:
    """Sign and publish the CaseDecided of every ready case whose lead's key is here."""
    local = local_participants(signer)
    if not local:
        return []
    cases = await pool.fetch(
        "SELECT case_id, lead, opened_event_id, ready_outcome, ready_at FROM apr_cases"
        " WHERE state = 'open' AND ready_outcome IS NOT NULL AND lead = ANY($1)"
        " ORDER BY ready_at LIMIT 1000",
        local,
    )
    if not cases:
        return []
    opinions: dict[str, list[Any]] = {}
    for row in await pool.fetch(
        "SELECT a.case_id, a.reviewer, a.state, a.opinion_event_id, a.conditions"
        " FROM apr_assignments a JOIN apr_events e ON e.event_id = a.opinion_event_id"
        " WHERE a.case_id = ANY($1) ORDER BY e.stream_seq",
        [c["case_id"] for c in cases],
    ):
        opinions.setdefault(row["case_id"], []).append(row)
    out: list[tuple[str, Envelope]] = []
    for case in cases:
        record = decision_record(case, opinions.get(case["case_id"], []))
        event_id = derive_event_id(f"{ID_NAMESPACE}.decided", case["case_id"], case["ready_at"])
        try:
            env = signer.seal(
                case["lead"],
                DECIDED_SCHEMA,
                record,
                subject=case_subject(case["lead"], Kind.DECIDED, case["case_id"]),
                event_id=event_id,
            )
        except (RegistryError, KeyStoreError) as exc:
            # A lead revoked since, or whose key left this machine, cannot decide; the case
            # stays ready for whoever holds a valid key.
            log.warning("approval.decision.unsigned", case_id=case["case_id"], error=str(exc))
            continue
        out.append((case["lead"], env))
    await _publish(signer, out)
    for _, env in out:
        log.info("approval.case.decided", subject=env.subject)
    return [env for _, env in out]


async def sweep(
    pool: asyncpg.Pool, trust: Trust, signer: Signer, config: Config, now: datetime | None = None
) -> dict[str, list[Any]]:
    """As the hub operator: warn of reviews due soon and escalate overdue ones (once each)."""
    now = now or datetime.now(UTC)
    operator = trust.scenario.operator
    if operator not in local_participants(signer):
        return {"warned": [], "escalated": []}
    rows = await pool.fetch(
        "SELECT a.case_id, a.reviewer, a.working_days, a.warn_days, a.assigned_at,"
        " a.warned_at, c.supervisor, c.case_number FROM apr_assignments a"
        " JOIN apr_cases c USING (case_id) WHERE c.state = 'open'"
        " AND a.state IN ('reviewing', 'material_requested') AND a.escalated_at IS NULL"
        " ORDER BY a.assigned_at"
    )
    pauses: dict[tuple[str, str], list[Pause]] = {}
    for m in await pool.fetch(
        "SELECT case_id, reviewer, requested_at, ended_at FROM apr_material"
        " WHERE case_id = ANY($1)",
        list({r["case_id"] for r in rows}),
    ):
        pauses.setdefault((m["case_id"], m["reviewer"]), []).append(
            Pause(m["requested_at"], m["ended_at"])
        )
    clock = config.clock
    out: list[tuple[str, Envelope]] = []
    done: dict[str, list[Any]] = {"warned": [], "escalated": []}
    for r in rows:
        state = clock.state(
            r["assigned_at"], r["working_days"], pauses.get((r["case_id"], r["reviewer"]), []), now
        )
        if state.deadline is None:
            continue
        base = {
            "case_id": r["case_id"],
            "reviewer": r["reviewer"],
            "supervisor": r["supervisor"],
            "deadline": state.deadline,
        }
        if state.overdue:
            kind, schema, record = Kind.ESCALATED, ESCALATED_SCHEMA, base
        elif r["warned_at"] is None and clock.warning_due(state, r["warn_days"]):
            record = {**base, "working_days_left": state.working_days_left}
            kind, schema = Kind.WARNING, WARNING_SCHEMA
        else:
            continue
        key = f"{r['case_id']}\n{r['reviewer']}"
        env = signer.seal(
            operator,
            schema,
            record,
            subject=case_subject(operator, kind, r["case_id"]),
            event_id=derive_event_id(f"{ID_NAMESPACE}.{kind.value}", key, state.deadline),
        )
        out.append((operator, env))
        done["warned" if kind is Kind.WARNING else "escalated"].append(
            {
                **base,
                "case_number": r["case_number"],
                "deadline": _time(state.deadline),
                "working_days_left": state.working_days_left,
                "event_id": env.event_id,
            }
        )
    await _publish(signer, out)
    if out:
        log.info(
            "approval.sweep.done", warned=len(done["warned"]), escalated=len(done["escalated"])
        )
    return done
