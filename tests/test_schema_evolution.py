"""Schema evolution through the bus: for each compatibility mode, events written with one version
are read by consumers on another wherever the mode promises it, and the mode refuses what it must.

Each case registers a subject's history as akto.civil, publishes one signed event written with
each version, and reads every event back through a verifying consumer, decoding it with each
version as the reader schema (Avro schema resolution, `Schema.decode_as`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from hub.avro.compat import Mode, can_read
from hub.codec import Schema, schema_from_json
from hub.consumer import Delivery
from hub.envelope import seal
from hub.errors import SchemaError, SchemaIncompatible
from hub.runtime import Hub
from hub.topology import HUB_STREAM

DEPT = "akto.civil"
NAME = "akto.civil.v1.BenefitPaid"
SUBJECT = "evt.akto.civil.benefit_paid"

PERSON = {"name": "person_id", "type": "string"}
AMOUNT = {"name": "amount", "type": "long"}
AMOUNT_0 = {"name": "amount", "type": "long", "default": 0}
AMOUNT_D = {"name": "amount", "type": "double"}
AMOUNT_S = {"name": "amount", "type": "string"}
NOTE = {"name": "note", "type": "string", "default": ""}
NOTE_OPT = {"name": "note", "type": ["null", "string"], "default": None}
NOTE_NO_DEFAULT = {"name": "note", "type": ["string", "null"]}
NOTE_INT = {"name": "note", "type": "int"}
COUNTY = {"name": "county", "type": "string", "default": "akto"}
CHANNEL = {"name": "channel", "type": "string"}


def version(*fields: dict[str, Any]) -> Schema:
    return schema_from_json(
        {
            "type": "record",
            "name": "BenefitPaid",
            "namespace": "akto.civil.v1",
            "doc": "低保发放: a benefit payment.",
            "label_zh": "低保发放",
            "fields": [{**f, "doc": f"{f['name']}.", "label_zh": "字段"} for f in fields],
        }
    )


@dataclass(frozen=True)
class Case:
    """A subject history registered under one mode, and a next version that mode refuses."""

    mode: Mode
    history: tuple[Schema, ...]
    refused: Schema | None
    unreadable: frozenset[tuple[int, int]]  # (writer, reader) pairs resolution must fail

    def promised(self, writer: int, reader: int) -> bool:
        """Whether the mode promises that `reader` reads what `writer` wrote."""
        if writer == reader:
            return True
        adjacent = abs(writer - reader) == 1 or self.mode.transitive
        if reader > writer:
            return self.mode.backward and adjacent
        return self.mode.forward and adjacent


CASES = [
    Case(  # promotion and a defaulted field: new consumers read old events, not the reverse
        Mode.BACKWARD,
        (version(PERSON, AMOUNT), version(PERSON, AMOUNT_D, COUNTY)),
        version(PERSON, AMOUNT_D, COUNTY, CHANNEL),
        frozenset({(1, 0)}),
    ),
    Case(  # a field added without default: old consumers read new events, not the reverse
        Mode.FORWARD,
        (version(PERSON, AMOUNT), version(PERSON, AMOUNT, CHANNEL)),
        version(PERSON, AMOUNT_D, CHANNEL),
        frozenset({(0, 1)}),
    ),
    Case(  # an optional field: both directions
        Mode.FULL,
        (version(PERSON, AMOUNT), version(PERSON, AMOUNT, NOTE_OPT)),
        version(PERSON, AMOUNT, NOTE_OPT, CHANNEL),
        frozenset(),
    ),
    Case(  # anything goes, and nothing is promised
        Mode.NONE,
        (version(PERSON, AMOUNT), version(PERSON, AMOUNT_S)),
        None,
        frozenset({(0, 1), (1, 0)}),
    ),
    Case(
        Mode.BACKWARD_TRANSITIVE,
        (
            version(PERSON, AMOUNT),
            version(PERSON, AMOUNT, NOTE),
            version(PERSON, AMOUNT_D, NOTE, COUNTY),
        ),
        version(PERSON, AMOUNT_D, NOTE_NO_DEFAULT, COUNTY),  # reads v2 and v3, not v1
        frozenset({(2, 0), (2, 1)}),
    ),
    Case(
        Mode.FORWARD_TRANSITIVE,
        (
            version(PERSON, AMOUNT, NOTE),
            version(PERSON, AMOUNT),
            version(PERSON, AMOUNT, CHANNEL),
        ),
        version(PERSON, AMOUNT, CHANNEL, NOTE_INT),  # v2 and v3 read it, v1 does not
        frozenset({(0, 2), (1, 2)}),
    ),
    Case(
        Mode.FULL_TRANSITIVE,
        (
            version(PERSON, AMOUNT),
            version(PERSON, AMOUNT_0, NOTE_OPT),
            version(PERSON, AMOUNT_0, NOTE_OPT, COUNTY),
        ),
        version(PERSON, NOTE_OPT, COUNTY),  # v2 and v3 fill amount with 0, v1 cannot
        frozenset(),
    ),
]


def record(schema: Schema, index: int) -> dict[str, Any]:
    """A value for every field of a version, marked with the version's index."""
    values: dict[str, Any] = {}
    for f in schema.source["fields"]:
        name, type_ = f["name"], f["type"]
        if name == "person_id":
            values[name] = f"p{index}"
        elif type_ in ("long", "int"):
            values[name] = 100 + index
        elif type_ == "double":
            values[name] = 100.5
        else:
            values[name] = f"{name}-{index}"
    return values


async def read(hub: Hub, count: int) -> list[Delivery]:
    consumer = hub.consumer(HUB_STREAM, None, [SUBJECT])
    got: list[Delivery] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                got += await consumer.fetch_verified(256, timeout=1.0)
        for delivery in got:
            await delivery.ack()
    finally:
        await consumer.stop()
    return got


@pytest.mark.parametrize("case", CASES, ids=[c.mode.value for c in CASES])
async def test_consumers_read_events_of_other_versions_as_the_mode_promises(
    hub: Hub, case: Case
) -> None:
    registry = hub.registry
    for i, schema in enumerate(case.history):
        done = await registry.register(
            schema, as_id=DEPT, compatibility=case.mode if i == 0 else None
        )
        assert (done.version, done.compatibility) == (i + 1, case.mode.value)
    key = hub.keystore.current(DEPT)
    for i, schema in enumerate(case.history):
        await hub.publisher.publish(seal(key, SUBJECT, NAME, schema.encode(record(schema, i))))
    deliveries = await read(hub, len(case.history))

    for w, delivery in enumerate(deliveries):
        assert delivery.event is not None
        assert delivery.event.schema.fingerprint == case.history[w].fingerprint
        for r, reader in enumerate(case.history):
            if (w, r) in case.unreadable:
                assert not case.promised(w, r)
                with pytest.raises(SchemaError, match="cannot read data written with"):
                    delivery.event.schema.decode_as(delivery.envelope.body, reader)
                continue
            value = delivery.event.schema.decode_as(delivery.envelope.body, reader)
            assert value["person_id"] == f"p{w}"
            assert set(value) == {f["name"] for f in reader.source["fields"]}
            if case.promised(w, r):
                assert can_read(reader.source, case.history[w].source) == []

    if case.refused is not None:
        with pytest.raises(SchemaIncompatible):
            await registry.register(case.refused, as_id=DEPT)
        assert (await registry.subject(NAME)).versions[-1].version == len(case.history)  # type: ignore[union-attr]


async def test_a_new_consumer_sees_defaults_and_promotions_in_old_events(hub: Hub) -> None:
    old, new = version(PERSON, AMOUNT), version(PERSON, AMOUNT_D, COUNTY)
    registry = hub.registry
    await registry.register(old, as_id=DEPT)
    await hub.publish(DEPT, NAME, {"person_id": "p0", "amount": 120}, subject=SUBJECT)
    await registry.register(new, as_id=DEPT)
    [delivery] = await read(hub, 1)
    assert delivery.event is not None
    writer, value = hub.schemas.decode_as(delivery.envelope.body, new)
    assert writer.fingerprint == old.fingerprint
    assert value == {"person_id": "p0", "amount": 120.0, "county": "akto"}
    assert isinstance(value["amount"], float)


async def test_an_old_consumer_skips_fields_it_does_not_know(hub: Hub) -> None:
    old, new = version(PERSON, AMOUNT), version(PERSON, AMOUNT, CHANNEL)
    registry = hub.registry
    await registry.register(old, as_id=DEPT, compatibility=Mode.FORWARD)
    await registry.register(new, as_id=DEPT)
    await hub.publish(
        DEPT, NAME, {"person_id": "p1", "amount": 7, "channel": "web"}, subject=SUBJECT
    )
    [delivery] = await read(hub, 1)
    assert delivery.event is not None and delivery.event.schema.fingerprint == new.fingerprint
    assert delivery.event.schema.decode_as(delivery.envelope.body, old) == {
        "person_id": "p1",
        "amount": 7,
    }
