"""Participants: enrollment, rotation and revocation reach every receiver through KV."""

from __future__ import annotations

import json

import pytest

from hub.enrollment import NewParticipant, load_participants
from hub.envelope import format_time, seal
from hub.errors import Reason, RegistryError
from hub.home import Settings
from hub.participants import PARTICIPANTS_BUCKET, ParticipantCache
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"


async def test_bootstrap_enrolls_all_56_scenario_participants_with_certified_keys(hub: Hub) -> None:
    everyone = await load_participants(hub.pool)
    assert len(everyone) == 56
    assert len(hub.participants) == 56
    operator = next(p for p in everyone if p.id == "pref.egov")
    assert operator.role == "operator"
    for p in everyone:
        key = p.current_key
        assert key is not None and len(key.public_key) == 32
        assert "BEGIN CERTIFICATE" in key.certificate_pem


async def test_each_enrollment_is_a_signed_admin_event_from_the_operator(hub: Hub) -> None:
    consumer = hub.consumer(HUB_STREAM, None, ["adm.pref.egov.participant"])
    changes = []
    while batch := await consumer.fetch(256, timeout=0.5):
        for d in batch:
            assert d.event is not None, d.rejection
            changes.append(d.event.record["participant_id"])
            await d.ack()
    await consumer.stop()
    assert len(changes) == 56 and changes[0] == "pref.egov"


async def test_a_second_receivers_cache_follows_adds_rotations_and_revocations(hub: Hub) -> None:
    other = ParticipantCache()
    await other.watch(hub.nc.jetstream())
    try:
        enrollment = hub.enrollment
        await enrollment.add([NewParticipant("akto.water", "阿克陶县水利局")])
        await other.wait_until(lambda c: c.get("akto.water") is not None)
        old = other.get("akto.civil")
        assert old is not None and old.current_key is not None
        rotated = await enrollment.rotate("akto.civil")
        assert rotated.current_key is not None
        new_kid = rotated.current_key.key_id
        await other.wait_until(
            lambda c: (
                (p := c.get("akto.civil")) is not None
                and p.current_key is not None
                and p.current_key.key_id == new_kid
            )
        )
        await enrollment.revoke("akqi.edu")
        await other.wait_until(
            lambda c: (p := c.get("akqi.edu")) is not None and p.status == "revoked"
        )
    finally:
        await other.stop()


async def test_after_rotation_old_events_still_verify_but_the_old_key_cannot_sign_new_ones(
    hub: Hub,
) -> None:
    old_key = hub.keystore.current("artux.finance")
    earlier = seal(
        old_key,
        "evt.artux.finance.notice",
        NOTICE,
        hub.schemas.by_name(NOTICE).encode({"title": "before", "body": "b"}),
    )
    await hub.enrollment.rotate("artux.finance")
    await hub.participants.wait_until(lambda c: len(c.get("artux.finance").keys) == 2)  # type: ignore[union-attr]
    assert hub.verifier.verify(earlier).record["title"] == "before"
    late = seal(
        old_key,
        "evt.artux.finance.notice",
        NOTICE,
        hub.schemas.by_name(NOTICE).encode({"title": "after", "body": "b"}),
    )
    with pytest.raises(Exception) as caught:
        hub.verifier.verify(late)
    assert getattr(caught.value, "reason", None) is Reason.KEY_NOT_VALID
    env, _ = await hub.publish("artux.finance", NOTICE, {"title": "new key", "body": "b"})
    assert hub.verifier.verify(env).record["title"] == "new key"


async def test_a_revoked_participant_is_refused_by_the_client_and_by_receivers(hub: Hub) -> None:
    key = hub.keystore.current("wuqia.market")
    await hub.enrollment.revoke("wuqia.market")
    await hub.participants.wait_until(lambda c: c.get("wuqia.market").status == "revoked")  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="revoked"):
        await hub.publish("wuqia.market", NOTICE, {"title": "t", "body": "b"})
    sneaky = seal(
        key,
        "evt.wuqia.market.notice",
        NOTICE,
        hub.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"}),
        time_text=format_time(),
    )
    with pytest.raises(Exception) as caught:
        hub.verifier.verify(sneaky)
    assert getattr(caught.value, "reason", None) is Reason.PARTICIPANT_REVOKED


async def test_registry_mistakes_are_refused_with_one_sentence(hub: Hub) -> None:
    enrollment = hub.enrollment
    with pytest.raises(RegistryError, match="already registered: akto.civil"):
        await enrollment.add([NewParticipant("akto.civil")])
    with pytest.raises(RegistryError, match="not a registered participant"):
        await enrollment.rotate("nowhere.none")
    with pytest.raises(RegistryError, match="cannot revoke itself"):
        await enrollment.revoke("pref.egov")
    await enrollment.revoke("akto.edu")
    with pytest.raises(RegistryError, match="already revoked"):
        await enrollment.revoke("akto.edu")


async def test_sync_rewrites_the_kv_copy_from_postgresql(hub: Hub) -> None:
    kv = await hub.nc.jetstream().key_value(PARTICIPANTS_BUCKET)
    await kv.delete("akto.stats")
    assert await hub.enrollment.sync() == 56
    entry = await kv.get("akto.stats")
    assert json.loads(entry.value)["id"] == "akto.stats"


async def test_a_hub_opened_on_a_nats_store_that_lost_the_registry_rewrites_it(
    hub: Hub, hub_settings: Settings
) -> None:
    # A NATS store restored from an older backup, or a new one beside an existing database:
    # without the rewrite every receiver would refuse every participant's events.
    kv = await hub.nc.jetstream().key_value(PARTICIPANTS_BUCKET)
    for key in await kv.keys():
        await kv.purge(key)
    async with open_hub(hub_settings) as reopened:
        assert len(reopened.participants) == 56
        env = reopened.seal("akto.civil", "gov.common.v1.Notice", {"title": "t", "body": "b"})
        assert reopened.verifier.verify(env).record["title"] == "t"
