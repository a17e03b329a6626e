"""Demo chapter: a county department evolves its own event type through the schema registry.

Akto county's civil-affairs bureau registers `akto.civil.v1.BenefitPaid` (signed, as itself),
publishes a payment, adds an optional field (version 2, BACKWARD compatible) and publishes
another; a breaking change and a registration by another county's bureau are refused with
their reasons. The prefecture's civil-affairs bureau, on version 2, reads both payments; the
prefecture finance bureau, still on version 1, reads both as well.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.codec import Schema, schema_from_json
from hub.demo import Chapter, Story
from hub.display import line
from hub.envelope import seal
from hub.errors import RegistryError, SchemaIncompatible
from hub.runtime import Hub
from hub.topology import HUB_STREAM

OWNER = "akto.civil"
NAME = "akto.civil.v1.BenefitPaid"
SUBJECT = "evt.akto.civil.benefit_paid"


def _field(name: str, type_: Any, label: str, doc: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{label}: {doc}", "label_zh": label, **extra}


def benefit_paid(*extra: dict[str, Any], amount_type: str = "long") -> Schema:
    """A version of the county's own event type (department-owned, so not in `schemas/`)."""
    return schema_from_json(
        {
            "type": "record",
            "name": "BenefitPaid",
            "namespace": "akto.civil.v1",
            "doc": "低保金发放: a minimum-living-allowance payment made by Akto county.",
            "label_zh": "低保金发放",
            "fields": [
                _field("household_id", "string", "户编号", "the household's case number."),
                _field("amount_fen", amount_type, "发放金额（分）", "amount paid, in fen."),
                _field("township", "string", "乡镇", "township of the household."),
                *extra,
            ],
        }
    )


V1 = benefit_paid()
V2 = benefit_paid(
    _field("channel", ["null", "string"], "发放渠道", "bank or cash, if recorded.", default=None)
)
BREAKING = benefit_paid(amount_type="string")
PAYMENTS = [
    (V1, {"household_id": "AKT-2026-0117", "amount_fen": 53_000, "township": "奥依塔克镇"}),
    (
        V2,
        {
            "household_id": "AKT-2026-0342",
            "amount_fen": 48_500,
            "township": "布伦口乡",
            "channel": "农村信用社",
        },
    ),
]
READERS = {"pref.civil": V2, "pref.finance": V1}


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Register, evolve, get refused twice, publish with both versions, read with both."""
    registry = hub.registry
    registered = []
    key = hub.keystore.current(OWNER)
    envs = []
    for schema, record in PAYMENTS:
        done = await registry.register(schema, as_id=OWNER)
        registered.append(done.to_json())
        envs.append(seal(key, SUBJECT, NAME, schema.encode(record)))
    await hub.publisher.publish_many(envs)
    refusals = []
    try:
        await registry.register(BREAKING, as_id=OWNER)
    except SchemaIncompatible as exc:
        refusals.append({"who": OWNER, "error": str(exc), "reasons": list(exc.reasons)})
    try:
        await registry.register(V2, as_id="artux.civil")
    except RegistryError as exc:
        refusals.append({"who": "artux.civil", "error": str(exc), "reasons": []})
    wanted = {env.event_id for env in envs}
    deliveries = await _read(hub, wanted)
    reads: dict[str, list[dict[str, Any]]] = {}
    for reader, schema in READERS.items():
        reads[reader] = [
            {
                "written_with": d.event.schema.fingerprint_hex,
                "record": d.event.schema.decode_as(d.envelope.body, schema),
            }
            for d in deliveries
            if d.event is not None
        ]
    return {
        "subject": NAME,
        "registered": registered,
        "refused": refusals,
        "reader_versions": {
            r: next(x["version"] for x in registered if x["fingerprint"] == s.fingerprint_hex)
            for r, s in READERS.items()
        },
        "reads": reads,
    }


async def _read(hub: Hub, wanted: set[str]) -> list[Any]:
    consumer = hub.consumer(HUB_STREAM, None, [SUBJECT])
    found: dict[str, Any] = {}
    try:
        async with asyncio.timeout(30):
            while set(found) != wanted:
                for delivery in await consumer.fetch_verified(256, timeout=0.5):
                    await delivery.ack()
                    if delivery.envelope.event_id in wanted:
                        found[delivery.envelope.event_id] = delivery
    finally:
        await consumer.stop()
    return sorted(found.values(), key=lambda d: d.seq)


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    console.print(
        f"Akto county's civil-affairs bureau owns its event type {facts['subject']} "
        "(低保金发放) and registers each version itself, as a signed event:"
    )
    table = Table("version", "fingerprint", "mode", "registered by", "new")
    for r in facts["registered"]:
        new = "yes" if r["created"] else "already registered"
        table.add_row(
            str(r["version"]), r["fingerprint"], r["compatibility"], r["registered_by"], new
        )
    console.print(table)
    console.print("The registry refuses what would break readers, and other units' subjects:")
    for refusal in facts["refused"]:
        console.print(line("  ", ("✗", "red"), f" {refusal['who']}: {refusal['error']}"))
        for reason in refusal["reasons"]:
            console.print(f"      {reason}")
    console.print("Consumers on either version read payments written with both:")
    reads = Table("reader", "reads with", "household", "amount (fen)", "channel (v2 field)")
    for reader, rows in facts["reads"].items():
        for row in rows:
            record = row["record"]
            channel = record.get("channel", "— (not in its version)")
            reads.add_row(
                reader,
                f"version {facts['reader_versions'][reader]}",
                record["household_id"],
                str(record["amount_fen"]),
                "null (the default)" if channel is None else channel,
            )
    console.print(reads)


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    versions = max(r["version"] for r in facts["registered"])
    return [
        (f"schema versions of {facts['subject']}", str(versions)),
        ("schema registrations refused", str(len(facts["refused"]))),
        ("events read across versions", str(sum(len(r) for r in facts["reads"].values()))),
    ]


CHAPTER = Chapter(
    name="schemas",
    title="A county evolves its own event type without breaking readers (数据模式演进)",
    run=run,
    render=render,
    summary=summary,
)
