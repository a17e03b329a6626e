"""Civil affairs (民政): household-assistance decisions between a county case system and the hub.

`to_hub`: the county bureau's case system writes an outbox row (`type` = "HouseholdAssistance")
in the same transaction as each decision; its payload is the system's own JSON, in the
system's own words (程序类别 in Chinese, amounts in yuan as text). The mapping turns it into a
`gov.civil.v1.HouseholdAssistance` event; other outbox types are not for the hub and are
skipped. `from_hub`: the prefecture bureau keeps the county-wide register, one row per event
(the table sink upserts on the event id).

Native payload (akto.civil's case system):

```json
{"case_no": "AKT-2026-0417", "hh_code": "AKT-MJ-00231", "township": "木吉乡",
 "program": "低保", "action": "新增", "persons": 3, "amount_yuan": "1245.00",
 "start": "2027-01-01", "approved_at": "2026-12-20T10:30:00+08:00", "remark": null}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.plugin import Adapter, AdapterContext, Record, day, integer, moment, to_event, to_row

SCHEMA = "gov.civil.v1.HouseholdAssistance"
OUTBOX_TYPE = "HouseholdAssistance"

PROGRAMS = {"低保": "DIBAO", "特困": "TEKUN", "临时救助": "LINSHI"}
ACTIONS = {"新增": "GRANTED", "调整": "ADJUSTED", "暂停": "SUSPENDED", "停保": "ENDED"}

SAMPLE: dict[str, Any] = {
    "id": "5f0c6c1e-3f2a-4c59-9d1e-0b7c2a1d9e01",
    "aggregatetype": "case",
    "aggregateid": "AKT-2026-0417",
    "type": OUTBOX_TYPE,
    "payload": {
        "case_no": "AKT-2026-0417",
        "hh_code": "AKT-MJ-00231",
        "township": "木吉乡",
        "program": "低保",
        "action": "新增",
        "persons": 3,
        "amount_yuan": "1245.00",
        "start": "2027-01-01",
        "approved_at": "2026-12-20T10:30:00+08:00",
        "remark": None,
    },
}


def _choice(value: Any, table: Mapping[str, str], field: str) -> str:
    if value in table:
        return table[value]
    if value in table.values():
        return str(value)
    raise ValueError(f"{field} {value!r} is not one of {', '.join(table)}")


def _fen(value: Any) -> int:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"amount_yuan {value!r} is not a number") from None
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"amount_yuan {value!r} must be a non-negative amount in yuan and fen")
    return int(amount * 100)


def assistance_to_hub(record: Record, ctx: AdapterContext) -> Record | None:
    """An outbox row of the case system → a HouseholdAssistance event (other types skipped)."""
    if record.kind != OUTBOX_TYPE:
        return None
    payload = record.value["payload"]
    if not isinstance(payload, Mapping):
        raise ValueError("the outbox payload is not a JSON object")
    value = {
        "case_id": str(payload["case_no"]),
        "household_id": str(payload["hh_code"]),
        "township": str(payload["township"]),
        "program": _choice(payload["program"], PROGRAMS, "program"),
        "action": _choice(payload["action"], ACTIONS, "action"),
        "members": integer(payload["persons"], "persons"),
        "monthly_amount_fen": _fen(payload["amount_yuan"]),
        "effective_from": day(payload["start"], "start"),
        "decided_at": moment(payload["approved_at"], "approved_at"),
        "note": payload.get("remark"),
    }
    return to_event(record, SCHEMA, value)


def assistance_from_hub(event: Record, ctx: AdapterContext) -> Record | None:
    """A HouseholdAssistance event → a row of the prefecture's register."""
    if event.kind != SCHEMA:
        return None
    v = event.value
    row = {
        "source": event.headers.get("source", ""),
        "case_id": v["case_id"],
        "household_id": v["household_id"],
        "township": v["township"],
        "program": v["program"],
        "action": v["action"],
        "members": v["members"],
        "monthly_amount_fen": v["monthly_amount_fen"],
        "effective_from": v["effective_from"],
        "decided_at": v["decided_at"],
    }
    return to_row(event, row)


REGISTER_DDL = """
CREATE TABLE IF NOT EXISTS household_assistance (
    event_id text PRIMARY KEY,
    source text NOT NULL,
    case_id text NOT NULL,
    household_id text NOT NULL,
    township text NOT NULL,
    program text NOT NULL,
    action text NOT NULL,
    members int NOT NULL,
    monthly_amount_fen bigint NOT NULL,
    effective_from date NOT NULL,
    decided_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
"""The prefecture register's table (the from_hub side writes into it)."""

ADAPTER = Adapter(
    name="civil_assistance",
    description="民政 household assistance: case-system outbox → events; events → register",
    to_hub=assistance_to_hub,
    from_hub=assistance_from_hub,
    schemas=(SCHEMA,),
    sample=SAMPLE,
    subjects=("evt.*.civil.household_assistance",),
)
