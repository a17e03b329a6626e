"""A version is the whole schema, not its fingerprint: histories in every mode, real events.

The fingerprint leaves out defaults, aliases, enum defaults, docs and logical-type attributes.
Each family below is a two- or three-version history whose versions differ in exactly such
attributes (sometimes together with a change the fingerprint does see). For every mode it is
registered as akto.civil against real PostgreSQL and NATS, with the verdict and `created` of
each step asserted; then one signed event per registered version goes through the bus, and a
receiver (its own cache, kept by a SchemaWatch) decodes each one with every version as reader.
All cases share one hub: a NATS server per case would make this slow for nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from hub.avro.compat import Mode
from hub.avro.identity import normalized_form, wire_differences
from hub.codec import SchemaCache, schema_from_json
from hub.db import migrations
from hub.envelope import Envelope, seal
from hub.errors import SchemaError, SchemaIncompatible, SchemaIndistinguishable
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from hub.schema.registry import SchemaRegistry
from hub.schema.watch import SCHEMAS_BUCKET, SchemaWatch, schema_key, subject_key
from hub.topology import HUB_STREAM
from schemas import SCHEMA_DIR
from tests.servers import NatsServer

DEPT = "akto.civil"
SUBJECT = "evt.akto.civil.versions"
MODES = [
    Mode.NONE,
    Mode.BACKWARD,
    Mode.BACKWARD_TRANSITIVE,
    Mode.FORWARD,
    Mode.FORWARD_TRANSITIVE,
    Mode.FULL,
    Mode.FULL_TRANSITIVE,
]


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{name}.", "label_zh": "字段", **extra}


def dec(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def status(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "doc": "状态.", "symbols": list(symbols), **extra}


def digest_type(size: int) -> dict[str, Any]:
    return {"type": "fixed", "name": "Digest", "doc": "摘要.", "size": size}


ID = f("id", "long")
NOTE = f("note", "string")
NOTE_D = f("note", "string", default="")
OPTIONAL = f("remark", ["null", "string"], default=None)
TS_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
TS_MICROS = {"type": "long", "logicalType": "timestamp-micros"}
DATE = {"type": "int", "logicalType": "date"}


@dataclass(frozen=True)
class Family:
    """A history and, per mode, the verdict on each version after the first.

    One character per step: `+` a new version, `x` refused as incompatible under the mode,
    `w` refused because the fingerprint cannot tell it from a registered schema, a digit: the
    same schema as that version, which is returned (`created: false`).
    """

    id: str
    versions: tuple[tuple[dict[str, Any], ...], ...]
    verdicts: dict[Mode, str]
    cross_reads_fail: bool = False  # Avro resolution itself refuses reading across versions

    def steps(self, mode: Mode) -> str:
        return self.verdicts.get(mode, self.verdicts.get(Mode.NONE, ""))


def every(verdict: str) -> dict[Mode, str]:
    return {mode: verdict for mode in MODES}


def by_mode(none: str, b: str, bt: str, fw: str, ft: str, full: str, fullt: str) -> dict[Mode, str]:
    return dict(zip(MODES, (none, b, bt, fw, ft, full, fullt), strict=True))


FAMILIES = [
    Family(  # v2 adds a default (same fingerprint); v3 drops the field, which v2 lets old
        # consumers fill: FORWARD must accept (v1 alone would refuse), FORWARD_TRANSITIVE not
        "DefaultAddedThenFieldRemoved",
        ((ID, NOTE), (ID, NOTE_D), (ID,)),
        by_mode("++", "++", "++", "++", "+x", "++", "+x"),
    ),
    Family(  # v2 drops the default (same fingerprint); every forward mode must now refuse v3
        "DefaultRemovedThenFieldRemoved",
        ((ID, NOTE_D), (ID, NOTE), (ID,)),
        by_mode("++", "++", "++", "+x", "+x", "+x", "+x"),
    ),
    Family(  # v3 is v2 without its default: a new version, refused where v1 must be read
        "NewFieldThenDefaultDropped",
        ((ID,), (ID, NOTE_D), (ID, NOTE)),
        by_mode("++", "++", "+x", "++", "++", "++", "+x"),
    ),
    Family(  # v2 gives amount the alias total (same fingerprint): v2 consumers read v3
        "AliasThenRename",
        (
            (ID, f("amount", "long")),
            (ID, f("amount", "long", aliases=["total"])),
            (ID, f("total", "long")),
        ),
        by_mode("++", "+x", "+x", "++", "+x", "+x", "+x"),
    ),
    Family(  # v2 gives the enum a default (same fingerprint): v2 consumers read symbol C
        "EnumDefaultThenNewSymbol",
        (
            (ID, f("status", status("A", "B"))),
            (ID, f("status", status("A", "B", default="A"))),
            (ID, f("status", status("A", "B", "C", default="A"))),
        ),
        by_mode("++", "++", "++", "++", "+x", "++", "+x"),
    ),
    Family(  # only docs differ: a new version everywhere; the first one sent again is version 1
        "DocChanged",
        (
            (ID, f("amount", "long")),
            (ID, f("amount", "long", doc="金额 in fen.")),
            (ID, f("amount", "long")),
        ),
        every("+1"),
    ),
    Family(
        "DecimalScale", ((ID, f("amount", dec(12, 2))), (ID, f("amount", dec(12, 3)))), every("w")
    ),
    Family(
        "DecimalPrecision",
        ((ID, f("amount", dec(12, 2))), (ID, f("amount", dec(14, 2)))),
        every("w"),
    ),
    Family(  # the same scale change with another change: a new fingerprint, so the modes decide
        "DecimalScaleWithNewField",
        ((ID, f("amount", dec(12, 2))), (ID, f("amount", dec(12, 3)), OPTIONAL)),
        by_mode("+", "x", "x", "x", "x", "x", "x"),
        cross_reads_fail=True,
    ),
    Family("TimestampUnit", ((ID, f("at", TS_MILLIS)), (ID, f("at", TS_MICROS))), every("w")),
    Family("DateAdded", ((ID, f("day", "int")), (ID, f("day", DATE))), every("w")),
    Family("TimestampDropped", ((ID, f("at", TS_MILLIS)), (ID, f("at", "long"))), every("w")),
    Family(
        "TimestampUnitWithNewField",
        ((ID, f("at", TS_MILLIS)), (ID, f("at", TS_MICROS), OPTIONAL)),
        by_mode("+", "x", "x", "x", "x", "x", "x"),
    ),
    Family(
        "FixedSize",
        ((ID, f("sum", digest_type(16))), (ID, f("sum", digest_type(32)))),
        by_mode("+", "x", "x", "x", "x", "x", "x"),
        cross_reads_fail=True,
    ),
]


def record_schema(name: str, fields: tuple[dict[str, Any], ...]) -> Any:
    return {
        "type": "record",
        "name": name,
        "namespace": "akto.civil.v1",
        "doc": "测试: a test event.",
        "label_zh": "测试",
        "fields": list(fields),
    }


def value_for(type_: Any, version: int) -> Any:
    """A value of a field type, different per version (an enum writes its last symbol)."""
    if isinstance(type_, list):
        return f"r{version}"
    if isinstance(type_, dict):
        logical = type_.get("logicalType")
        if logical == "decimal":
            return Decimal(1234 + version).scaleb(-type_["scale"])
        if logical == "timestamp-millis":
            return dt.datetime(2026, 1, 2, 3, 4, 5, 123000 + version * 1000, tzinfo=dt.UTC)
        if logical == "timestamp-micros":
            return dt.datetime(2026, 1, 2, 3, 4, 5, 123456 + version, tzinfo=dt.UTC)
        if logical == "date":
            return dt.date(2026, 1, 2 + version)
        if type_["type"] == "enum":
            return type_["symbols"][-1]
        if type_["type"] == "fixed":
            return bytes([version]) * type_["size"]
        return value_for(type_["type"], version)
    return {"long": 1000 + version, "int": 19000 + version, "string": f"s{version}"}[type_]


UNREADABLE = object()


def expected(
    reader: tuple[dict[str, Any], ...], writer: tuple[dict[str, Any], ...], written: dict[str, Any]
) -> Any:
    """What Avro resolution gives a reader of `written`, or UNREADABLE (these cases only)."""
    names = {w["name"] for w in writer}
    out: dict[str, Any] = {}
    for field in reader:
        source = next((n for n in (field["name"], *field.get("aliases", [])) if n in names), None)
        if source is None:
            if "default" not in field:
                return UNREADABLE
            out[field["name"]] = field["default"]
            continue
        value = written[source]
        type_ = field["type"]
        if isinstance(type_, dict) and type_["type"] == "enum" and value not in type_["symbols"]:
            if "default" not in type_:
                return UNREADABLE
            value = type_["default"]
        out[field["name"]] = value
    return out


def promised(mode: Mode, writer: int, reader: int) -> bool:
    """Whether the mode promises that consumers on `reader` read events of `writer`."""
    if writer == reader:
        return True
    adjacent = abs(writer - reader) == 1 or mode.transitive
    return adjacent and (mode.backward if reader > writer else mode.forward)


@dataclass
class Registered:
    family: Family
    mode: Mode
    name: str
    history: list[tuple[dict[str, Any], ...]]  # the field lists of the registered versions


async def register_family(
    registry: SchemaRegistry, family: Family, mode: Mode
) -> tuple[Registered, list[str]]:
    """Register a family's history under a mode; returns it and every mismatch with the table."""
    name = f"{family.id}{mode.value.title().replace('_', '')}"
    full = f"akto.civil.v1.{name}"
    case = Registered(family, mode, full, [])
    wrong: list[str] = []
    verdicts = family.steps(mode)
    for step, fields in enumerate(family.versions):
        schema = schema_from_json(record_schema(name, fields))
        want = "+" if step == 0 else verdicts[step - 1]
        where = f"{family.id} {mode.value} v{step + 1}"
        try:
            done = await registry.register(
                schema, as_id=DEPT, compatibility=mode if step == 0 else None
            )
        except SchemaIndistinguishable as exc:
            if want != "w":
                wrong.append(f"{where}: refused as indistinguishable, expected {want}: {exc}")
            continue
        except SchemaIncompatible as exc:
            if want != "x":
                wrong.append(f"{where}: refused, expected {want}: {exc} {exc.reasons}")
            continue
        if want == "+":
            if not done.created or done.version != len(case.history) + 1:
                wrong.append(f"{where}: got version {done.version} created={done.created}")
            case.history.append(fields)
        elif want.isdigit():
            if done.created or done.version != int(want):
                wrong.append(f"{where}: got version {done.version} created={done.created}")
        else:
            wrong.append(f"{where}: registered as version {done.version}, expected {want}")
        # never a success that keeps another schema than the one sent
        kept = (await registry.history(full))[done.version - 1][1]
        if schema_from_json(kept).digest != schema.digest:
            wrong.append(f"{where}: version {done.version} keeps another schema than the one sent")
    return case, wrong


async def test_histories_in_every_mode_get_their_verdict_and_readers_decode_every_pair(
    hub: Hub,
) -> None:
    registry = hub.registry
    cases: list[Registered] = []
    wrong: list[str] = []
    for family in FAMILIES:
        for mode in MODES:
            case, mismatches = await register_family(registry, family, mode)
            cases.append(case)
            wrong += mismatches
    assert wrong == []

    # one signed event per registered version, through the bus
    key = hub.keystore.current(DEPT)
    sent: dict[str, tuple[Registered, int, dict[str, Any]]] = {}
    envs: list[Envelope] = []
    for case in cases:
        for w, fields in enumerate(case.history):
            schema = schema_from_json(record_schema(case.name.rpartition(".")[2], fields))
            record = {field["name"]: value_for(field["type"], w) for field in fields}
            env = seal(key, SUBJECT, case.name, schema.encode(record))
            envs.append(env)
            sent[env.event_id] = (case, w, record)
    await hub.publisher.publish_many(envs)

    receiver = SchemaCache.from_directory(SCHEMA_DIR)
    nc = await nats.connect(hub.nats_url)
    watch = SchemaWatch(receiver)
    try:
        await watch.watch(nc.jetstream())
        for case in cases:  # what publishers write with is the latest version itself
            latest = schema_from_json(record_schema(case.name.rpartition(".")[2], case.history[-1]))
            assert receiver.by_name(case.name).digest == latest.digest, case.name
        consumer = hub.consumer(HUB_STREAM, None, [SUBJECT])
        got = []
        try:
            async with asyncio.timeout(60):
                while len(got) < len(envs):
                    got += await consumer.fetch_verified(256, timeout=1.0)
        finally:
            await consumer.stop()
        for delivery in got:
            case, w, written = sent[delivery.envelope.event_id]
            short = case.name.rpartition(".")[2]
            for r, reader_fields in enumerate(case.history):
                reader = schema_from_json(record_schema(short, reader_fields))
                want = expected(reader_fields, case.history[w], written)
                where = f"{case.name} v{w + 1} read as v{r + 1}"
                try:
                    _, value = receiver.decode_as(delivery.envelope.body, reader)
                except SchemaError:
                    if promised(case.mode, w, r) or (
                        want is not UNREADABLE and not case.family.cross_reads_fail
                    ):
                        wrong.append(f"{where}: refused")
                    continue
                if want is UNREADABLE or (case.family.cross_reads_fail and w != r):
                    wrong.append(f"{where}: read {value}, which resolution must refuse")
                elif value != want:
                    wrong.append(f"{where}: read {value}, expected {want}")
    finally:
        await watch.stop()
        await nc.close()
    assert wrong == []


# --- what identifies a version -------------------------------------------------------------------


def test_the_normalized_form_ignores_spelling_but_keeps_every_attribute() -> None:
    base = record_schema("Payment", (ID, f("amount", dec(12, 2)), f("s", status("A"))))
    respelled = {  # full names, no namespace, {"type": "long"} for "long", keys reordered
        "fields": [
            {**f("id", "long"), "type": {"type": "long"}},
            f("amount", dec(12, 2)),
            f("s", {**status("A"), "name": "akto.civil.v1.Status"}),
        ],
        "label_zh": "测试",
        "doc": "测试: a test event.",
        "name": "akto.civil.v1.Payment",
        "type": "record",
    }
    assert normalized_form(respelled) == normalized_form(base)
    assert schema_from_json(respelled).digest == schema_from_json(base).digest
    changes = [
        (ID, f("amount", dec(12, 3)), f("s", status("A"))),
        (ID, f("amount", dec(12, 2), default="\u0000"), f("s", status("A"))),
        (ID, f("amount", dec(12, 2), aliases=["sum"]), f("s", status("A"))),
        (ID, f("amount", dec(12, 2)), f("s", status("A", default="A"))),
        (ID, f("amount", dec(12, 2), doc="金额."), f("s", status("A"))),
    ]
    digests = {schema_from_json(record_schema("Payment", c)).digest for c in changes}
    assert len(digests | {schema_from_json(base).digest}) == len(changes) + 1
    fingerprints = {schema_from_json(record_schema("Payment", c)).fingerprint for c in changes}
    assert fingerprints == {schema_from_json(base).fingerprint}  # which the wire cannot see


def test_wire_differences_name_each_logical_attribute_and_ignore_what_readers_use() -> None:
    def diffs(a: Any, b: Any) -> list[str]:
        return [str(d) for d in wire_differences(record_schema("P", a), record_schema("P", b))]

    assert diffs((ID, f("amount", dec(14, 2))), (ID, f("amount", dec(12, 2)))) == [
        "fields[1].type (field amount): decimal precision 14 in the new schema, precision 12 "
        "in the registered one"
    ]
    assert diffs(
        (f("at", TS_MICROS), f("d", ["null", DATE])), (f("at", TS_MILLIS), f("d", ["null", "int"]))
    ) == [
        "fields[0].type (field at): logicalType timestamp-micros in the new schema, "
        "timestamp-millis in the registered one",
        "fields[1].type[1] (field d): logicalType date in the new schema, absent in the "
        "registered one",
    ]
    assert (
        diffs(
            (ID, NOTE_D, f("amount", dec(12, 2), aliases=["x"])),
            (ID, NOTE, f("amount", dec(12, 2))),
        )
        == []
    )


# --- the refusal a department sees --------------------------------------------------------------


async def test_a_decimal_scale_change_under_one_fingerprint_is_refused_with_the_fix(
    hub: Hub,
) -> None:
    registry = hub.registry
    name = "Payment"
    first = await registry.register(
        schema_from_json(record_schema(name, (ID, f("amount", dec(12, 2))))), as_id=DEPT
    )
    rescaled = schema_from_json(record_schema(name, (ID, f("amount", dec(12, 3)))))
    assert rescaled.fingerprint_hex == first.fingerprint
    for mode in (None, Mode.NONE):
        with pytest.raises(SchemaIndistinguishable) as caught:
            await registry.register(rescaled, as_id=DEPT, compatibility=mode)
        message = str(caught.value)
        assert "fields[1].type (field amount)" in message
        assert "decimal scale 3" in message and "scale 2" in message
        assert f"version 1 of akto.civil.v1.{name}" in message
        assert "add a new field" in message and "akto.civil.v2.Payment" in message
        assert message.count(". ") == 0  # one sentence
    subject = await registry.subject(f"akto.civil.v1.{name}")
    assert subject is not None and subject.compatibility == "BACKWARD"
    assert [v.version for v in subject.versions] == [1]


async def test_the_fingerprint_check_spans_subjects(hub: Hub) -> None:
    # A receiver finds the writer by fingerprint alone, whatever subject registered it.
    registry = hub.registry
    await registry.register(
        schema_from_json(record_schema("Payment", (ID, f("at", TS_MILLIS)))), as_id=DEPT
    )
    with pytest.raises(
        SchemaIndistinguishable, match="logicalType timestamp-micros in the new schema"
    ):
        await registry.register(
            schema_from_json(record_schema("Payment", (ID, f("at", TS_MICROS)))),
            as_id=DEPT,
            subject="akto.civil.payments",
        )
    assert await registry.subject("akto.civil.payments") is None


async def test_a_version_that_only_adds_a_default_is_a_new_version_with_its_own_schema(
    hub: Hub,
) -> None:
    registry = hub.registry
    name = "akto.civil.v1.Payment"
    v1 = schema_from_json(record_schema("Payment", (ID, NOTE)))
    v2 = schema_from_json(record_schema("Payment", (ID, NOTE_D)))
    assert v1.fingerprint == v2.fingerprint and v1.digest != v2.digest
    await registry.register(v1, as_id=DEPT)
    done = await registry.register(v2, as_id=DEPT)
    assert (done.version, done.created, done.digest) == (2, True, v2.digest)
    history = await registry.history(name)
    assert [js["fields"][1].get("default") for _, js in history] == [None, ""]
    assert [v.digest for v, _ in history] == [v1.digest, v2.digest]
    # every version of the subject a body's fingerprint names, each with its own schema
    versions = await registry.versions_of(v1.fingerprint)
    assert [(v.subject, v.version, v.digest) for v in versions] == [
        (name, 1, v1.digest),
        (name, 2, v2.digest),
    ]
    # publishers write with version 2 itself: its default fills the missing note
    env, _ = await hub.publish(DEPT, name, {"id": 7})
    _, value = hub.schemas.decode(env.body)
    assert value == {"id": 7, "note": ""}


async def test_a_receiver_takes_the_latest_versions_own_schema_from_the_bucket(hub: Hub) -> None:
    registry = hub.registry
    v1 = schema_from_json(record_schema("Payment", (ID, f("note", "string", default="a"))))
    v2 = schema_from_json(record_schema("Payment", (ID, f("note", "string", default="b"))))
    receiver = SchemaCache.from_directory(SCHEMA_DIR)
    nc = await nats.connect(hub.nats_url)
    watch = SchemaWatch(receiver)
    try:
        await watch.watch(nc.jetstream())
        await registry.register(v1, as_id=DEPT)
        await registry.register(v2, as_id=DEPT)
        await watch.wait_for(lambda: receiver.by_name(v2.name).digest == v2.digest)
        assert receiver.by_fingerprint(v1.fingerprint) is not None
        assert receiver.by_name(v2.name).encode({"id": 1}) == v2.encode({"id": 1, "note": "b"})
    finally:
        await watch.stop()
        await nc.close()


async def test_a_forged_version_entry_in_the_bucket_is_ignored(hub: Hub) -> None:
    registry = hub.registry
    v1 = schema_from_json(record_schema("Payment", (ID, f("amount", dec(12, 2)))))
    await registry.register(v1, as_id=DEPT)
    kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
    # a scale-3 schema stored under v1's digest would make publishers write 1.234 as 12.34
    forged = schema_from_json(record_schema("Payment", (ID, f("amount", dec(12, 3)))))
    doc = {"digest": v1.digest, "fingerprint": v1.fingerprint_hex, "schema": forged.source}
    await kv.put(schema_key(v1.digest), json.dumps(doc).encode())
    receiver = SchemaCache.from_directory(SCHEMA_DIR)
    nc = await nats.connect(hub.nats_url)
    watch = SchemaWatch(receiver)
    try:
        await watch.watch(nc.jetstream())
        assert receiver.by_name(v1.name).digest == v1.digest
    finally:
        await watch.stop()
        await nc.close()


# --- departments already registered ---------------------------------------------------------------


async def test_an_existing_registry_is_migrated_and_its_next_version_is_checked_against_it(
    nats_server: NatsServer, pg_dsn: str, tmp_path: Path
) -> None:
    hub_settings = Settings(home=Home(tmp_path / "home"), nats_url=nats_server.url, pg_dsn=pg_dsn)
    # A database as the previous release left it: migrations up to 005, one version stored.
    v1 = schema_from_json(record_schema("Payment", (ID, NOTE_D)))
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version <= 5:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, name)
        text = json.dumps(v1.source, ensure_ascii=False, separators=(",", ":"))
        await conn.execute(
            "INSERT INTO schema_subjects VALUES ($1, $2, 'FORWARD', now(), now())", v1.name, DEPT
        )
        await conn.execute(
            "INSERT INTO schemas VALUES ($1, $2, $3, $4, $5, now())",
            v1.fingerprint,
            v1.name,
            v1.canonical,
            text,
            DEPT,
        )
        await conn.execute(
            "INSERT INTO schema_versions VALUES ($1, 1, $2, $3, now(), 'old-event')",
            v1.name,
            v1.fingerprint,
            DEPT,
        )
    finally:
        await conn.close()

    async with open_hub(hub_settings) as hub:
        registry = hub.registry
        [(version, stored)] = await registry.history(v1.name)
        assert (version.version, version.digest, stored) == (1, v1.digest, v1.source)
        # the bucket, empty here as after an upgrade, got the version's own schema too
        assert json.loads(await kv_value(hub, schema_key(v1.digest)))["digest"] == v1.digest
        without_default = schema_from_json(record_schema("Payment", (ID, NOTE)))
        done = await registry.register(without_default, as_id=DEPT)
        assert (done.version, done.created) == (2, True)
        with pytest.raises(SchemaIncompatible) as caught:
            await registry.register(schema_from_json(record_schema("Payment", (ID,))), as_id=DEPT)
        [reason] = caught.value.reasons
        assert reason.startswith("fields[1] (field note): reader (version 2, the latest) expects")


async def test_a_bucket_written_by_the_previous_release_is_rewritten_with_version_entries(
    hub_settings: Settings,
) -> None:
    v1 = schema_from_json(record_schema("Payment", (ID, NOTE_D)))
    async with open_hub(hub_settings) as hub:
        await hub.registry.register(v1, as_id=DEPT)
        kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
        # what the previous release wrote: no digest in the subject, no version entry
        subject = json.loads(await kv_value(hub, subject_key(v1.name)))
        for version in subject["versions"]:
            del version["digest"]
        await kv.put(subject_key(v1.name), json.dumps(subject).encode())
        await kv.delete(schema_key(v1.digest))
    async with open_hub(hub_settings) as hub:
        assert hub.schemas.by_name(v1.name).digest == v1.digest
        assert json.loads(await kv_value(hub, subject_key(v1.name)))["versions"][0]["digest"] == (
            v1.digest
        )
        assert await kv_value(hub, schema_key(v1.digest)) is not None


async def kv_value(hub: Hub, key: str) -> bytes | None:
    kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
    try:
        return (await kv.get(key)).value
    except nats.js.errors.KeyNotFoundError:
        return None
