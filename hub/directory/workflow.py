"""Directory steps as signed events: publish, update, withdraw, request, grant, deny, revoke.

Each step is checked against the materialized directory *before* its event is signed, so a
mistake (a code another provider owns, a grant by someone who is not the provider, a request
for a withdrawn resource) is refused with a clear error and nothing reaches the bus. The
materializer applies the same rules again to whatever does reach the bus, because a client is
not trusted to have checked. With `settle` (the default) a step then catches the directory up
and reports the state its event produced, or the materializer's refusal.

The deadline sweep (`sweep`) is the hub operator's: reminders to providers whose answer is
due soon, escalation to the operator (共享主管部门) when the deadline has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from hub.collaborators import Bus, Signer, Trust
from hub.directory.deadlines import DeadlinePolicy, load_policy
from hub.directory.events import (
    COORDINATION_SCHEMA,
    DENY_SCHEMA,
    ENTRY_SCHEMA,
    ESCALATED_SCHEMA,
    GRANT_SCHEMA,
    REMINDER_SCHEMA,
    REQUEST_SCHEMA,
    REVOKE_SCHEMA,
    WITHDRAWN_SCHEMA,
    Kind,
    check_request_id,
    dir_subject,
    new_id,
)
from hub.directory.materializer import Materializer, event_outcome
from hub.directory.model import Entry, SharingType
from hub.directory.store import get_request, load_entry
from hub.directory.validation import parse_entry
from hub.envelope import MAX_BODY_BYTES, Envelope
from hub.errors import (
    DirectoryError,
    EntryInvalid,
    InputError,
    NotProvider,
    Reason,
    RequestClosed,
    ResourceClosed,
    UnknownRequest,
    UnknownResource,
)
from hub.federation.arrival import wait_at_hub
from hub.home import Settings
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.directory.workflow")

# How long a step waits for its event to reach the hub from a county before reporting it
# queued (the uplink is down): the event is safe in the county's stream either way.
ARRIVAL_WAIT_S = 15.0

_ERROR_OF_REASON: dict[Reason, type[DirectoryError]] = {
    Reason.NOT_PROVIDER: NotProvider,
    Reason.UNKNOWN_RESOURCE: UnknownResource,
    Reason.RESOURCE_CLOSED: ResourceClosed,
    Reason.UNKNOWN_REQUEST: UnknownRequest,
    Reason.REQUEST_CLOSED: RequestClosed,
}


@dataclass(frozen=True)
class Published:
    """A signed directory event on the bus, with the stream that acknowledged it (a county's
    own stream when its department published in a federation)."""

    event_id: str
    subject: str
    seq: int
    stream: str = HUB_STREAM

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "event_id": self.event_id,
            "subject": self.subject,
            "seq": self.seq,
            "stream": self.stream,
        }


def queued(out: Published) -> dict[str, Any]:
    """What a step reports when its event is stored at the county but not at the hub yet."""
    return {
        "state": "queued",
        "settled": False,
        "message": (
            f"stored by {out.stream} (seq {out.seq}); it reaches the hub, and the directory, "
            "when the county's uplink is back"
        ),
    }


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InputError(f"{what} is required")
    return value.strip()


def _future(until: datetime | None, what: str) -> datetime | None:
    if until is not None and until <= datetime.now(UTC):
        raise InputError(f"{what} {until.isoformat()} is in the past")
    return until


class Directory:
    """The directory's write side for participants whose keys this home holds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pg_dsn: str,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        *,
        policy: DeadlinePolicy | None = None,
        arrival_wait_s: float = ARRIVAL_WAIT_S,
    ) -> None:
        self._pool = pool
        self._pg_dsn = pg_dsn
        self._settings = settings
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self.policy = policy or load_policy(settings.home)
        self.arrival_wait_s = arrival_wait_s
        # Events published through a county's stream, not yet seen at the hub.
        self._in_transit: dict[str, Envelope] = {}

    async def catch_up(self, *, timeout: float = 120.0) -> int:
        """Apply every directory event the hub stream holds (the same path as the service)."""
        return await Materializer(
            self._pool, self._pg_dsn, self._settings, self._trust, self._bus, policy=self.policy
        ).catch_up(timeout=timeout)

    async def _emit(
        self, as_id: str, schema: str, kind: Kind, token: str, record: Mapping[str, Any]
    ) -> tuple[Envelope, Published]:
        env = self._signer.seal(as_id, schema, record, subject=dir_subject(as_id, kind, token))
        if len(env.body) > MAX_BODY_BYTES:
            raise EntryInvalid(
                [("(entry)", f"is {len(env.body)} bytes as an event; at most {MAX_BODY_BYTES}")]
            )
        # Through the participant's own link in a federation, so its server permissions
        # apply and a county department works with the uplink down.
        ack = await (await self._signer.publisher_for(as_id)).publish(env)
        log.info("directory.event.published", kind=kind.value, subject=env.subject, seq=ack.seq)
        if ack.stream != HUB_STREAM:
            self._in_transit[env.event_id] = env
        return env, Published(env.event_id, env.subject, ack.seq, ack.stream)

    async def settle(self, event_id: str) -> bool:
        """Catch up, then raise the materializer's refusal of an event as a typed error.

        Returns False, changing nothing, if the event was stored by a county's stream and
        has not reached the hub within `arrival_wait_s` (its uplink is down): it is applied
        when it arrives, and the step reports itself queued.
        """
        env = self._in_transit.pop(event_id, None)
        if env is not None and not await wait_at_hub(
            self._bus.nc, [env], timeout=self.arrival_wait_s
        ):
            return False
        await self.catch_up()
        outcome = await event_outcome(self._pool, event_id)
        if outcome is None or outcome[0] != "refused":
            return True
        _, reason, detail = outcome
        error = _ERROR_OF_REASON.get(reason, DirectoryError) if reason else DirectoryError
        raise error(f"the directory refused event {event_id}: {detail}")

    async def publish(
        self, as_id: str, data: Any, *, update: bool = False, settle: bool = True
    ) -> dict[str, Any]:
        """Publish (or update) an entry from its entry-file JSON, signed by its provider."""
        entry = parse_entry(data, schemas=self._trust.schemas)
        if entry.provider != as_id:
            raise NotProvider(
                f"the entry names provider {entry.provider}, so only {entry.provider} may "
                f"publish it, not {as_id}"
            )
        existing = await self._pool.fetchrow(
            "SELECT provider, status, version FROM directory_entries WHERE code = $1", entry.code
        )
        if existing is not None and existing["provider"] != as_id:
            raise DirectoryError(
                f"resource code {entry.code} is already used by {existing['provider']}; codes "
                "are unique in the network, so choose another sequence number"
            )
        if update:
            if existing is None:
                raise UnknownResource(f"{entry.code} was never published; publish it first")
            if existing["status"] != "active":
                raise ResourceClosed(f"{entry.code} is withdrawn; publish it again instead")
        elif existing is not None and existing["status"] == "active":
            raise DirectoryError(
                f"{entry.code} is already published (version {existing['version']}); "
                "change it with `govhub dir update`"
            )
        if existing is not None:
            entry = entry.replace(version=max(entry.version, existing["version"] + 1))
        kind = Kind.UPDATED if update else Kind.PUBLISHED
        env, out = await self._emit(as_id, ENTRY_SCHEMA, kind, entry.code, entry.to_record())
        result = {"code": entry.code, "version": entry.version, "action": kind.value}
        if settle and not await self.settle(env.event_id):
            result.update(queued(out))
        return {**result, **out.to_json()}

    async def withdraw(
        self, as_id: str, code: str, reason: str, *, settle: bool = True
    ) -> dict[str, Any]:
        """Withdraw an entry: open requests are closed and grants end with it."""
        reason = _text(reason, "--reason")
        entry, status, _ = await load_entry(self._pool, code)
        if entry.provider != as_id:
            raise NotProvider(f"only {entry.provider} may withdraw {code}, not {as_id}")
        if status != "active":
            raise ResourceClosed(f"{code} is already withdrawn")
        record = {"code": code, "version": entry.version, "reason": reason}
        env, out = await self._emit(as_id, WITHDRAWN_SCHEMA, Kind.WITHDRAWN, code, record)
        result: dict[str, Any] = {"code": code, "status": "withdrawn", **out.to_json()}
        if settle and not await self.settle(env.event_id):
            result.update(queued(out))
        return result

    async def request(
        self,
        as_id: str,
        code: str,
        purpose: str,
        *,
        fields: Sequence[str] = (),
        until: datetime | None = None,
        settle: bool = True,
    ) -> dict[str, Any]:
        """Ask for a resource; a not-shared one opens a coordination case with the operator."""
        purpose = _text(purpose, "--purpose")
        entry, status, _ = await load_entry(self._pool, code)
        if status != "active":
            raise ResourceClosed(f"{code} ({entry.title}) was withdrawn and cannot be requested")
        if entry.provider == as_id:
            raise InputError(f"{as_id} provides {code} itself; there is nothing to request")
        fields = list(dict.fromkeys(fields))
        unknown = [f for f in fields if f not in entry.item_names]
        if unknown:
            raise InputError(
                f"--fields: {', '.join(unknown)} not data items of {code}; "
                f"its items are {', '.join(entry.item_names)}"
            )
        _future(until, "--until")
        if entry.sharing_type is SharingType.NOT_SHARED:
            return await self._coordination(as_id, entry, purpose, settle=settle)
        pending = await self._pool.fetchval(
            "SELECT request_id FROM directory_requests WHERE code = $1 AND requester = $2"
            " AND state = 'pending'",
            code,
            as_id,
        )
        if pending:
            raise RequestClosed(f"{as_id} already has a pending request {pending} for {code}")
        request_id = new_id()
        record = {
            "request_id": request_id,
            "code": code,
            "provider": entry.provider,
            "requester": as_id,
            "entry_version": entry.version,
            "purpose": purpose,
            "fields": fields,
            "requested_until": until,
        }
        env, out = await self._emit(as_id, REQUEST_SCHEMA, Kind.REQUEST, request_id, record)
        result: dict[str, Any] = {"kind": "request", "request_id": request_id, **out.to_json()}
        if settle:
            if await self.settle(env.event_id):
                result.update(await get_request(self._pool, request_id))
            else:
                result.update(queued(out))
        return result

    async def _coordination(
        self, as_id: str, entry: Entry, purpose: str, *, settle: bool
    ) -> dict[str, Any]:
        case_id = new_id()
        operator = self._trust.scenario.operator
        record = {
            "case_id": case_id,
            "code": entry.code,
            "provider": entry.provider,
            "requester": as_id,
            "operator": operator,
            "purpose": purpose,
        }
        env, out = await self._emit(as_id, COORDINATION_SCHEMA, Kind.COORDINATION, case_id, record)
        extra = queued(out) if settle and not await self.settle(env.event_id) else {}
        return {
            "kind": "coordination",
            "case_id": case_id,
            "code": entry.code,
            "operator": operator,
            "legal_basis": entry.legal_basis,
            "message": (
                f"{entry.code} is not shared (不予共享, basis: {entry.legal_basis}); no request "
                f"was made, a coordination case went to the hub operator {operator}"
            ),
            **out.to_json(),
            **extra,
        }

    async def _open_request(self, as_id: str, request_id: str, verb: str) -> dict[str, Any]:
        req = await get_request(self._pool, check_request_id(request_id))
        if req["provider"] != as_id:
            raise NotProvider(
                f"only {req['provider']}, the provider of {req['code']}, may {verb} request "
                f"{request_id}; {as_id} is not the provider"
            )
        return req

    async def grant(
        self,
        as_id: str,
        request_id: str,
        *,
        fields: Sequence[str] | None = None,
        until: datetime | None = None,
        settle: bool = True,
    ) -> dict[str, Any]:
        """Grant a pending request, possibly narrowed to fewer fields or a shorter period."""
        req = await self._open_request(as_id, request_id, "grant")
        if req["state"] != "pending":
            raise RequestClosed(f"request {request_id} is already {req['state']}")
        entry, status, _ = await load_entry(self._pool, req["code"])
        if status != "active":
            raise ResourceClosed(f"{req['code']} was withdrawn; its requests are closed")
        asked = list(req["fields"]) or list(entry.item_names)
        chosen = list(dict.fromkeys(fields)) if fields else list(req["fields"])
        extra = [f for f in chosen if f not in asked]
        if extra:
            raise InputError(f"--fields: {', '.join(extra)} were not asked for: {asked}")
        until = _future(until if until is not None else req["requested_until"], "--until")
        record = {
            "request_id": request_id,
            "code": req["code"],
            "requester": req["requester"],
            "request_event_id": req["request_event_id"],
            "fields": chosen,
            "valid_until": until,
        }
        env, out = await self._emit(as_id, GRANT_SCHEMA, Kind.GRANT, request_id, record)
        return await self._answered(env, out, request_id, settle)

    async def _answered(
        self, env: Envelope, out: Published, request_id: str, settle: bool
    ) -> dict[str, Any]:
        result: dict[str, Any] = {"request_id": request_id, **out.to_json()}
        if settle:
            if await self.settle(env.event_id):
                result.update(await get_request(self._pool, request_id))
            else:
                result.update(queued(out))
        return result

    async def deny(
        self, as_id: str, request_id: str, reason: str, *, settle: bool = True
    ) -> dict[str, Any]:
        """Refuse a pending request; the 条例 requires a reason."""
        reason = _text(reason, "--reason (a refusal must give its reason)")
        req = await self._open_request(as_id, request_id, "deny")
        if req["state"] != "pending":
            raise RequestClosed(f"request {request_id} is already {req['state']}")
        record = {
            "request_id": request_id,
            "code": req["code"],
            "requester": req["requester"],
            "request_event_id": req["request_event_id"],
            "reason": reason,
        }
        env, out = await self._emit(as_id, DENY_SCHEMA, Kind.DENY, request_id, record)
        return await self._answered(env, out, request_id, settle)

    async def revoke(
        self, as_id: str, request_id: str, reason: str, *, settle: bool = True
    ) -> dict[str, Any]:
        """End a grant before its term: no new data is sealed to the grantee."""
        reason = _text(reason, "--reason")
        req = await self._open_request(as_id, request_id, "revoke")
        if req["state"] != "granted":
            raise RequestClosed(f"request {request_id} is {req['state']}; only a grant is revoked")
        record = {
            "request_id": request_id,
            "code": req["code"],
            "requester": req["requester"],
            "reason": reason,
        }
        env, out = await self._emit(as_id, REVOKE_SCHEMA, Kind.REVOKE, request_id, record)
        return await self._answered(env, out, request_id, settle)

    async def sweep(self, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """As the hub operator: remind providers of answers due soon, escalate overdue ones."""
        now = now or datetime.now(UTC)
        operator = self._trust.scenario.operator
        rows = await self._pool.fetch(
            "SELECT request_id, code, provider, requester, deadline, reminded_at, escalated_at"
            " FROM directory_requests WHERE state = 'pending' AND deadline IS NOT NULL"
            " AND escalated_at IS NULL ORDER BY deadline"
        )
        reminded: list[dict[str, Any]] = []
        escalated: list[dict[str, Any]] = []
        last = ""
        for r in rows:
            base = {
                "request_id": r["request_id"],
                "code": r["code"],
                "provider": r["provider"],
                "requester": r["requester"],
                "deadline": r["deadline"],
            }
            if now >= r["deadline"]:
                env, _ = await self._emit(
                    operator, ESCALATED_SCHEMA, Kind.ESCALATED, r["request_id"], base
                )
                escalated.append({**base, "event_id": env.event_id})
                last = env.event_id
            elif r["reminded_at"] is None and self.policy.due_for_reminder(now, r["deadline"]):
                left = self.policy.calendar.working_days_left(now, r["deadline"])
                record = {**base, "working_days_left": left}
                env, _ = await self._emit(
                    operator, REMINDER_SCHEMA, Kind.REMINDER, r["request_id"], record
                )
                reminded.append({**record, "event_id": env.event_id})
                last = env.event_id
        if last:
            await self.settle(last)
        return {"reminded": reminded, "escalated": escalated}
