"""The audit appender against real servers: one verified leaf per message, exactly once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

from nats.js.api import StreamConfig, StreamSource, SubjectTransform

from hub import merkle
from hub.audit import store
from hub.audit.appender import DUPLICATES, to_record
from hub.audit.leaf import canonical_json
from hub.audit.reader import TileReader, find_event, search
from hub.audit.service import AuditLog
from hub.audit.tiles import MAX_ENTRY_SIZE
from hub.demo import run_demo
from hub.envelope import Envelope, format_time, seal
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.unchecked import publish_unchecked

NOTICE = "gov.common.v1.Notice"


def notice(hub: Hub, sender: str, i: int) -> Envelope:
    return hub.seal(sender, NOTICE, {"title": f"通知 {i}", "body": "正文"})


async def leaves(hub: Hub) -> list[dict[str, Any]]:
    rows = await hub.pool.fetch("SELECT leaf FROM audit_leaves ORDER BY idx")
    return [json.loads(bytes(r["leaf"])) for r in rows]


async def stream_count(hub: Hub, stream: str) -> int:
    info = await hub.nc.jetstream().stream_info(stream)
    return int(info.state.messages)


async def test_every_message_of_the_hub_stream_becomes_one_leaf_with_its_verdict(
    hub: Hub,
) -> None:
    good = [notice(hub, "akto.civil", i) for i in range(20)]
    forged = Envelope(good[0].subject, {**good[0].headers, "ce-id": "forged-1",
                                        "Nats-Msg-Id": "forged-1"}, good[0].body)  # fmt: skip
    await hub.publisher.publish_many([*good, forged])
    checkpoint = await AuditLog(
        hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus
    ).catch_up()
    logged = await leaves(hub)
    assert checkpoint.size == len(logged) == await stream_count(hub, HUB_STREAM)
    assert [leaf["stream_seq"] for leaf in logged] == list(range(1, len(logged) + 1))
    by_id = {leaf["headers"]["ce-id"]: leaf for leaf in logged}
    assert all(by_id[e.event_id]["verdict"] == "accepted" for e in good)
    assert by_id["forged-1"]["verdict"] == "quarantined"
    assert by_id["forged-1"]["reason"] == "bad_signature"
    assert await stream_count(hub, QUARANTINE_STREAM) == 1


async def test_administrative_actions_are_ordinary_event_leaves(hub: Hub) -> None:
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    admin = await search(hub.pool, type_name="gov.admin.v1.ParticipantChanged", limit=100)
    assert len(admin) == 56 and all(r.verdict == "accepted" for r in admin)
    assert {r.source for r in admin} == {hub.scenario.operator}


async def test_leaf_bytes_are_the_documented_canonical_json_of_the_message(hub: Hub) -> None:
    env = notice(hub, "wuqia.edu", 1)
    ack = await hub.publisher.publish(env)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    row = await find_event(hub.pool, env.event_id)
    received = json.loads(row.leaf)["received_at"]
    expected = {
        "v": 1,
        "subject": env.subject,
        "headers": dict(env.headers),
        "body": base64.b64encode(env.body).decode(),
        "verdict": "accepted",
        "reason": None,
        "detail": None,
        "stream": HUB_STREAM,
        "stream_seq": ack.seq,
        "origin": None,
        "received_at": received,
    }
    assert (
        row.leaf
        == json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert received.endswith("Z") and received <= format_time()


async def test_a_redelivered_message_whose_ack_was_lost_collapses_onto_its_leaf(
    hub: Hub,
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    await audit.catch_up()
    envs = [notice(hub, "akqi.health", i) for i in range(5)]
    await hub.publisher.publish_many(envs)
    consumer = audit.appender().consumer()
    batch = await consumer.fetch(10, timeout=2.0)
    async with hub.pool.acquire() as conn:
        state, tracker = await store.load_state(conn), await store.load_tracker(conn)
        # Committed, then "crashed" before the acks: JetStream redelivers after ACK_WAIT.
        await store.append_batch(conn, state, tracker, [to_record(d) for d in batch])
    await consumer.stop()
    before = DUPLICATES.value()
    await audit.appender().catch_up()
    logged = [leaf["headers"]["ce-id"] for leaf in await leaves(hub)]
    assert sorted(logged[-5:]) == sorted(e.event_id for e in envs)
    assert len(logged) == len(set(logged))
    assert DUPLICATES.value() - before == 5


async def source_county(hub: Hub, unit: str = "akto") -> str:
    """A county stream the hub stream sources (as in a federated hub, on one server)."""
    js = hub.nc.jetstream()
    name = f"GOV_{unit.upper()}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"county.{unit}.>"]))
    return name


async def start_sourcing(hub: Hub, name: str, unit: str = "akto") -> None:
    js = hub.nc.jetstream()
    config = (await js.stream_info(HUB_STREAM)).config
    transform = SubjectTransform(src=f"county.{unit}.>", dest=">")
    config.sources = [StreamSource(name=name, subject_transforms=[transform])]
    await js.update_stream(config)


async def publish_in_county(hub: Hub, env: Envelope, unit: str = "akto") -> None:
    headers = {k: v for k, v in env.headers.items() if k != "Nats-Msg-Id"}
    await hub.nc.jetstream().publish(f"county.{unit}.{env.subject}", env.body, headers=headers)


async def wait_for_stream(hub: Hub, count: int) -> None:
    for _ in range(200):
        if await stream_count(hub, HUB_STREAM) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{HUB_STREAM} never reached {count} messages")


async def test_a_re_sourced_copy_of_an_event_is_not_logged_twice(hub: Hub) -> None:
    county = await source_county(hub)
    await start_sourcing(hub, county)
    env = notice(hub, "akto.civil", 7)
    before = await stream_count(hub, HUB_STREAM)
    # The same signed event reaches the hub stream three times: published at the hub, and
    # twice through the county's stream (a county that re-sent it after an outage).
    await hub.publisher.publish(env)
    await publish_in_county(hub, env)
    await publish_in_county(hub, env)
    await wait_for_stream(hub, before + 3)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    rows = await hub.pool.fetch(
        "SELECT verdict, origin_stream FROM audit_leaves WHERE event_id = $1", env.event_id
    )
    assert [(r["verdict"], r["origin_stream"]) for r in rows] == [("accepted", None)]


async def test_a_county_message_that_never_reached_the_hub_is_recorded_as_a_gap(
    hub: Hub,
) -> None:
    county = await source_county(hub)
    envs = [notice(hub, "akto.civil", i) for i in range(4)]
    for env in envs:
        await publish_in_county(hub, env)
    await hub.nc.jetstream().delete_msg(county, 3)  # lost before the hub sourced it
    before = await stream_count(hub, HUB_STREAM)
    await start_sourcing(hub, county)
    await wait_for_stream(hub, before + 3)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    gaps = await hub.pool.fetch("SELECT stream, first_seq, last_seq FROM audit_gaps")
    assert [tuple(g) for g in gaps] == [(county, 3, 3)]
    logged = await leaves(hub)
    assert logged[-1]["origin"] == {"stream": county, "seq": 4}
    assert logged[-1]["headers"]["ce-id"] == envs[3].event_id


async def test_an_event_the_offline_verifier_could_not_recheck_is_logged_quarantined(
    hub: Hub,
) -> None:
    schema = hub.schemas.by_name(NOTICE)
    key = hub.keystore.current("akto.civil")
    loose = seal(key, "evt.akto.civil.notice", NOTICE, schema.encode({"title": "t", "body": "b"}),
                 time_text=format_time().replace("T", " "))  # fmt: skip
    await publish_unchecked(hub.nc, loose)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    row = await find_event(hub.pool, loose.event_id)
    assert (row.verdict, row.reason) == ("quarantined", "bad_header")
    assert "not an RFC 3339 date-time" in json.loads(row.leaf)["detail"]


async def test_an_oversized_message_is_logged_with_its_body_replaced_by_its_hash(
    hub: Hub,
) -> None:
    env = notice(hub, "akto.civil", 1)
    body = env.body + bytes(60 * 1024)
    await publish_unchecked(hub.nc, Envelope(env.subject, dict(env.headers), body))
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    row = await find_event(hub.pool, env.event_id)
    leaf = json.loads(row.leaf)
    assert len(row.leaf) <= MAX_ENTRY_SIZE
    assert (leaf["verdict"], leaf["reason"], leaf["body"]) == ("quarantined", "oversized", "")
    assert hashlib.sha256(body).hexdigest() in leaf["detail"]


async def test_a_second_appender_waits_as_standby_and_takes_over(hub: Hub) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    first, second = audit.appender(), audit.appender()
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.leading.wait(), 30)
    second_task = asyncio.create_task(second.run())
    await hub.publisher.publish_many([notice(hub, "artux.stats", i) for i in range(10)])
    await asyncio.sleep(1.0)  # give the standby every chance to (wrongly) start writing
    assert not second.leading.is_set()
    first_task.cancel()
    await asyncio.gather(first_task, return_exceptions=True)
    await asyncio.wait_for(second.leading.wait(), 30)
    await hub.publisher.publish_many([notice(hub, "artux.stats", i) for i in range(10, 20)])
    target = await stream_count(hub, HUB_STREAM)
    for _ in range(300):
        if await hub.pool.fetchval("SELECT size FROM audit_state") == target:
            break
        await asyncio.sleep(0.1)
    second_task.cancel()
    await asyncio.gather(second_task, return_exceptions=True)
    ids = [leaf["headers"]["ce-id"] for leaf in await leaves(hub)]
    assert len(ids) == target == len(set(ids))


async def test_the_latest_checkpoint_proves_any_leaf_with_stored_tiles(hub: Hub) -> None:
    envs = [notice(hub, "pref.stats", i) for i in range(300)]
    await hub.publisher.publish_many(envs)
    cp = await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    tiles = TileReader(hub.pool)
    for env in envs[::37]:
        row = await find_event(hub.pool, env.event_id)
        proof = await tiles.inclusion(row.index, cp.size)
        merkle.verify_inclusion(merkle.leaf_hash(row.leaf), row.index, cp.size, proof, cp.root)


async def test_the_demo_audit_chapter_verifies_a_proof_offline(hub: Hub) -> None:
    result = await run_demo(hub)
    facts = result["chapters"]["audit"]
    assert facts["verified_offline"] is True
    assert facts["tree_size"] == await hub.pool.fetchval("SELECT size FROM audit_state")
    assert len(facts["cosigners"]) == 4
    assert facts["verdicts"]["quarantined bad_signature"] == 1


def test_leaf_json_is_sorted_compact_and_keeps_chinese_text() -> None:
    assert canonical_json({"b": "通知", "a": None}) == '{"a":null,"b":"通知"}'.encode()
