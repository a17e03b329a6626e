"""Case steps as signed events: open, request and supply material, opinion, withdraw.

Each step is checked against the projection *before* its event is signed, so a mistake (a
department that is not assigned, a case already closed, an opinion after withdrawal) is a
typed error with one sentence and nothing reaches the bus. The projection applies the same
rules again to whatever does reach the bus, because a client is not trusted to have checked.
A step then catches the projection up (signing the lead's decision where its key is) and
reports the state its event produced, the projection's refusal as a typed error, or, for a
county department whose uplink is down, `"state": "queued"` with the county stream that
stored the event: it is applied when it reaches the hub, timed by when the county stored it.

Attachments travel as documents of the exchange (hub/exchange/send.py): each file is sent by
the lead to the reviewers and the case event binds its document id, manifest and digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors
import structlog

from hub.approval import agent, tracker
from hub.approval.casetypes import CaseType, Config, load_config
from hub.approval.model import (
    ASSIGNED_SCHEMA,
    MATERIAL_REQUESTED_SCHEMA,
    MATERIAL_SUPPLIED_SCHEMA,
    OPENED_SCHEMA,
    OPINION_SCHEMA,
    WITHDRAWN_SCHEMA,
    CaseState,
    Decision,
    Kind,
    ReviewState,
    case_subject,
    check_case_id,
)
from hub.approval.views import case_view, load_case
from hub.bus import PubAck, jetstream
from hub.collaborators import Bus, Signer, Trust
from hub.envelope import Envelope, new_event_id
from hub.errors import (
    ApprovalError,
    CaseClosed,
    InputError,
    NotAssigned,
    NotLead,
    Reason,
    RegistryError,
    UnknownCase,
)
from hub.exchange.send import Sender, SendRequest
from hub.exchange.tracker import DURABLE as EXCHANGE_DURABLE
from hub.exchange.tracker import ExchangeTracker
from hub.federation.arrival import wait_at_hub
from hub.home import Settings
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.approval.workflow")

# How long a step waits for its event to reach the hub from a county before reporting it
# queued (the uplink is down): the event is safe in the county's stream either way.
ARRIVAL_WAIT_S = 15.0
MAX_TEXT = 2000

_ERROR_OF_REASON: dict[Reason, type[ApprovalError]] = {
    Reason.NOT_LEAD: NotLead,
    Reason.NOT_ASSIGNED: NotAssigned,
    Reason.NOT_REVIEWER: NotAssigned,
    Reason.CASE_CLOSED: CaseClosed,
    Reason.UNKNOWN_CASE: UnknownCase,
}

# 统一社会信用代码 (GB 32100-2015): 18 characters of this alphabet, the last a check character.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(rf"^[{_USCC_ALPHABET}]{{18}}$")


def check_credit_code(code: str) -> str:
    """A 统一社会信用代码 with a valid check character, or InputError.

    Only a company's code may travel on the bus: every department can read the hub stream,
    and a person's identity number must not (an applicant who is a person leaves it empty).
    """
    code = code.strip().upper()
    if not code:
        return ""
    if _USCC_RE.match(code):
        total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(code, _USCC_WEIGHTS, strict=False))
        if _USCC_ALPHABET[(31 - total % 31) % 31] == code[17]:
            return code
    raise InputError(
        f"--applicant-code {code!r} is not a valid 统一社会信用代码 (18 characters with a check "
        "character); leave it empty for a person, whose identity number must not go on the bus"
    )


def _text(value: str, what: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InputError(f"{what} is required")
    if len(value) > MAX_TEXT:
        raise InputError(f"{what} is limited to {MAX_TEXT} characters")
    return value


@dataclass(frozen=True)
class Step:
    """A signed step on the bus and the stream that acknowledged it."""

    env: Envelope
    ack: PubAck

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "event_id": self.env.event_id,
            "subject": self.env.subject,
            "seq": self.ack.seq,
            "stream": self.ack.stream,
        }


class Approvals:
    """The approval write side for the participants whose keys this home holds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        config: Config | None = None,
        *,
        arrival_wait_s: float = ARRIVAL_WAIT_S,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self.config = config or load_config(settings.home)
        self.arrival_wait_s = arrival_wait_s

    async def catch_up(self) -> None:
        """Apply what the stream holds; sign the decisions that fall to local leads.

        The exchange tracker catches up too, so a case's materials show their deliveries.
        """
        if await _pending(self._bus, EXCHANGE_DURABLE):
            documents = ExchangeTracker(self._pool, self._trust, self._bus, self._signer)
            try:
                await documents.catch_up(fire_timers=False)
            finally:
                await documents.stop()
        await tracker.catch_up(self._pool, self._settings, self._trust, self._bus, self.config)
        decided = await agent.decide_ready(self._pool, self._signer)
        if decided:
            # A county lead's decision travels through its county's stream first.
            await wait_at_hub(self._bus.nc, decided, timeout=self.arrival_wait_s)
            await tracker.catch_up(self._pool, self._settings, self._trust, self._bus, self.config)

    async def _emit(self, as_id: str, schema: str, kind: Kind, case_id: str, record: Any) -> Step:
        env = self._signer.seal(as_id, schema, record, subject=case_subject(as_id, kind, case_id))
        # Through the participant's own link in a federation, so its server permissions
        # apply and a county department keeps working with its uplink down.
        ack = await (await self._signer.publisher_for(as_id)).publish(env)
        log.info("approval.event.published", kind=kind.value, subject=env.subject, seq=ack.seq)
        return Step(env, ack)

    async def _settle(self, steps: Sequence[Step], case_id: str) -> dict[str, Any]:
        """Catch up and report the case, the projection's refusal, or the step queued."""
        away = [s.env for s in steps if s.ack.stream != HUB_STREAM]
        if away and not await wait_at_hub(self._bus.nc, away, timeout=self.arrival_wait_s):
            last = steps[-1]
            return {
                "case_id": case_id,
                "state": "queued",
                "settled": False,
                "message": (
                    f"stored by {last.ack.stream} (seq {last.ack.seq}); it reaches the hub "
                    "when the county's uplink is back, timed by when the county stored it"
                ),
                "events": [s.to_json() for s in steps],
            }
        await self.catch_up()
        for step in steps:
            row = await self._pool.fetchrow(
                "SELECT reason, detail FROM apr_refused WHERE event_id = $1 LIMIT 1",
                step.env.event_id,
            )
            if row is not None:
                error = _ERROR_OF_REASON.get(Reason(row["reason"]), ApprovalError)
                raise error(f"the hub refused event {step.env.event_id}: {row['detail']}")
        view = await case_view(self._pool, self.config, case_id)
        return {**view, "settled": True, "events": [s.to_json() for s in steps]}

    async def _send(
        self, lead: str, to: Sequence[str], case_number: str, docs: Mapping[str, tuple[str, Path]]
    ) -> list[dict[str, Any]]:
        sender = Sender(self._settings, self._trust, self._bus, self._signer)
        out = []
        for name, (label, path) in docs.items():
            sent = await sender.send(
                SendRequest(
                    sender=lead,
                    recipients=tuple(to),
                    path=path,
                    title=f"{label}（{case_number}）",
                    doc_number=case_number,
                )
            )
            out.append(
                {
                    "name": name,
                    "label": label,
                    "doc_id": sent.doc_id,
                    "manifest_event_id": sent.manifest_event_id,
                    "sha256": bytes.fromhex(sent.sha256),
                }
            )
        return out

    async def open(
        self,
        lead: str,
        type_name: str,
        *,
        title: str,
        applicant_name: str,
        documents: Mapping[str, Path],
        applicant_code: str = "",
        unit: str = "",
        case_number: str | None = None,
    ) -> dict[str, Any]:
        """受理 and 分送: open a case of a type, send its materials, assign every reviewer."""
        case_type = self.config.case_type(type_name)
        if lead != case_type.spec.lead:
            raise NotLead(
                f"cases of type {type_name} are opened by their lead department "
                f"{case_type.spec.lead}, not by {lead}"
            )
        # Before any material is sent: a lead that cannot sign would leave documents behind
        # that no case ever names.
        self._can_sign(lead)
        reviewers = case_type.reviewers(unit.strip())
        for r in reviewers:
            if self._trust.participants.get(r.department) is None:
                raise InputError(f"reviewer {r.department} of {type_name} is not registered")
        docs = self._documents(case_type, documents)
        case_id = new_event_id()
        number = _text(case_number or _number(case_id), "--number")
        record = {
            "case_id": case_id,
            "case_number": number,
            "case_type": case_type.name,
            "type_digest": case_type.digest,
            "title": _text(title, "--title"),
            "applicant_name": _text(applicant_name, "--applicant"),
            "applicant_code": check_credit_code(applicant_code),
            "unit": unit.strip(),
            "lead": lead,
            "supervisor": case_type.spec.supervisor,
            "attachments": await self._send(lead, [r.department for r in reviewers], number, docs),
        }
        opened = await self._emit(lead, OPENED_SCHEMA, Kind.OPENED, case_id, record)
        assigned = await self._emit(
            lead,
            ASSIGNED_SCHEMA,
            Kind.ASSIGNED,
            case_id,
            {
                "case_id": case_id,
                "opened_event_id": opened.env.event_id,
                "assignments": [r.to_record() for r in reviewers],
            },
        )
        return await self._settle([opened, assigned], case_id)

    def _can_sign(self, as_id: str) -> None:
        """Refuse early when `as_id` is not an active participant whose key this home holds."""
        participant = self._trust.participants.get(as_id)
        if participant is None:
            raise RegistryError(f"{as_id} is not a registered participant")
        if participant.status != "active":
            raise RegistryError(f"{as_id} is revoked and can no longer sign")
        self._signer.keystore.current(as_id)  # KeyStoreError: its key is not on this machine

    def _documents(
        self, case_type: CaseType, documents: Mapping[str, Path]
    ) -> dict[str, tuple[str, Path]]:
        out = {}
        for name, path in documents.items():
            spec = case_type.document(name)
            if not path.is_file():
                raise InputError(f"--doc {name}={path}: no such file")
            out[name] = (spec.label, path)
        missing = [d for d in case_type.spec.documents if d.required and d.name not in out]
        if missing:
            listed = ", ".join(f"{d.name} ({d.label})" for d in missing)
            raise InputError(f"the application lacks required material: {listed}")
        return out

    async def _case(self, case_id: str) -> Any:
        await self.catch_up()
        return await load_case(self._pool, check_case_id(case_id))

    async def _assignment(self, case: Any, reviewer: str, verb: str) -> Any:
        row = await self._pool.fetchrow(
            "SELECT * FROM apr_assignments WHERE case_id = $1 AND reviewer = $2",
            case["case_id"],
            reviewer,
        )
        if row is None:
            others = await self._pool.fetch(
                "SELECT reviewer FROM apr_assignments WHERE case_id = $1 ORDER BY reviewer",
                case["case_id"],
            )
            listed = ", ".join(r["reviewer"] for r in others) or "none yet"
            raise NotAssigned(
                f"{reviewer} is not a reviewer of case {case['case_number']}, so it cannot "
                f"{verb}; its reviewers are {listed}"
            )
        _check_open(case, f"{reviewer} cannot {verb}")
        if not ReviewState(row["state"]).open:
            raise CaseClosed(
                f"{reviewer} already gave its opinion ({row['state']}) on case "
                f"{case['case_number']}; an opinion cannot be replaced"
            )
        return row

    async def opinion(
        self,
        reviewer: str,
        case_id: str,
        decision: Decision,
        *,
        reasons: str = "",
        conditions: Sequence[str] = (),
        legal_basis: str = "",
    ) -> dict[str, Any]:
        """审查意见: sign the reviewer's opinion on a case assigned to it."""
        case = await self._case(case_id)
        await self._assignment(case, reviewer, "give an opinion")
        reasons = _text(reasons, "--reason", required=decision is Decision.REFUSE)
        listed = [_text(c, "--condition") for c in conditions if c.strip()]
        if decision is Decision.APPROVE_WITH_CONDITIONS and not listed:
            raise InputError("an approval with conditions needs at least one --condition")
        if decision is not Decision.APPROVE_WITH_CONDITIONS and listed:
            raise InputError("--condition goes with --decision approve-with-conditions only")
        record = {
            "case_id": case_id,
            "opened_event_id": case["opened_event_id"],
            "reviewer": reviewer,
            "decision": decision.symbol,
            "reasons": reasons,
            "conditions": listed,
            "legal_basis": _text(legal_basis, "--basis", required=False),
        }
        step = await self._emit(reviewer, OPINION_SCHEMA, Kind.OPINION, case_id, record)
        return await self._settle([step], case_id)

    async def request_material(
        self, reviewer: str, case_id: str, items: Sequence[str], reason: str = ""
    ) -> dict[str, Any]:
        """补正通知: ask for more material; the reviewer's clock pauses until it is supplied."""
        case = await self._case(case_id)
        row = await self._assignment(case, reviewer, "ask for more material")
        asked = await self._pool.fetch(
            "SELECT request_id, ended_at FROM apr_material WHERE case_id = $1 AND reviewer = $2",
            case_id,
            reviewer,
        )
        if any(a["ended_at"] is None for a in asked):
            raise CaseClosed(f"{reviewer} already waits for material on case {case['case_number']}")
        if len(asked) >= row["material_requests"]:
            raise NotAssigned(
                f"{reviewer} may ask for more material on case {case['case_number']} "
                f"{row['material_requests']} time(s) (一次性告知), and has asked {len(asked)}"
            )
        wanted = [_text(i, "--item") for i in items if i.strip()]
        if not wanted:
            raise InputError("say what is missing with at least one --item")
        record = {
            "case_id": case_id,
            "opened_event_id": case["opened_event_id"],
            "request_id": new_event_id(),
            "reviewer": reviewer,
            "items": wanted,
            "reason": _text(reason, "--reason", required=False),
        }
        step = await self._emit(
            reviewer, MATERIAL_REQUESTED_SCHEMA, Kind.MATERIAL_REQUESTED, case_id, record
        )
        result = await self._settle([step], case_id)
        return {**result, "request_id": record["request_id"]}

    async def supply_material(
        self,
        lead: str,
        case_id: str,
        request_id: str,
        documents: Mapping[str, Path],
        note: str = "",
    ) -> dict[str, Any]:
        """补正材料: hand on what the applicant supplied; the reviewer's clock runs again."""
        case = await self._case(case_id)
        _check_lead(case, lead, "supply material for")
        _check_open(case, "no material can be supplied")
        request = await self._pool.fetchrow(
            "SELECT * FROM apr_material WHERE request_id = $1 AND case_id = $2",
            request_id,
            case_id,
        )
        if request is None:
            raise ApprovalError(f"case {case['case_number']} has no 补正 request {request_id}")
        if request["ended_at"] is not None:
            raise CaseClosed(f"补正 request {request_id} was already {request['ended_by']}")
        if not documents:
            raise InputError("supply the material with at least one --doc NAME=FILE")
        self._can_sign(lead)
        docs = {}
        for name, path in documents.items():
            if not path.is_file():
                raise InputError(f"--doc {name}={path}: no such file")
            docs[name] = (name, path)
        record = {
            "case_id": case_id,
            "opened_event_id": case["opened_event_id"],
            "request_id": request_id,
            "requested_event_id": request["requested_event_id"],
            "reviewer": request["reviewer"],
            "attachments": await self._send(lead, [request["reviewer"]], case["case_number"], docs),
            "note": _text(note, "--note", required=False),
        }
        step = await self._emit(
            lead, MATERIAL_SUPPLIED_SCHEMA, Kind.MATERIAL_SUPPLIED, case_id, record
        )
        return await self._settle([step], case_id)

    async def withdraw(self, lead: str, case_id: str, reason: str) -> dict[str, Any]:
        """撤回: withdraw the application; open reviews end, later opinions change nothing."""
        case = await self._case(case_id)
        _check_lead(case, lead, "withdraw")
        _check_open(case, "it cannot be withdrawn")
        record = {
            "case_id": case_id,
            "opened_event_id": case["opened_event_id"],
            "reason": _text(reason, "--reason"),
        }
        step = await self._emit(lead, WITHDRAWN_SCHEMA, Kind.WITHDRAWN, case_id, record)
        return await self._settle([step], case_id)


async def _pending(bus: Bus, durable: str) -> bool:
    """Whether a consumer of the hub stream has events to apply (or does not exist yet)."""
    try:
        info = await jetstream(bus.nc).consumer_info(HUB_STREAM, durable)
    except nats.js.errors.NotFoundError:
        return True
    return bool(info.num_pending or info.num_ack_pending)


def _number(case_id: str) -> str:
    """A case number for the applicant: the date and the id's last six hex digits."""
    return f"SP{datetime.now(UTC):%Y%m%d}-{case_id[-6:].upper()}"


def _check_lead(case: Any, as_id: str, verb: str) -> None:
    if case["lead"] != as_id:
        raise NotLead(
            f"only the lead department {case['lead']} may {verb} case {case['case_number']}, "
            f"not {as_id}"
        )


def _check_open(case: Any, consequence: str) -> None:
    state = CaseState(case["state"])
    if state is CaseState.WITHDRAWN:
        raise CaseClosed(f"case {case['case_number']} was withdrawn; {consequence}")
    if state is CaseState.DECIDED:
        raise CaseClosed(f"case {case['case_number']} is already decided; {consequence}")
