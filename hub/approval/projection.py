"""The case state machine, applied to one batch of verified approval events at a time.

A `Batch` loads the cases its events name with their assignments and 补正 requests (one query
each), checks every event against its case and changes state in memory, then writes what
changed with one statement per table. A client is not trusted to have checked anything: an
event that breaks a rule changes nothing and raises `RuleBroken` with a typed reason, and the
tracker copies it to quarantine. The rules, each with its reason:

| rule | reason |
|---|---|
| the subject's kind matches the schema and names the body's case | `case_mismatch` |
| the case was opened (retried first: an event may overtake across streams) | `unknown_case` |
| every event names the case's CaseOpened event id | `case_mismatch` |
| open, assign, supply, decide and withdraw are signed by the case's lead | `not_lead` |
| an opinion or 补正 request is signed by the reviewer it names (no forgery) | `not_reviewer` |
| ... by a department assigned to the case, within its assignment's rules | `not_assigned` |
| warnings and escalations are signed by the hub operator | `not_operator` |
| a refusal's reasons, listed conditions, a decision following its opinions | `case_mismatch` |
| a second opinion from one reviewer, deciding or withdrawing a closed case | `case_closed` |

Genuine steps that simply came too late change nothing either but are kept as evidence with
their outcome: an opinion after the case was withdrawn (`after_withdrawal`) or decided
(`after_decision`), a warning about a review that has ended (`moot`). An opinion stored after
its reviewer's deadline is applied and marked `late`.

Times. A reviewer's acts (opinion, 补正 request) count from when the stream of the reviewer's
own unit stored them (`origin_at`: a county's stream for a county department, so an outage of
its uplink is not charged to it); everything that starts or resumes a reviewer's clock
(assignment, material supplied) counts from when the hub stored it, the moment the reviewer
could see it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub.approval.clock import Clock, Pause
from hub.approval.model import (
    SCHEMA_OF_KIND,
    CaseState,
    Decision,
    Kind,
    Outcome,
    ReviewState,
    outcome_of,
    parse_case_subject,
)
from hub.errors import ConfigError, NotYetKnown, Reason, RuleBroken
from hub.jsonout import to_jsonable
from hub.subjects import check_participant_id
from hub.verifier import VerifiedEvent

HUB_CLOCK = "hub"
_LEAD_VERBS = {
    Kind.ASSIGNED: "assign reviewers to",
    Kind.MATERIAL_SUPPLIED: "supply material for",
    Kind.DECIDED: "decide",
    Kind.WITHDRAWN: "withdraw",
}


@dataclass
class CaseRow:
    """One case as the state machine needs it."""

    case_id: str
    opened_event_id: str
    lead: str
    supervisor: str
    state: CaseState
    ready_outcome: Outcome | None = None
    ready_at: datetime | None = None
    outcome: Outcome | None = None
    decided_event_id: str | None = None
    decided_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdraw_reason: str | None = None
    insert: tuple[Any, ...] | None = None
    dirty: bool = False


@dataclass
class AssignmentRow:
    """One reviewer's part of a case."""

    case_id: str
    reviewer: str
    position: int
    label: str
    working_days: int
    refusal_ends_case: bool
    material_requests: int
    warn_days: int
    resources: list[str]
    assigned_event_id: str
    assigned_at: datetime
    state: ReviewState = ReviewState.REVIEWING
    opinion_event_id: str | None = None
    opinion_at: datetime | None = None
    timed_by: str | None = None
    reasons: str | None = None
    conditions: list[str] | None = None
    legal_basis: str | None = None
    late: bool | None = None
    warned_at: datetime | None = None
    escalated_at: datetime | None = None
    dirty: bool = False

    def columns(self) -> tuple[Any, ...]:
        """The row in apr_assignments column order."""
        return (
            self.case_id,
            self.reviewer,
            self.reviewer.split(".", 1)[0],
            self.position,
            self.label,
            self.working_days,
            self.refusal_ends_case,
            self.material_requests,
            self.warn_days,
            self.resources,
            self.assigned_event_id,
            self.assigned_at,
            self.state.value,
            self.opinion_event_id,
            self.opinion_at,
            self.timed_by,
            self.reasons,
            self.conditions,
            self.legal_basis,
            self.late,
            self.warned_at,
            self.escalated_at,
        )


ASSIGNMENT_COLUMNS = (
    "case_id, reviewer, reviewer_unit, position, label, working_days, refusal_ends_case,"
    " material_requests, warn_days, resources, assigned_event_id, assigned_at, state,"
    " opinion_event_id, opinion_at, timed_by, reasons, conditions, legal_basis, late,"
    " warned_at, escalated_at"
)


@dataclass
class MaterialRow:
    """A 补正 request; the reviewer's clock is paused from requested_at until ended_at."""

    request_id: str
    case_id: str
    reviewer: str
    items: list[str]
    reason: str
    requested_event_id: str
    requested_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None
    supplied_event_id: str | None = None
    attachments: str | None = None
    dirty: bool = False

    def end(self, at: datetime, by: str) -> None:
        """Close the request (and so the pause of its reviewer's clock)."""
        if self.ended_at is None:
            self.ended_at, self.ended_by, self.dirty = at, by, True


@dataclass
class Batch:
    """Cases touched by one batch, changed in memory, written at once."""

    clock: Clock
    operator: str
    registered: Callable[[str], bool]
    cases: dict[str, CaseRow] = field(default_factory=dict)
    assignments: dict[str, dict[str, AssignmentRow]] = field(default_factory=dict)
    material: dict[str, MaterialRow] = field(default_factory=dict)
    known_events: set[str] = field(default_factory=set)
    events: list[tuple[Any, ...]] = field(default_factory=list)

    async def load(self, conn: asyncpg.Connection, events: list[VerifiedEvent]) -> None:
        """Lock and load every case the events name, with its assignments and requests."""
        case_ids = sorted(
            {p.case_id for e in events if (p := parse_case_subject(e.subject)) is not None}
        )
        for r in await conn.fetch(
            "SELECT * FROM apr_cases WHERE case_id = ANY($1) ORDER BY case_id FOR UPDATE",
            case_ids,
        ):
            self.cases[r["case_id"]] = CaseRow(
                r["case_id"],
                r["opened_event_id"],
                r["lead"],
                r["supervisor"],
                CaseState(r["state"]),
                Outcome(r["ready_outcome"]) if r["ready_outcome"] else None,
                r["ready_at"],
                Outcome(r["outcome"]) if r["outcome"] else None,
                r["decided_event_id"],
                r["decided_at"],
                r["withdrawn_at"],
                r["withdraw_reason"],
            )
        for r in await conn.fetch(
            f"SELECT {ASSIGNMENT_COLUMNS} FROM apr_assignments WHERE case_id = ANY($1)", case_ids
        ):
            values = dict(r)
            values.pop("reviewer_unit")
            values["state"] = ReviewState(values["state"])
            values["resources"] = list(values["resources"])
            values["conditions"] = list(values["conditions"] or []) or None
            self.assignments.setdefault(r["case_id"], {})[r["reviewer"]] = AssignmentRow(**values)
        for r in await conn.fetch("SELECT * FROM apr_material WHERE case_id = ANY($1)", case_ids):
            values = dict(r)
            values["items"] = list(values["items"])
            values["attachments"] = values["attachments"]
            self.material[r["request_id"]] = MaterialRow(**values)
        self.known_events = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM apr_events WHERE event_id = ANY($1)",
                [e.event_id for e in events],
            )
        }

    def apply(
        self,
        event: VerifiedEvent,
        stored_at: datetime,
        seq: int,
        origin_at: tuple[datetime, str] | None = None,
    ) -> str:
        """Check one event against its case and change state; returns the outcome.

        `origin_at` is (when, stream) the stream of the signer's own unit stored the event, for
        an event sourced from a county; None when the hub stream is the signer's own.
        """
        parsed = parse_case_subject(event.subject)
        if parsed is None:
            raise RuleBroken(Reason.CASE_MISMATCH, f"{event.subject} is not an approval subject")
        if SCHEMA_OF_KIND[parsed.kind] != event.schema.name:
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"a {event.schema.name} does not belong on an '{parsed.kind}' subject",
            )
        record = event.record
        if record["case_id"] != parsed.case_id:
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"the event names case {record['case_id']} but its subject {parsed.case_id}",
            )
        if event.event_id in self.known_events:
            return "duplicate"
        own_at, timed_by = origin_at if origin_at is not None else (stored_at, HUB_CLOCK)
        acts_at = own_at if parsed.kind in (Kind.OPINION, Kind.MATERIAL_REQUESTED) else stored_at
        clock = timed_by if acts_at is own_at else HUB_CLOCK
        if parsed.kind is Kind.OPENED:
            outcome = self._opened(event, stored_at)
        else:
            case = self._case(parsed.case_id, record)
            outcome = self._step(parsed.kind, case, event, stored_at, acts_at, clock)
        self.known_events.add(event.event_id)
        self.events.append(
            (
                event.event_id,
                parsed.case_id,
                parsed.kind.value,
                event.fields.source,
                event.subject,
                event.fields.time,
                stored_at,
                acts_at,
                clock,
                seq,
                outcome,
                json.dumps(to_jsonable(record), ensure_ascii=False),
                json.dumps(dict(event.envelope.headers)),
                event.envelope.body,
            )
        )
        return outcome

    def _case(self, case_id: str, record: dict[str, Any]) -> CaseRow:
        case = self.cases.get(case_id)
        if case is None:
            raise NotYetKnown(Reason.UNKNOWN_CASE, f"no case {case_id} has been opened")
        # The clock's notices name the case by id only; every other step binds its CaseOpened.
        if record.get("opened_event_id", case.opened_event_id) != case.opened_event_id:
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"the event names CaseOpened {record['opened_event_id']}, not "
                f"{case.opened_event_id} of case {case_id}",
            )
        return case

    def _opened(self, event: VerifiedEvent, stored_at: datetime) -> str:
        r = event.record
        source = event.fields.source
        if r["lead"] != source:
            raise RuleBroken(
                Reason.NOT_LEAD,
                f"the case names {r['lead']} as its lead department, but {source} signed it",
            )
        self._participant(r["supervisor"], "supervisor")
        if not r["case_number"].strip() or not r["title"].strip():
            raise RuleBroken(Reason.CASE_MISMATCH, "a case needs a case number and a title")
        if r["case_id"] in self.cases:
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"case {r['case_id']} was already opened by event "
                f"{self.cases[r['case_id']].opened_event_id}",
            )
        case = CaseRow(r["case_id"], event.event_id, source, r["supervisor"], CaseState.OPEN)
        case.insert = (
            r["case_id"],
            r["case_number"],
            r["case_type"],
            r["type_digest"],
            r["title"],
            r["applicant_name"],
            r["applicant_code"],
            r["unit"],
            source,
            r["supervisor"],
            json.dumps(to_jsonable(r["attachments"]), ensure_ascii=False),
            event.event_id,
            stored_at,
        )
        self.cases[case.case_id] = case
        return "applied"

    def _participant(self, participant: str, what: str) -> None:
        try:
            check_participant_id(participant)
        except ConfigError as exc:
            raise RuleBroken(Reason.CASE_MISMATCH, f"{what}: {exc}") from None
        if not self.registered(participant):
            raise RuleBroken(
                Reason.CASE_MISMATCH, f"{what} {participant} is not a registered participant"
            )

    def _step(
        self,
        kind: Kind,
        case: CaseRow,
        event: VerifiedEvent,
        stored_at: datetime,
        at: datetime,
        timed_by: str,
    ) -> str:
        source = event.fields.source
        record = event.record
        if kind in (Kind.WARNING, Kind.ESCALATED):
            return self._clock_notice(kind, case, event, stored_at)
        if kind in (Kind.OPINION, Kind.MATERIAL_REQUESTED):
            # Security: a reviewer's act is valid only under the reviewer's own signature;
            # without this the lead (or anyone) could sign an opinion naming another department.
            if record["reviewer"] != source:
                raise RuleBroken(
                    Reason.NOT_REVIEWER,
                    f"the {'opinion' if kind is Kind.OPINION else '补正 request'} names "
                    f"{record['reviewer']} as its reviewer, but {source} signed it",
                )
            row = self.assignments.get(case.case_id, {}).get(source)
            if row is None:
                raise RuleBroken(
                    Reason.NOT_ASSIGNED, f"{source} is not a reviewer of case {case.case_id}"
                )
            if kind is Kind.OPINION:
                return self._opinion(case, row, event, stored_at, at, timed_by)
            return self._material_requested(case, row, event, at)
        # Security: only the lead department steers a case (assign, supply, decide, withdraw).
        if source != case.lead:
            raise RuleBroken(
                Reason.NOT_LEAD,
                f"only the lead department {case.lead} may {_LEAD_VERBS[kind]} case "
                f"{case.case_id}; {source} signed this",
            )
        if kind is Kind.ASSIGNED:
            return self._assigned(case, event, stored_at)
        if kind is Kind.MATERIAL_SUPPLIED:
            return self._material_supplied(case, event, stored_at)
        if kind is Kind.DECIDED:
            return self._decided(case, event, stored_at)
        return self._withdrawn(case, event, stored_at)

    def _closed_refusal(self, case: CaseRow, what: str) -> RuleBroken:
        return RuleBroken(
            Reason.CASE_CLOSED, f"case {case.case_id} is already {case.state.value}; {what}"
        )

    def _assigned(self, case: CaseRow, event: VerifiedEvent, stored_at: datetime) -> str:
        if case.state is not CaseState.OPEN:
            raise self._closed_refusal(case, "no department can be assigned to it")
        rows = self.assignments.setdefault(case.case_id, {})
        added = []
        for a in event.record["assignments"]:
            reviewer = a["reviewer"]
            self._participant(reviewer, "reviewer")
            if reviewer == case.lead or reviewer in rows or reviewer in added:
                raise RuleBroken(
                    Reason.CASE_MISMATCH, f"{reviewer} is the lead or already a reviewer"
                )
            if not 1 <= a["working_days"] <= 366 or a["material_requests"] < 0:
                raise RuleBroken(
                    Reason.CASE_MISMATCH, f"{reviewer}: impossible time limit or rules"
                )
            added.append(reviewer)
        if not added:
            raise RuleBroken(Reason.CASE_MISMATCH, "an assignment names no reviewer")
        for a in event.record["assignments"]:
            rows[a["reviewer"]] = AssignmentRow(
                case.case_id,
                a["reviewer"],
                len(rows),
                a["label"],
                a["working_days"],
                a["refusal_ends_case"],
                a["material_requests"],
                max(0, a["warn_days"]),
                list(a["resources"]),
                event.event_id,
                stored_at,
                dirty=True,
            )
        self._readiness(case, stored_at)
        return "applied"

    def pauses(self, case_id: str, reviewer: str) -> list[Pause]:
        """The 补正 pauses of one reviewer's clock."""
        return [
            Pause(m.requested_at, m.ended_at)
            for m in self.material.values()
            if m.case_id == case_id and m.reviewer == reviewer
        ]

    def _open_request(self, case_id: str, reviewer: str) -> MaterialRow | None:
        for m in self.material.values():
            if m.case_id == case_id and m.reviewer == reviewer and m.ended_at is None:
                return m
        return None

    def _material_requested(
        self, case: CaseRow, row: AssignmentRow, event: VerifiedEvent, at: datetime
    ) -> str:
        r = event.record
        if case.state is not CaseState.OPEN:
            return f"after_{'withdrawal' if case.state is CaseState.WITHDRAWN else 'decision'}"
        if not row.state.open:
            raise RuleBroken(
                Reason.CASE_CLOSED,
                f"{row.reviewer} already gave its opinion on case {case.case_id}",
            )
        used = sum(
            1
            for m in self.material.values()
            if m.case_id == case.case_id and m.reviewer == row.reviewer
        )
        if (
            self._open_request(case.case_id, row.reviewer) is not None
            or used >= row.material_requests
        ):
            raise RuleBroken(
                Reason.NOT_ASSIGNED,
                f"{row.reviewer} may not ask for more material on case {case.case_id} now "
                f"(it may ask {row.material_requests} time(s) and has asked {used})",
            )
        if not [i for i in r["items"] if i.strip()]:
            raise RuleBroken(Reason.CASE_MISMATCH, "a 补正 request must list what is missing")
        if r["request_id"] in self.material:
            raise RuleBroken(Reason.CASE_MISMATCH, f"补正 request {r['request_id']} already exists")
        self.material[r["request_id"]] = MaterialRow(
            r["request_id"],
            case.case_id,
            row.reviewer,
            [i.strip() for i in r["items"] if i.strip()],
            r["reason"],
            event.event_id,
            at,
            dirty=True,
        )
        row.state, row.dirty = ReviewState.MATERIAL_REQUESTED, True
        return "applied"

    def _material_supplied(self, case: CaseRow, event: VerifiedEvent, stored_at: datetime) -> str:
        r = event.record
        request = self.material.get(r["request_id"])
        if (
            request is None
            or request.case_id != case.case_id
            or request.reviewer != r["reviewer"]
            or request.requested_event_id != r["requested_event_id"]
        ):
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"no 补正 request {r['request_id']} of {r['reviewer']} on case {case.case_id} "
                "matches this supply",
            )
        if case.state is not CaseState.OPEN:
            return f"after_{'withdrawal' if case.state is CaseState.WITHDRAWN else 'decision'}"
        if request.ended_at is not None:
            return "moot"
        request.end(stored_at, "supplied")
        request.supplied_event_id = event.event_id
        request.attachments = json.dumps(to_jsonable(r["attachments"]), ensure_ascii=False)
        row = self.assignments[case.case_id][request.reviewer]
        if row.state is ReviewState.MATERIAL_REQUESTED:
            row.state, row.dirty = ReviewState.REVIEWING, True
        return "applied"

    def _opinion(
        self,
        case: CaseRow,
        row: AssignmentRow,
        event: VerifiedEvent,
        stored_at: datetime,
        at: datetime,
        timed_by: str,
    ) -> str:
        r = event.record
        decision = Decision(r["decision"].lower())
        if decision is Decision.REFUSE and not r["reasons"].strip():
            raise RuleBroken(Reason.CASE_MISMATCH, "a refusal must give its reasons")
        conditions = [c.strip() for c in r["conditions"] if c.strip()]
        if decision is Decision.APPROVE_WITH_CONDITIONS and not conditions:
            raise RuleBroken(Reason.CASE_MISMATCH, "an approval with conditions must list them")
        if case.state is CaseState.WITHDRAWN:
            return "after_withdrawal"
        if case.state is CaseState.DECIDED or row.state is ReviewState.CLOSED:
            return "after_decision"
        if not row.state.open:
            raise RuleBroken(
                Reason.CASE_CLOSED,
                f"{row.reviewer} already gave its opinion on case {case.case_id} "
                f"(event {row.opinion_event_id}); an opinion cannot be replaced",
            )
        deadline = self.clock.deadline(
            row.assigned_at, row.working_days, self.pauses(case.case_id, row.reviewer)
        )
        request = self._open_request(case.case_id, row.reviewer)
        if request is not None:
            request.end(at, "opinion")
        row.state = decision.state
        row.opinion_event_id, row.opinion_at, row.timed_by = event.event_id, at, timed_by
        row.reasons = r["reasons"].strip() or None
        row.conditions = conditions or None
        row.legal_basis = r["legal_basis"].strip() or None
        row.late = deadline is not None and at >= deadline
        row.dirty = True
        self._readiness(case, stored_at)
        return "late" if row.late else "applied"

    def _readiness(self, case: CaseRow, at: datetime) -> None:
        """What the opinions so far decide: a binding refusal at once, else once all are in."""
        rows = list(self.assignments.get(case.case_id, {}).values())
        ready: Outcome | None = None
        if any(r.state is ReviewState.REFUSED and r.refusal_ends_case for r in rows):
            ready = Outcome.REFUSED
        elif rows and not any(r.state.open for r in rows):
            ready = outcome_of([_decision_of(r) for r in rows])
        if ready != case.ready_outcome:
            case.ready_outcome, case.ready_at = ready, at if ready else None
            case.dirty = True

    def _decided(self, case: CaseRow, event: VerifiedEvent, stored_at: datetime) -> str:
        r = event.record
        if case.state is not CaseState.OPEN:
            raise self._closed_refusal(case, "it cannot be decided again")
        rows = self.assignments.get(case.case_id, {})
        opinions = {a.opinion_event_id: a for a in rows.values() if a.opinion_event_id}
        named = [opinions[i] for i in r["opinion_event_ids"] if i in opinions]
        unknown = [i for i in r["opinion_event_ids"] if i not in opinions]
        if unknown:
            raise RuleBroken(
                Reason.CASE_MISMATCH, f"the decision names {unknown[0]}, no opinion on this case"
            )
        binding = [a for a in named if a.state is ReviewState.REFUSED and a.refusal_ends_case]
        missing = [
            a.reviewer
            for a in rows.values()
            if a.opinion_event_id not in set(r["opinion_event_ids"])
        ]
        if not binding and missing:
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"the case is decided before {', '.join(sorted(missing))} gave an opinion",
            )
        expected = Outcome.REFUSED if binding else outcome_of([_decision_of(a) for a in named])
        claimed = Outcome(r["outcome"].lower())
        refused_by = sorted(a.reviewer for a in named if a.state is ReviewState.REFUSED)
        required = [c for a in named for c in (a.conditions or [])]
        if (
            claimed is not expected
            or sorted(r["refused_by"]) != refused_by
            or not set(required) <= set(r["conditions"])
        ):
            raise RuleBroken(
                Reason.CASE_MISMATCH,
                f"the decision ({claimed.value}) does not follow from the opinions it names "
                f"({expected.value}, refused by {', '.join(refused_by) or 'none'})",
            )
        case.state, case.outcome, case.dirty = CaseState.DECIDED, claimed, True
        case.decided_event_id, case.decided_at = event.event_id, stored_at
        self._close_open(case, stored_at)
        return "applied"

    def _withdrawn(self, case: CaseRow, event: VerifiedEvent, stored_at: datetime) -> str:
        if case.state is not CaseState.OPEN:
            raise self._closed_refusal(case, "it cannot be withdrawn")
        if not event.record["reason"].strip():
            raise RuleBroken(Reason.CASE_MISMATCH, "a withdrawal must give its reason")
        case.state, case.dirty = CaseState.WITHDRAWN, True
        case.withdrawn_at, case.withdraw_reason = stored_at, event.record["reason"].strip()
        self._close_open(case, stored_at)
        return "applied"

    def _close_open(self, case: CaseRow, at: datetime) -> None:
        for row in self.assignments.get(case.case_id, {}).values():
            if row.state.open:
                row.state, row.dirty = ReviewState.CLOSED, True
        for m in self.material.values():
            if m.case_id == case.case_id:
                m.end(at, "closed")

    def _clock_notice(
        self, kind: Kind, case: CaseRow, event: VerifiedEvent, stored_at: datetime
    ) -> str:
        r = event.record
        # Security: only the hub operator's clock warns and escalates; a department cannot
        # mark another as overdue.
        if event.fields.source != self.operator:
            raise RuleBroken(
                Reason.NOT_OPERATOR,
                f"only the hub operator {self.operator} signs overdue warnings and escalations",
            )
        row = self.assignments.get(case.case_id, {}).get(r["reviewer"])
        if row is None:
            raise RuleBroken(
                Reason.NOT_ASSIGNED, f"{r['reviewer']} is not a reviewer of case {case.case_id}"
            )
        if r["supervisor"] != case.supervisor:
            raise RuleBroken(
                Reason.CASE_MISMATCH, f"case {case.case_id} is supervised by {case.supervisor}"
            )
        if kind is Kind.WARNING:
            if row.warned_at is not None:
                return "duplicate"
            row.warned_at, row.dirty = stored_at, True
        else:
            if row.escalated_at is not None:
                return "duplicate"
            row.escalated_at, row.dirty = stored_at, True
        return "applied" if row.state.open else "moot"

    async def write(self, conn: asyncpg.Connection) -> None:
        """Write everything the batch changed, in dependency order."""
        new = [c.insert for c in self.cases.values() if c.insert is not None]
        if new:
            await conn.executemany(
                "INSERT INTO apr_cases (case_id, case_number, case_type, type_digest, title,"
                " applicant_name, applicant_code, unit, lead, supervisor, attachments,"
                " opened_event_id, opened_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
                new,
            )
        changed = [c for c in self.cases.values() if c.dirty]
        if changed:
            await conn.executemany(
                "UPDATE apr_cases SET state = $2, ready_outcome = $3, ready_at = $4, outcome = $5,"
                " decided_event_id = $6, decided_at = $7, withdrawn_at = $8,"
                " withdraw_reason = $9 WHERE case_id = $1",
                [
                    (
                        c.case_id,
                        c.state.value,
                        c.ready_outcome.value if c.ready_outcome else None,
                        c.ready_at,
                        c.outcome.value if c.outcome else None,
                        c.decided_event_id,
                        c.decided_at,
                        c.withdrawn_at,
                        c.withdraw_reason,
                    )
                    for c in changed
                ],
            )
        rows = [a for per in self.assignments.values() for a in per.values() if a.dirty]
        if rows:
            placeholders = ",".join(f"${i}" for i in range(1, 23))
            await conn.executemany(
                f"INSERT INTO apr_assignments ({ASSIGNMENT_COLUMNS}) VALUES ({placeholders})"
                " ON CONFLICT (case_id, reviewer) DO UPDATE SET state = EXCLUDED.state,"
                " opinion_event_id = EXCLUDED.opinion_event_id,"
                " opinion_at = EXCLUDED.opinion_at, timed_by = EXCLUDED.timed_by,"
                " reasons = EXCLUDED.reasons, conditions = EXCLUDED.conditions,"
                " legal_basis = EXCLUDED.legal_basis, late = EXCLUDED.late,"
                " warned_at = EXCLUDED.warned_at, escalated_at = EXCLUDED.escalated_at",
                [a.columns() for a in rows],
            )
        material = [m for m in self.material.values() if m.dirty]
        if material:
            await conn.executemany(
                "INSERT INTO apr_material (request_id, case_id, reviewer, items, reason,"
                " requested_event_id, requested_at, ended_at, ended_by, supplied_event_id,"
                " attachments) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
                " ON CONFLICT (request_id) DO UPDATE SET ended_at = EXCLUDED.ended_at,"
                " ended_by = EXCLUDED.ended_by, supplied_event_id = EXCLUDED.supplied_event_id,"
                " attachments = EXCLUDED.attachments",
                [
                    (
                        m.request_id,
                        m.case_id,
                        m.reviewer,
                        m.items,
                        m.reason,
                        m.requested_event_id,
                        m.requested_at,
                        m.ended_at,
                        m.ended_by,
                        m.supplied_event_id,
                        m.attachments,
                    )
                    for m in material
                ],
            )
        if self.events:
            await conn.executemany(
                "INSERT INTO apr_events (event_id, case_id, kind, source, subject, ce_time,"
                " stored_at, at, timed_by, stream_seq, outcome, record, headers, body)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
                " ON CONFLICT DO NOTHING",
                self.events,
            )


def _decision_of(row: AssignmentRow) -> Decision:
    return {
        ReviewState.APPROVED: Decision.APPROVE,
        ReviewState.APPROVED_WITH_CONDITIONS: Decision.APPROVE_WITH_CONDITIONS,
        ReviewState.REFUSED: Decision.REFUSE,
    }.get(row.state, Decision.APPROVE)
