"""The access workflow: every step a signed event, refused steps change nothing, deadlines run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hub.directory.deadlines import DeadlinePolicy, WorkCalendar
from hub.directory.events import ENTRY_SCHEMA, REQUEST_SCHEMA, Kind, dir_subject, new_id
from hub.directory.materializer import Materializer, event_outcome
from hub.directory.store import get_request, list_requests, load_entry
from hub.directory.validation import parse_entry
from hub.directory.workflow import Directory
from hub.errors import (
    DirectoryError,
    EntryInvalid,
    InputError,
    NotProvider,
    Reason,
    RequestClosed,
    ResourceClosed,
    UnknownRequest,
)
from hub.runtime import Hub
from hub.topology import QUARANTINE_STREAM
from tests.directory_support import entry_file, register_population_schema, sharing
from tests.servers import NatsServer

PROVIDER = "akto.stats"
REQUESTER = "akto.civil"


@pytest.fixture
async def directory(hub: Hub) -> Directory:
    await register_population_schema(hub)
    return Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)


async def test_a_conditional_request_waits_for_the_provider_and_a_grant_records_its_terms(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file())
    req = await directory.request(
        REQUESTER, "101001-000017", "低保对象核查", fields=["township", "residents"]
    )
    assert req["state"] == "pending"
    assert req["deadline"] > req["received_at"]
    assert req["purpose"] == "低保对象核查"
    until = datetime.now(UTC) + timedelta(days=30)
    granted = await directory.grant(PROVIDER, req["request_id"], fields=["residents"], until=until)
    assert granted["state"] == "granted"
    assert granted["granted_fields"] == ["residents"]
    assert granted["valid_until"] == until.replace(microsecond=until.microsecond)
    listed = await list_requests(hub.pool, REQUESTER)
    assert [r["state"] for r in listed] == ["granted"]


async def test_an_unconditional_request_is_granted_at_once_and_keeps_its_purpose(
    directory: Directory,
) -> None:
    await directory.publish(PROVIDER, entry_file(sharing=sharing("unconditional")))
    req = await directory.request(REQUESTER, "101001-000017", "统计分析")
    assert req["state"] == "granted" and req["auto_granted"]
    assert req["purpose"] == "统计分析"


async def test_a_not_shared_resource_opens_a_coordination_case_instead_of_a_request(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file(sharing=sharing("not_shared")))
    result = await directory.request(REQUESTER, "101001-000017", "案件协查")
    assert result["kind"] == "coordination"
    assert result["operator"] == "pref.egov"
    assert await hub.pool.fetchval("SELECT count(*) FROM directory_requests") == 0
    case = await hub.pool.fetchrow("SELECT * FROM directory_cases")
    assert case["requester"] == REQUESTER and case["operator"] == "pref.egov"


async def test_a_denial_needs_a_reason_and_is_final(directory: Directory) -> None:
    await directory.publish(PROVIDER, entry_file())
    req = await directory.request(REQUESTER, "101001-000017", "核查")
    with pytest.raises(InputError, match="reason"):
        await directory.deny(PROVIDER, req["request_id"], "  ")
    denied = await directory.deny(PROVIDER, req["request_id"], "用途超出共享条件")
    assert denied["state"] == "denied" and denied["reason"] == "用途超出共享条件"
    with pytest.raises(RequestClosed, match="already denied"):
        await directory.grant(PROVIDER, req["request_id"])


async def test_a_grant_by_a_participant_that_is_not_the_provider_is_refused_before_signing(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file())
    req = await directory.request(REQUESTER, "101001-000017", "核查")
    before = await hub.pool.fetchval("SELECT last_seq FROM directory_state")
    with pytest.raises(NotProvider, match="only akto.stats"):
        await directory.grant("akto.finance", req["request_id"])
    await directory.catch_up()
    assert await hub.pool.fetchval("SELECT last_seq FROM directory_state") == before
    assert (await get_request(hub.pool, req["request_id"]))["state"] == "pending"


async def test_a_signed_grant_from_someone_else_that_reaches_the_bus_is_quarantined(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file())
    req = await directory.request(REQUESTER, "101001-000017", "核查")
    forged = {
        "request_id": req["request_id"],
        "code": "101001-000017",
        "requester": REQUESTER,
        "request_event_id": req["request_event_id"],
        "fields": [],
        "valid_until": None,
    }
    env, _ = await hub.publish(
        "akto.finance",
        "gov.directory.v1.AccessGranted",
        forged,
        subject=dir_subject("akto.finance", Kind.GRANT, req["request_id"]),
    )
    await directory.catch_up()
    outcome = await event_outcome(hub.pool, env.event_id)
    assert outcome is not None and outcome[:2] == ("refused", Reason.NOT_PROVIDER)
    assert (await get_request(hub.pool, req["request_id"]))["state"] == "pending"


async def test_a_duplicate_code_from_another_provider_is_refused(
    directory: Directory, hub: Hub
) -> None:
    await directory.publish(PROVIDER, entry_file())
    with pytest.raises(DirectoryError, match="already used by akto.stats"):
        await directory.publish("artux.stats", entry_file(provider="artux.stats"))
    entry, _, _ = await load_entry(hub.pool, "101001-000017")
    assert entry.provider == PROVIDER


async def test_an_entry_missing_a_mandatory_field_names_it_and_publishes_nothing(
    directory: Directory,
    hub: Hub,
) -> None:
    data = entry_file()
    del data["title"]
    with pytest.raises(EntryInvalid, match="title: is required") as caught:
        await directory.publish(PROVIDER, data)
    assert ("title", "is required") in caught.value.problems
    await directory.catch_up()
    assert await hub.pool.fetchval("SELECT count(*) FROM directory_events") == 0


async def test_an_entry_with_an_unknown_schema_names_the_schema_field(
    directory: Directory,
) -> None:
    with pytest.raises(EntryInvalid, match="schema: 'akto.stats.v1.Nope' is not a registered"):
        await directory.publish(PROVIDER, entry_file(schema="akto.stats.v1.Nope"))


async def test_a_withdrawn_resource_cannot_be_requested_and_its_grants_end(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file(sharing=sharing("unconditional")))
    req = await directory.request(REQUESTER, "101001-000017", "统计")
    await directory.withdraw(PROVIDER, "101001-000017", "口径调整")
    with pytest.raises(ResourceClosed, match="withdrawn"):
        await directory.request("akto.health", "101001-000017", "统计")
    assert (await get_request(hub.pool, req["request_id"]))["state"] == "revoked"


async def test_an_update_raises_the_version_and_keeps_every_version(
    directory: Directory, hub: Hub
) -> None:
    await directory.publish(PROVIDER, entry_file())
    updated = await directory.publish(
        PROVIDER, entry_file(title="阿克陶县常住人口月报"), update=True
    )
    assert updated["version"] == 2
    versions = await hub.pool.fetch("SELECT version, kind FROM directory_versions ORDER BY version")
    assert [(v["version"], v["kind"]) for v in versions] == [(1, "published"), (2, "updated")]


async def test_a_request_from_an_offline_county_waits_in_the_stream_and_arrives_whole(
    directory: Directory,
    hub: Hub,
) -> None:
    await directory.publish(PROVIDER, entry_file())
    # The requester's county is cut off: its signed request sits in the stream, nothing has
    # materialized it, so the provider cannot answer it yet and nothing is half there.
    request_id = new_id()
    await hub.publish(
        REQUESTER,
        REQUEST_SCHEMA,
        {
            "request_id": request_id,
            "code": "101001-000017",
            "provider": PROVIDER,
            "requester": REQUESTER,
            "entry_version": 1,
            "purpose": "核查",
            "fields": [],
            "requested_until": None,
        },
        subject=dir_subject(REQUESTER, Kind.REQUEST, request_id),
    )
    with pytest.raises(UnknownRequest, match="has reached the directory") as caught:
        await directory.grant(PROVIDER, request_id)
    assert "uplink returns" in caught.value.diagnostics()
    await directory.catch_up()  # the uplink is back: the request arrives, pending
    assert (await get_request(hub.pool, request_id))["state"] == "pending"
    granted = await directory.grant(PROVIDER, request_id)
    assert granted["state"] == "granted"


async def test_overdue_requests_are_reminded_then_escalated_to_the_operator_once(
    hub: Hub,
) -> None:
    await register_population_schema(hub)
    policy = DeadlinePolicy(WorkCalendar(), working_days=10, reminder_days=2)
    directory = Directory(
        hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer, policy=policy
    )
    await directory.publish(PROVIDER, entry_file())
    req = await directory.request(REQUESTER, "101001-000017", "核查")
    deadline = req["deadline"]
    assert (await directory.sweep())["reminded"] == []
    almost = await directory.sweep(now=deadline - timedelta(hours=30))
    assert [r["request_id"] for r in almost["reminded"]] == [req["request_id"]]
    assert (await directory.sweep(now=deadline - timedelta(hours=29)))["reminded"] == []
    late = await directory.sweep(now=deadline + timedelta(minutes=1))
    assert [r["request_id"] for r in late["escalated"]] == [req["request_id"]]
    assert (await directory.sweep(now=deadline + timedelta(days=1)))["escalated"] == []
    row = await get_request(hub.pool, req["request_id"])
    assert row["escalated_at"] is not None and row["state"] == "pending"


async def test_two_providers_racing_for_one_code_leave_it_with_the_first_and_quarantine_the_second(
    directory: Directory,
    hub: Hub,
) -> None:
    hub = hub
    await directory.publish(PROVIDER, entry_file(), settle=False)
    # artux.stats signed its entry before akto.stats's reached the directory: both are on
    # the bus, the stream's order decides, and the loser is refused with a typed reason.
    late = parse_entry(entry_file(provider="artux.stats"), schemas=hub.schemas)
    env, _ = await hub.publish(
        "artux.stats",
        ENTRY_SCHEMA,
        late.to_record(),
        subject=dir_subject("artux.stats", Kind.PUBLISHED, late.code),
    )
    await directory.catch_up()
    outcome = await event_outcome(hub.pool, env.event_id)
    assert outcome is not None and outcome[:2] == ("refused", Reason.DUPLICATE_CODE)
    entry, _, _ = await load_entry(hub.pool, "101001-000017")
    assert entry.provider == PROVIDER
    copies = hub.consumer(QUARANTINE_STREAM, None, ["quarantine.duplicate_code"], quarantine=False)
    [copy] = await copies.fetch(10, timeout=2)
    await copies.stop()
    assert copy.envelope.headers["govhub-orig-subject"] == env.subject


async def test_events_published_before_a_nats_crash_are_materialized_after_it_restarts(
    directory: Directory, nats_server: NatsServer, hub: Hub
) -> None:
    hub = hub
    await directory.publish(PROVIDER, entry_file(), settle=False)
    nats_server.kill()
    nats_server.start()
    async with asyncio.timeout(30):
        while not hub.nc.is_connected:  # noqa: ASYNC110 - nats-py reconnects in the background
            await asyncio.sleep(0.1)
    await directory.catch_up()
    entry, status, _ = await load_entry(hub.pool, "101001-000017")
    assert status == "active" and entry.version == 1


async def test_events_a_killed_directory_writer_had_fetched_are_applied_in_order_not_skipped(
    directory: Directory, hub: Hub
) -> None:
    entries = [entry_file(code=f"101001-{n:06d}") for n in (21, 22, 23)]
    first = await directory.publish(PROVIDER, entries[0], settle=False)
    # A writer fetches the first event and is killed before it applies or acks it: JetStream
    # holds it for the ack wait while the next writer reads the events published after it.
    held = (
        await Materializer(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus)
        .consumer()
        .fetch(10, timeout=5.0)
    )
    assert [d.envelope.event_id for d in held] == [first["event_id"]]
    for data in entries[1:]:
        await directory.publish(PROVIDER, data, settle=False)
    await directory.catch_up(timeout=60)
    for data in entries:
        _, status, _ = await load_entry(hub.pool, data["code"])
        assert status == "active"
