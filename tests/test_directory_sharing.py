"""Enforcement by encryption: data reaches only valid grantees, with only the granted fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.crypto import KeyWrap, Sealed, decrypt_as
from hub.directory.sharing import receive, share, share_context
from hub.directory.workflow import Directory
from hub.errors import (
    InputError,
    KeyStoreError,
    NoGrant,
    NotProvider,
    NotRecipient,
    ResourceClosed,
)
from hub.runtime import Hub
from hub.topology import HUB_STREAM
from tests.directory_support import RECORDS, entry_file, register_population_schema

CODE = "101001-000017"
PROVIDER = "akto.stats"


@pytest.fixture
async def directory(hub: Hub) -> Directory:
    await register_population_schema(hub)
    d = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    await d.publish(PROVIDER, entry_file())
    return d


async def test_a_participant_without_a_grant_is_refused_until_granted_then_reads_its_fields(
    directory: Directory,
    hub: Hub,
) -> None:
    hub = hub
    req = await directory.request("akto.civil", CODE, "低保核查", fields=["township", "residents"])
    with pytest.raises(NoGrant, match="still pending"):
        await receive(hub.pool, hub.bus, hub.signer, "akto.civil", CODE)
    await directory.grant(PROVIDER, req["request_id"])
    shared = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS)
    assert shared["grantees"] == ["akto.civil"]
    got = await receive(hub.pool, hub.bus, hub.signer, "akto.civil", CODE)
    assert [r["data"] for r in got["records"]] == [
        {"township": r["township"], "residents": r["residents"]} for r in RECORDS
    ]


async def test_data_shared_before_a_grant_stays_unreadable_and_others_see_only_ciphertext(
    directory: Directory,
    hub: Hub,
) -> None:
    hub = hub
    first = await directory.request("akto.civil", CODE, "核查")
    await directory.grant(PROVIDER, first["request_id"])
    await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS[:1])
    with pytest.raises(NoGrant, match="sealed to their grantees") as caught:
        await receive(hub.pool, hub.bus, hub.signer, "akto.health", CODE)
    assert "1 record(s)" in str(caught.value)
    # Even with the event in hand, akto.health's keys do not open what was sealed to akto.civil.
    consumer = hub.consumer(HUB_STREAM, None, [f"evt.akto.stats.share.{CODE}.>"])
    [delivery] = await consumer.fetch_verified(10, timeout=2)
    await consumer.stop()
    assert delivery.event is not None
    rec = delivery.event.record
    assert "木吉乡".encode() not in delivery.envelope.body
    sealed = Sealed(
        rec["ciphertext"], (KeyWrap("akto.health", rec["key_id"], rec["suite"], rec["sealed_key"]),)
    )
    context = share_context(CODE, rec["request_id"], rec["record_id"], "akto.health")
    with pytest.raises(KeyStoreError):  # its machine holds no key that opens this wrap
        decrypt_as("akto.health", hub.keystore, sealed, context=context)
    theirs = Sealed(
        rec["ciphertext"], (KeyWrap("akto.civil", rec["key_id"], rec["suite"], rec["sealed_key"]),)
    )
    with pytest.raises(NotRecipient):
        decrypt_as("akto.health", hub.keystore, theirs, context=context)


async def test_an_expired_grant_receives_nothing_new_and_gets_a_clear_error(
    directory: Directory,
    hub: Hub,
) -> None:
    hub = hub
    until = datetime.now(UTC) + timedelta(days=5)
    req = await directory.request("akto.civil", CODE, "核查", until=until)
    await directory.grant(PROVIDER, req["request_id"])
    before = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS[:1])
    assert before["grantees"] == ["akto.civil"]
    after = await share(
        hub.pool,
        hub.trust,
        hub.signer,
        PROVIDER,
        CODE,
        RECORDS[1:],
        now=until + timedelta(seconds=1),
    )
    assert after["events"] == [] and after["grantees"] == []
    await hub.pool.execute(  # the clock moves past the grant's end
        "UPDATE directory_requests SET valid_until = now() - interval '1 second'"
    )
    with pytest.raises(NoGrant, match="expired"):
        await receive(hub.pool, hub.bus, hub.signer, "akto.civil", CODE)


async def test_a_revoked_grant_ends_access_for_new_data(directory: Directory, hub: Hub) -> None:
    hub = hub
    req = await directory.request("akto.civil", CODE, "核查")
    await directory.grant(PROVIDER, req["request_id"])
    await directory.revoke(PROVIDER, req["request_id"], "用途已完成")
    shared = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS)
    assert shared["events"] == []
    with pytest.raises(NoGrant, match="revoked"):
        await receive(hub.pool, hub.bus, hub.signer, "akto.civil", CODE)


async def test_only_the_provider_shares_and_only_while_the_resource_is_active(
    directory: Directory,
    hub: Hub,
) -> None:
    with pytest.raises(NotProvider):
        await share(hub.pool, hub.trust, hub.signer, "akto.civil", CODE, RECORDS)
    await directory.withdraw(PROVIDER, CODE, "停止维护")
    with pytest.raises(ResourceClosed):
        await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS)


async def test_a_record_that_does_not_fit_the_schema_is_refused_before_anything_is_sealed(
    directory: Directory,
    hub: Hub,
) -> None:
    with pytest.raises(InputError, match="record 0"):
        await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, [{"township": "木吉乡"}])


async def test_a_new_pending_request_does_not_cut_off_a_grant_that_is_still_valid(
    directory: Directory,
    hub: Hub,
) -> None:
    hub = hub
    first = await directory.request("akto.civil", CODE, "核查", fields=["township"])
    await directory.grant(PROVIDER, first["request_id"])
    await directory.request("akto.civil", CODE, "扩大核查范围", fields=["township", "residents"])
    await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS[:1])
    got = await receive(hub.pool, hub.bus, hub.signer, "akto.civil", CODE)
    assert got["request_id"] == first["request_id"]
    assert got["records"][0]["data"] == {"township": RECORDS[0]["township"]}


async def test_the_audit_log_shows_the_grant_before_the_data_flow_it_covers(
    directory: Directory,
    hub: Hub,
) -> None:
    from hub.audit.reader import find_event
    from hub.audit.service import AuditLog

    hub = hub
    req = await directory.request("akto.civil", CODE, "核查")
    granted = await directory.grant(PROVIDER, req["request_id"])
    shared = await share(hub.pool, hub.trust, hub.signer, PROVIDER, CODE, RECORDS[:1])
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    grant_leaf = await find_event(hub.pool, granted["decision_event_id"])
    flow_leaf = await find_event(hub.pool, shared["events"][0]["event_id"])
    request_leaf = await find_event(hub.pool, req["request_event_id"])
    assert request_leaf.index < grant_leaf.index < flow_leaf.index
    assert {grant_leaf.verdict, flow_leaf.verdict} == {"accepted"}
    assert shared["events"][0]["grant_event_id"] == granted["decision_event_id"]
