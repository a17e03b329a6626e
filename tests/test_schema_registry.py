"""Schema registry: record, bucket, watched caches, signed registrations, ownership, bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest

from hub.avro.compat import Mode
from hub.bus import Publisher
from hub.codec import Schema, SchemaCache, schema_from_json
from hub.consumer import Delivery
from hub.errors import PublishError, RegistryError, SchemaError, SchemaIncompatible
from hub.home import Settings
from hub.runtime import Hub, open_hub
from hub.schema.registry import (
    MAX_SCHEMA_BYTES,
    REGISTERED_SCHEMA,
    SchemaRegistry,
    may_register,
    owner_of,
)
from hub.schema.watch import SCHEMAS_BUCKET, RegisteredSchema, SchemaWatch, fp_key, subject_key
from hub.topology import HUB_STREAM
from schemas import SCHEMA_DIR
from tests.servers import NatsServer

DEPT = "akto.civil"
NAME = "akto.civil.v1.BenefitPaid"


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"{name}.", "label_zh": "字段", **extra}


def benefit(*fields: dict[str, Any], name: str = NAME) -> Schema:
    ns, _, short = name.rpartition(".")
    return schema_from_json(
        {
            "type": "record",
            "name": short,
            "namespace": ns,
            "doc": "低保发放: a benefit payment.",
            "label_zh": "低保发放",
            "fields": list(fields),
        }
    )


V1 = benefit(fld("person_id", "string"), fld("amount", "long"))
V2 = benefit(fld("person_id", "string"), fld("amount", "long"), fld("note", "string", default=""))


async def admin_events(hub: Hub) -> dict[str, int]:
    """How many events each administrative subject holds."""
    info = await hub.nc.jetstream().stream_info(HUB_STREAM, subjects_filter="adm.>")
    return dict(info.state.subjects or {})


async def read(hub: Hub, subject: str, count: int) -> list[Delivery]:
    """The first `count` events on a subject, verified."""
    consumer = hub.consumer(HUB_STREAM, None, [subject])
    got: list[Delivery] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                for delivery in await consumer.fetch(256, timeout=1.0):
                    await delivery.ack()
                    got.append(delivery)
    finally:
        await consumer.stop()
    return got


async def kv_value(hub: Hub, key: str) -> bytes | None:
    kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
    try:
        return (await kv.get(key)).value
    except nats.js.errors.KeyNotFoundError:
        return None


async def kv_doc(hub: Hub, key: str) -> bytes:
    value = await kv_value(hub, key)
    assert value is not None, f"{key} is not in the bucket"
    return value


async def versions_in_record(hub: Hub, subject: str) -> list[int]:
    rows = await hub.pool.fetch(
        "SELECT version FROM schema_versions WHERE subject = $1 ORDER BY version", subject
    )
    return [r["version"] for r in rows]


# --- bootstrap, record and bucket ----------------------------------------------------------------


async def test_shipped_schemas_are_registered_by_the_operator_once(hub_settings: Settings) -> None:
    async with open_hub(hub_settings) as hub:
        subjects = {s.subject: s for s in await hub.registry.subjects()}
        shipped = SchemaCache.from_directory(SCHEMA_DIR)
        assert set(shipped.names()) <= set(subjects)
        for name in shipped.names():
            [version] = subjects[name].versions
            assert version.fingerprint == shipped.by_name(name).fingerprint_hex
            assert version.registered_by == hub.scenario.operator
            assert subjects[name].compatibility == "BACKWARD"
        events = await admin_events(hub)
    async with open_hub(hub_settings) as hub:
        assert await admin_events(hub) == events  # opening again registers nothing


async def test_a_registration_writes_the_record_the_bucket_and_a_signed_event(hub: Hub) -> None:
    registration = await hub.registry.register(V1, as_id=DEPT)
    assert (registration.subject, registration.version, registration.created) == (NAME, 1, True)
    assert registration.registered_by == DEPT
    assert await versions_in_record(hub, NAME) == [1]
    stored = RegisteredSchema.from_json(json.loads(await kv_doc(hub, fp_key(V1.fingerprint_hex))))
    assert stored.parse().fingerprint == V1.fingerprint
    subject = json.loads(await kv_doc(hub, subject_key(NAME)))
    assert subject["owner"] == DEPT and subject["versions"][0]["fingerprint"] == V1.fingerprint_hex

    [delivery] = await read(hub, f"adm.{DEPT}.schema", 1)
    assert delivery.event is not None, delivery.rejection
    assert delivery.event.sender.id == DEPT
    assert delivery.event.schema.name == REGISTERED_SCHEMA
    record = delivery.event.record
    assert (record["subject"], record["version"], record["fingerprint"]) == (
        NAME,
        1,
        V1.fingerprint_hex,
    )
    assert record["compatibility"] == "BACKWARD"
    assert delivery.envelope.event_id in registration.event_ids
    # the audit log alone shows what was registered: the event carries the whole schema
    assert schema_from_json(json.loads(record["schema_json"])).fingerprint == V1.fingerprint


async def test_publishers_write_with_the_latest_registered_version(hub: Hub) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT)
    await registry.register(V2, as_id=DEPT)
    env, _ = await hub.publish(DEPT, NAME, {"person_id": "p1", "amount": 5, "note": "n"})
    assert env.body[2:10] == V2.fingerprint


async def test_a_duplicate_registration_returns_the_same_version_and_adds_nothing(
    hub: Hub,
) -> None:
    registry = hub.registry
    first = await registry.register(V1, as_id=DEPT)
    await registry.register(V2, as_id=DEPT)
    before = await admin_events(hub)
    again = await registry.register(V1, as_id=DEPT)
    assert (again.version, again.created, again.event_ids) == (1, False, ())
    assert again.registered_at == first.registered_at
    assert await versions_in_record(hub, NAME) == [1, 2]
    assert await admin_events(hub) == before


async def test_the_same_schema_under_a_second_subject_reuses_its_fingerprint_entry(
    hub: Hub,
) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT)
    other = await registry.register(V1, as_id=DEPT, subject="akto.civil.payments")
    assert (other.subject, other.version, other.created) == ("akto.civil.payments", 1, True)
    count = await hub.pool.fetchval(
        "SELECT count(*) FROM schemas WHERE fingerprint = $1", V1.fingerprint
    )
    assert count == 1


# --- compatibility ----------------------------------------------------------------------------


async def test_backward_is_the_default_and_a_refused_schema_changes_nothing(hub: Hub) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT)
    subject_doc = await kv_value(hub, subject_key(NAME))
    before = await admin_events(hub)
    breaking = benefit(fld("person_id", "string"), fld("amount", "string"))
    with pytest.raises(SchemaIncompatible) as caught:
        await registry.register(breaking, as_id=DEPT)
    assert "not BACKWARD compatible with version 1 of subject akto.civil.v1.BenefitPaid" in str(
        caught.value
    )
    assert caught.value.reasons == (
        "fields[1].type (field amount): reader (new schema) expects string, writer (version 1, "
        "the latest) has long; BACKWARD requires the writer's type to be the reader's type or "
        "promotable to it",
    )
    assert await versions_in_record(hub, NAME) == [1]
    assert await kv_value(hub, subject_key(NAME)) == subject_doc
    assert await kv_value(hub, fp_key(breaking.fingerprint_hex)) is None
    assert hub.schemas.by_fingerprint(breaking.fingerprint) is None
    assert await admin_events(hub) == before


async def test_the_compatibility_option_sets_the_mode_before_checking(hub: Hub) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT)
    forward_only = benefit(fld("person_id", "string"), fld("amount", "long"), fld("by", "string"))
    with pytest.raises(SchemaIncompatible):
        await registry.register(forward_only, as_id=DEPT)
    done = await registry.register(forward_only, as_id=DEPT, compatibility=Mode.FORWARD)
    assert (done.version, done.compatibility) == (2, "FORWARD")
    assert len(done.event_ids) == 2  # the mode change and the registration, both signed
    subject = await registry.subject(NAME)
    assert subject is not None and subject.compatibility == "FORWARD"
    changes = await read(hub, f"adm.{DEPT}.schema", 3)
    changed = [d.event for d in changes if d.event and d.event.schema.name.endswith("Changed")]
    assert [(e.record["previous"], e.record["compatibility"]) for e in changed] == [
        ("BACKWARD", "FORWARD")
    ]


async def test_a_refused_registration_does_not_keep_its_mode_change(hub: Hub) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT)
    breaking = benefit(fld("person_id", "string"), fld("amount", "string"))
    with pytest.raises(SchemaIncompatible):
        await registry.register(breaking, as_id=DEPT, compatibility=Mode.FULL)
    subject = await registry.subject(NAME)
    assert subject is not None and subject.compatibility == "BACKWARD"


async def test_transitive_modes_check_every_version_and_plain_ones_only_the_latest(
    hub: Hub,
) -> None:
    registry = hub.registry
    # reads v2 (its note is a string) but not v1 (no note, and no default to fill it)
    v3 = benefit(fld("person_id", "string"), fld("amount", "long"), fld("note", ["string", "null"]))
    await registry.register(V1, as_id=DEPT, compatibility=Mode.BACKWARD_TRANSITIVE)
    await registry.register(V2, as_id=DEPT)
    with pytest.raises(SchemaIncompatible) as caught:
        await registry.register(v3, as_id=DEPT)
    assert "every registered version" in str(caught.value)
    [reason] = caught.value.reasons
    assert reason.startswith("fields[2] (field note): reader (new schema) expects field note")
    assert "writer (version 1 of 2)" in reason
    done = await registry.register(v3, as_id=DEPT, compatibility=Mode.BACKWARD)
    assert done.version == 3


async def test_none_accepts_any_change(hub: Hub) -> None:
    registry = hub.registry
    await registry.register(V1, as_id=DEPT, compatibility=Mode.NONE)
    done = await registry.register(benefit(fld("amount", "string")), as_id=DEPT)
    assert (done.version, done.compatibility) == (2, "NONE")


# --- who may register ----------------------------------------------------------------------------


def test_a_subject_belongs_to_the_participant_its_first_two_tokens_name() -> None:
    assert owner_of("akto.civil.v1.BenefitPaid") == "akto.civil"
    assert owner_of("akto.civil-affairs.v1.X") == "akto.civil_affairs"
    assert owner_of("gov.common.v1.Notice") is None
    assert owner_of("Loose") is None
    assert may_register("akto.civil", "akto.civil.payments", "pref.egov")
    assert may_register("akto.civil-affairs", "akto.civil_affairs.v1.X", "pref.egov")
    assert not may_register("akto.civil", "akto.civilian.v1.X", "pref.egov")
    assert not may_register("akto.civil", "gov.common.v1.Notice", "pref.egov")
    assert may_register("pref.egov", "akto.civil.v1.X", "pref.egov")


async def test_a_participant_may_not_register_another_participants_subject(hub: Hub) -> None:
    registry = hub.registry
    with pytest.raises(RegistryError, match=r"artux\.civil may not register akto\.civil\.v1\."):
        await registry.register(V1, as_id="artux.civil")
    with pytest.raises(RegistryError, match="it belongs to akto.civil"):
        await registry.register(V1, as_id="artux.civil")
    with pytest.raises(RegistryError, match="only the hub operator"):
        await registry.register(
            schema_from_json({**json.loads(json.dumps(V1.source)), "namespace": "gov.common.v1"}),
            as_id=DEPT,
        )
    assert await versions_in_record(hub, NAME) == []


async def test_an_own_subject_may_not_carry_another_participants_type(hub: Hub) -> None:
    # Otherwise akto.civil could make its own type the current version of artux's events.
    foreign = benefit(fld("x", "long"), name="artux.civil.v1.BenefitPaid")
    with pytest.raises(RegistryError, match=r"may not register artux\.civil\.v1\.BenefitPaid"):
        await hub.registry.register(foreign, as_id=DEPT, subject="akto.civil.x")


async def test_the_hub_operator_may_register_any_subject(hub: Hub) -> None:
    done = await hub.registry.register(V1)
    assert (done.registered_by, done.version) == (hub.scenario.operator, 1)


async def test_a_revoked_participant_cannot_register(hub: Hub) -> None:
    await hub.enrollment.revoke(DEPT)
    with pytest.raises(RegistryError, match="akto.civil is revoked"):
        await hub.registry.register(V1, as_id=DEPT)


# --- bad input ----------------------------------------------------------------------------------


async def test_a_fingerprint_collision_in_the_record_is_refused_and_not_overwritten(
    hub: Hub,
) -> None:
    # Forge a different schema stored under V1's fingerprint, as a CRC-64 collision would.
    await hub.pool.execute(
        "INSERT INTO schemas (fingerprint, name, canonical, schema_json, registered_by,"
        " registered_at) VALUES ($1, 'akto.civil.v1.Other', '{\"fake\":1}', '{}', 'x', now())",
        V1.fingerprint,
    )
    with pytest.raises(SchemaError, match="different canonical form; refusing to overwrite"):
        await hub.registry.register(V1, as_id=DEPT)
    assert await versions_in_record(hub, NAME) == []
    canonical = await hub.pool.fetchval(
        "SELECT canonical FROM schemas WHERE fingerprint = $1", V1.fingerprint
    )
    assert canonical == '{"fake":1}'
    assert await kv_value(hub, subject_key(NAME)) is None


async def test_a_fingerprint_collision_in_the_bucket_is_refused_and_rolled_back(hub: Hub) -> None:
    fake = {
        "fingerprint": V1.fingerprint_hex,
        "name": "akto.civil.v1.Other",
        "canonical": '{"fake":1}',
        "schema": {},
        "registered_by": "x",
        "registered_at": "2026-01-01T00:00:00.000000Z",
    }
    kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
    await kv.put(fp_key(V1.fingerprint_hex), json.dumps(fake).encode())
    with pytest.raises(SchemaError, match="refusing to overwrite"):
        await hub.registry.register(V1, as_id=DEPT)
    assert json.loads(await kv_doc(hub, fp_key(V1.fingerprint_hex))) == fake
    assert await versions_in_record(hub, NAME) == []
    assert await hub.pool.fetchval("SELECT count(*) FROM schemas WHERE name = $1", NAME) == 0


async def test_a_failed_publish_leaves_nothing_half_registered(hub: Hub) -> None:
    class Refusing(Publisher):
        async def publish_many(self, envs: Any, **options: Any) -> Any:
            raise PublishError("the stream refused the event (injected)")

    registry = SchemaRegistry(
        hub.pool,
        hub.nc,
        Refusing(hub.nc),
        hub.schemas,
        lambda p: hub.keystore.current(p),
        hub.scenario.operator,
    )
    with pytest.raises(PublishError):
        await registry.register(V1, as_id=DEPT)
    assert await versions_in_record(hub, NAME) == []
    assert await kv_value(hub, fp_key(V1.fingerprint_hex)) is None
    assert await kv_value(hub, subject_key(NAME)) is None
    assert hub.schemas.by_fingerprint(V1.fingerprint) is None


async def test_schemas_too_large_for_a_registration_event_are_refused(hub: Hub) -> None:
    wide = benefit(*(fld(f"f{i}", "string", doc="x" * 400) for i in range(90)))
    assert len(json.dumps(wide.source)) > MAX_SCHEMA_BYTES
    with pytest.raises(SchemaError, match="the registry takes schemas up to"):
        await hub.registry.register(wide, as_id=DEPT)


async def test_a_subject_name_that_cannot_be_a_key_is_refused(hub: Hub) -> None:
    with pytest.raises(SchemaError, match="must be dot-separated tokens"):
        await hub.registry.register(V1, as_id=DEPT, subject="akto.civil.a b")


# --- receivers ------------------------------------------------------------------------------------


async def test_a_receivers_cache_learns_new_versions_from_the_watch(hub: Hub) -> None:
    receiver = SchemaCache.from_directory(SCHEMA_DIR)
    nc = await nats.connect(hub.nats_url)
    watch = SchemaWatch(receiver)
    try:
        await watch.watch(nc.jetstream())
        assert receiver.by_fingerprint(V1.fingerprint) is None
        await hub.registry.register(V1, as_id=DEPT)
        await watch.wait_for(lambda: receiver.by_fingerprint(V1.fingerprint) is not None)
        await hub.registry.register(V2, as_id=DEPT)
        await watch.wait_for(lambda: receiver.by_name(NAME).fingerprint == V2.fingerprint)
        assert receiver.by_fingerprint(V1.fingerprint) is not None  # old events still decode
        assert watch.subjects[NAME].compatibility == "BACKWARD"
    finally:
        await watch.stop()
        await nc.close()


async def test_a_receiver_keeps_resolving_from_its_cache_when_nats_is_gone(
    hub_settings: Settings, nats_server: NatsServer
) -> None:
    async with open_hub(hub_settings) as hub:
        await hub.registry.register(V1, as_id=DEPT)
        body = V1.encode({"person_id": "p", "amount": 3})
        receiver = SchemaCache.from_directory(SCHEMA_DIR)
        nc = await nats.connect(hub.nats_url, allow_reconnect=False)
        watch = SchemaWatch(receiver)
        await watch.watch(nc.jetstream())
        nats_server.kill()
        try:
            schema, record = receiver.decode(body)
            assert (schema.name, record["amount"]) == (NAME, 3)
        finally:
            await watch.stop()
            await nc.close()
            nats_server.start()


async def test_a_bucket_entry_that_does_not_match_its_fingerprint_is_ignored(hub: Hub) -> None:
    notice = hub.schemas.by_name("gov.common.v1.Notice")
    receiver = SchemaCache.from_directory(SCHEMA_DIR)
    nc = await nats.connect(hub.nats_url)
    watch = SchemaWatch(receiver)
    try:
        await watch.watch(nc.jetstream())
        kv = await hub.nc.jetstream().key_value(SCHEMAS_BUCKET)
        # V1's schema stored under the Notice fingerprint: a receiver trusting it would decode
        # signed Notice bodies as benefit payments.
        forged = RegisteredSchema(
            fingerprint=notice.fingerprint_hex,
            name=NAME,
            canonical=V1.canonical,
            schema=V1.source,
            registered_by="x",
            registered_at="2026-01-01T00:00:00.000000Z",
        )
        await kv.put(fp_key(notice.fingerprint_hex), json.dumps(forged.to_json()).encode())
        await kv.put(fp_key(V2.fingerprint_hex), b"not json")
        await hub.registry.register(V1, as_id=DEPT)
        await watch.wait_for(lambda: receiver.by_fingerprint(V1.fingerprint) is not None)
        kept = receiver.by_fingerprint(notice.fingerprint)
        assert kept is not None and kept.name == notice.name and kept.canonical == notice.canonical
        assert receiver.by_fingerprint(V2.fingerprint) is None
    finally:
        await watch.stop()
        await nc.close()


async def test_the_bucket_is_rewritten_from_the_record_when_it_was_lost(
    hub_settings: Settings,
) -> None:
    async with open_hub(hub_settings) as hub:
        await hub.registry.register(V1, as_id=DEPT)
        await hub.nc.jetstream().delete_key_value(SCHEMAS_BUCKET)
    async with open_hub(hub_settings) as hub:
        assert hub.schemas.by_fingerprint(V1.fingerprint) is not None
        assert json.loads(await kv_doc(hub, subject_key(NAME)))["versions"][0]["version"] == 1
