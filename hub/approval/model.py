"""The vocabulary of parallel approval: schema names, subjects, kinds, states and outcomes.

Every event about a case is published under the participant that signs it, so permissions
stay prefixes, a county's reviews travel in its own stream, and one case's history is
`evt.*.*.approval.*.<case_id>`:

```
evt.<lead>.approval.opened.<case>               CaseOpened         受理, with the materials
evt.<lead>.approval.assigned.<case>             CaseAssigned       分送: reviewers' clocks start
evt.<reviewer>.approval.material_requested.<c>  MaterialRequested  补正通知: its clock pauses
evt.<lead>.approval.material_supplied.<case>    MaterialSupplied   补正材料: it runs again
evt.<reviewer>.approval.opinion.<case>          Opinion            审查意见
evt.<lead>.approval.decided.<case>              CaseDecided        办结, from the opinions
evt.<lead>.approval.withdrawn.<case>            CaseWithdrawn      撤回
evt.<operator>.approval.warning.<case>          OverdueWarning     超期预警
evt.<operator>.approval.escalated.<case>        CaseEscalated      超期督办 to the supervisor
```
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from hub.errors import InputError
from hub.subjects import subject_for

NS = "gov.approval.v1"
OPENED_SCHEMA = f"{NS}.CaseOpened"
ASSIGNED_SCHEMA = f"{NS}.CaseAssigned"
MATERIAL_REQUESTED_SCHEMA = f"{NS}.MaterialRequested"
MATERIAL_SUPPLIED_SCHEMA = f"{NS}.MaterialSupplied"
OPINION_SCHEMA = f"{NS}.Opinion"
DECIDED_SCHEMA = f"{NS}.CaseDecided"
WITHDRAWN_SCHEMA = f"{NS}.CaseWithdrawn"
WARNING_SCHEMA = f"{NS}.OverdueWarning"
ESCALATED_SCHEMA = f"{NS}.CaseEscalated"

TOKEN = "approval"
APPROVAL_FILTER = f"evt.*.*.{TOKEN}.>"


class Kind(enum.StrEnum):
    """The subject token saying what a case event does."""

    OPENED = "opened"
    ASSIGNED = "assigned"
    MATERIAL_REQUESTED = "material_requested"
    MATERIAL_SUPPLIED = "material_supplied"
    OPINION = "opinion"
    DECIDED = "decided"
    WITHDRAWN = "withdrawn"
    WARNING = "warning"
    ESCALATED = "escalated"


SCHEMA_OF_KIND = {
    Kind.OPENED: OPENED_SCHEMA,
    Kind.ASSIGNED: ASSIGNED_SCHEMA,
    Kind.MATERIAL_REQUESTED: MATERIAL_REQUESTED_SCHEMA,
    Kind.MATERIAL_SUPPLIED: MATERIAL_SUPPLIED_SCHEMA,
    Kind.OPINION: OPINION_SCHEMA,
    Kind.DECIDED: DECIDED_SCHEMA,
    Kind.WITHDRAWN: WITHDRAWN_SCHEMA,
    Kind.WARNING: WARNING_SCHEMA,
    Kind.ESCALATED: ESCALATED_SCHEMA,
}


class Decision(enum.StrEnum):
    """A reviewer's decision (the Avro symbols of OpinionDecision, lower-cased)."""

    APPROVE = "approve"
    APPROVE_WITH_CONDITIONS = "approve_with_conditions"
    REFUSE = "refuse"

    @property
    def symbol(self) -> str:
        """The Avro enum symbol."""
        return self.name

    @property
    def state(self) -> ReviewState:
        """The assignment state this decision leaves."""
        return {
            Decision.APPROVE: ReviewState.APPROVED,
            Decision.APPROVE_WITH_CONDITIONS: ReviewState.APPROVED_WITH_CONDITIONS,
            Decision.REFUSE: ReviewState.REFUSED,
        }[self]


class Outcome(enum.StrEnum):
    """A case's outcome (the Avro symbols of Outcome, lower-cased)."""

    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    REFUSED = "refused"

    @property
    def symbol(self) -> str:
        """The Avro enum symbol."""
        return self.name


class CaseState(enum.StrEnum):
    """Where a case is."""

    OPEN = "open"
    DECIDED = "decided"
    WITHDRAWN = "withdrawn"


class ReviewState(enum.StrEnum):
    """Where one reviewer's part of a case is."""

    REVIEWING = "reviewing"
    MATERIAL_REQUESTED = "material_requested"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    REFUSED = "refused"
    CLOSED = "closed"  # the case ended (withdrawn, or decided by another's refusal) first

    @property
    def open(self) -> bool:
        """Whether the reviewer still owes an opinion."""
        return self in (ReviewState.REVIEWING, ReviewState.MATERIAL_REQUESTED)


# Chinese labels for the applicant's progress view (办件进度) and tables. Three tables, since
# a review and a case outcome share names ("approved") with different labels.
CASE_ZH: dict[str, str] = {
    CaseState.OPEN: "审批中",
    CaseState.DECIDED: "已办结",
    CaseState.WITHDRAWN: "已撤回",
}
REVIEW_ZH: dict[str, str] = {
    ReviewState.REVIEWING: "审查中",
    ReviewState.MATERIAL_REQUESTED: "待补正",
    ReviewState.APPROVED: "同意",
    ReviewState.APPROVED_WITH_CONDITIONS: "有条件同意",
    ReviewState.REFUSED: "不同意",
    ReviewState.CLOSED: "已终止",
}
OUTCOME_ZH: dict[str, str] = {
    Outcome.APPROVED: "准予许可",
    Outcome.APPROVED_WITH_CONDITIONS: "附条件准予许可",
    Outcome.REFUSED: "不予许可",
}

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_case_id(case_id: str) -> str:
    """Refuse anything that is not a case id (a lowercase UUID) before it meets a subject."""
    if not _UUID_RE.match(case_id):
        raise InputError(f"{case_id!r} is not a case id (a UUID such as 019a…-…)")
    return case_id


def case_subject(participant: str, kind: Kind, case_id: str) -> str:
    """The subject of a case event of this kind, signed by `participant`."""
    return subject_for("evt", participant, TOKEN, kind.value, check_case_id(case_id))


def case_filter(case_id: str) -> str:
    """The subject filter of one case's whole history."""
    return f"evt.*.*.{TOKEN}.*.{check_case_id(case_id)}"


@dataclass(frozen=True, slots=True)
class CaseSubject:
    """A parsed `evt.<unit>.<dept>.approval.<kind>.<case_id>` subject."""

    participant: str
    kind: Kind
    case_id: str


def parse_case_subject(subject: str) -> CaseSubject | None:
    """Parse a case subject; None if it is not one."""
    tokens = subject.split(".")
    if len(tokens) != 6 or tokens[0] != "evt" or tokens[3] != TOKEN:
        return None
    try:
        kind = Kind(tokens[4])
    except ValueError:
        return None
    if not _UUID_RE.match(tokens[5]):
        return None
    return CaseSubject(f"{tokens[1]}.{tokens[2]}", kind, tokens[5])


def outcome_of(decisions: list[Decision]) -> Outcome:
    """What a set of opinions decides: any refusal refuses, any condition conditions."""
    if Decision.REFUSE in decisions:
        return Outcome.REFUSED
    if Decision.APPROVE_WITH_CONDITIONS in decisions:
        return Outcome.APPROVED_WITH_CONDITIONS
    return Outcome.APPROVED
