"""The directory's signed events: schema names, subjects, and the kinds the materializer applies.

Every event sits under the participant that signs it, so permissions stay prefixes
(docs/directory.md):

```
dir.<provider>.published.<code>     EntryPublished         目录发布 (version 1, or re-publish)
dir.<provider>.updated.<code>       EntryPublished         目录更新 (a higher version)
dir.<provider>.withdrawn.<code>     EntryWithdrawn         目录撤销
dir.<requester>.request.<req>       AccessRequested        共享申请 (unconditional: granted at once)
dir.<provider>.grant.<req>          AccessGranted          同意共享
dir.<provider>.deny.<req>           AccessDenied           不同意共享, with a reason
dir.<provider>.revoke.<req>         GrantRevoked           撤销授权
dir.<operator>.reminder.<req>       RequestReminder        催办
dir.<operator>.escalated.<req>      RequestEscalated       逾期提请协调
dir.<requester>.coordination.<case> CoordinationRequested  不予共享: a case for the operator
evt.<provider>.share.<code>.<grantee unit>.<grantee dept>  SharedData  (data, not directory)
```
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass

from hub.errors import InputError
from hub.subjects import check_participant_id, subject_for

NS = "gov.directory.v1"
ENTRY_SCHEMA = f"{NS}.EntryPublished"
WITHDRAWN_SCHEMA = f"{NS}.EntryWithdrawn"
REQUEST_SCHEMA = f"{NS}.AccessRequested"
GRANT_SCHEMA = f"{NS}.AccessGranted"
DENY_SCHEMA = f"{NS}.AccessDenied"
REVOKE_SCHEMA = f"{NS}.GrantRevoked"
REMINDER_SCHEMA = f"{NS}.RequestReminder"
ESCALATED_SCHEMA = f"{NS}.RequestEscalated"
COORDINATION_SCHEMA = f"{NS}.CoordinationRequested"
SHARED_DATA_SCHEMA = f"{NS}.SharedData"

DIRECTORY_FILTER = "dir.>"
SHARE_TOKEN = "share"


class Kind(enum.StrEnum):
    """The subject token saying what a directory event does."""

    PUBLISHED = "published"
    UPDATED = "updated"
    WITHDRAWN = "withdrawn"
    REQUEST = "request"
    GRANT = "grant"
    DENY = "deny"
    REVOKE = "revoke"
    REMINDER = "reminder"
    ESCALATED = "escalated"
    COORDINATION = "coordination"


SCHEMA_OF_KIND = {
    Kind.PUBLISHED: ENTRY_SCHEMA,
    Kind.UPDATED: ENTRY_SCHEMA,
    Kind.WITHDRAWN: WITHDRAWN_SCHEMA,
    Kind.REQUEST: REQUEST_SCHEMA,
    Kind.GRANT: GRANT_SCHEMA,
    Kind.DENY: DENY_SCHEMA,
    Kind.REVOKE: REVOKE_SCHEMA,
    Kind.REMINDER: REMINDER_SCHEMA,
    Kind.ESCALATED: ESCALATED_SCHEMA,
    Kind.COORDINATION: COORDINATION_SCHEMA,
}

# Matched whole: `$` would let a final "\n" into a subject.
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_id() -> str:
    """A fresh request or case id (a random UUID, lowercase)."""
    return str(uuid.uuid4())


def check_request_id(request_id: str) -> str:
    """Refuse anything that is not a request id before it meets a subject or a query."""
    if not isinstance(request_id, str) or not _UUID_RE.fullmatch(request_id):
        raise InputError(f"{request_id!r} is not a request id (a UUID such as 0f1e…-…)")
    return request_id


def dir_subject(participant: str, kind: Kind, token: str) -> str:
    """The subject of a directory event of this kind, signed by `participant`."""
    return subject_for("dir", participant, kind.value, token)


def share_subject(provider: str, code: str, grantee: str) -> str:
    """Where a record sealed to one grantee is published (a subject per grantee, so NATS
    permissions can confine each grantee to its own: `evt.*.*.share.*.<grantee>`)."""
    unit, dept = check_participant_id(grantee)
    return subject_for("evt", provider, SHARE_TOKEN, code, unit, dept)


def share_filter(code: str, provider: str | None = None) -> str:
    """The subject filter of every sealed record of one resource."""
    if provider is None:
        return f"evt.*.*.{SHARE_TOKEN}.{code}.>"
    return f"evt.{provider}.{SHARE_TOKEN}.{code}.>"


@dataclass(frozen=True, slots=True)
class DirSubject:
    """A parsed `dir.<unit>.<dept>.<kind>.<token>` subject."""

    participant: str
    kind: Kind
    token: str


def parse_dir_subject(subject: str) -> DirSubject | None:
    """Parse a directory subject; None if it is not one."""
    tokens = subject.split(".")
    if len(tokens) != 5 or tokens[0] != "dir":
        return None
    try:
        kind = Kind(tokens[3])
    except ValueError:
        return None
    return DirSubject(f"{tokens[1]}.{tokens[2]}", kind, tokens[4])
