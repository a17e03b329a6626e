"""Mixed-suite hubs against real servers: each sender is judged in the suite it is registered in.

A hub migrating from intl to gm holds participants of both suites. An event signed in the other
suite than its sender's registered key is refused before any signature check and quarantined
with the typed reason `suite_mismatch` and one sentence saying which suites disagree.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hub import suites
from hub.bus import H_DETAIL, H_REASON, Publisher
from hub.envelope import SigningKey, format_time, seal
from hub.errors import Reason
from hub.home import Settings
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.gm_support import check_gm_event

NOTICE = "gov.common.v1.Notice"


@contextlib.asynccontextmanager
async def _receiver(settings: Settings, suite: suites.Suite) -> AsyncIterator[Hub]:
    """A second hub process on the same servers, running in `suite`."""
    async with open_hub(replace(settings, suite=suite)) as other:
        yield other


def _impostor(hub: Hub, participant: str, suite: suites.Suite) -> SigningKey:
    """A key of `suite` that claims the id of the participant's registered current key."""
    sender = hub.participants.get(participant)
    assert sender is not None and sender.current_key is not None
    made = SigningKey.from_private(participant, suite.generate(), suite)
    return replace(made, key_id=sender.current_key.key_id)


async def _quarantined(receiver: Hub, event_id: str) -> dict[str, str]:
    reader = receiver.consumer(HUB_STREAM, "gm-mixed", ["evt.>"])
    assert await reader.fetch_verified(64, timeout=1.0) == []
    await reader.stop()
    copies = receiver.consumer(QUARANTINE_STREAM, None, quarantine=False)
    found = [d.envelope.headers for d in await copies.fetch(64, timeout=1.0)]
    await copies.stop()
    mine = [dict(h) for h in found if h.get("ce-id") == event_id]
    assert len(mine) == 1
    return mine[0]


async def _send_unchecked(hub: Hub, key: SigningKey) -> str:
    body = hub.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    env = seal(key, f"evt.{key.participant}.notice", NOTICE, body)
    forger = Publisher(hub.nc)  # a client without the checks every hub publisher makes
    try:
        await forger.publish(env)
    finally:
        await forger.close()
    return env.event_id


async def test_an_intl_receiver_refuses_a_gm_event_from_an_intl_participant(
    hub: Hub, hub_settings: Settings
) -> None:
    event_id = await _send_unchecked(hub, _impostor(hub, "akto.civil", suites.GM))
    async with _receiver(hub_settings, suites.INTL) as receiver:
        headers = await _quarantined(receiver, event_id)
    assert headers[H_REASON] == Reason.SUITE_MISMATCH.value == "suite_mismatch"
    detail = headers[H_DETAIL]
    assert "signed in the gm suite (sm2)" in detail
    assert "registered under the intl suite (ed25519)" in detail


async def test_a_gm_receiver_refuses_an_intl_event_from_a_gm_participant(
    hub: Hub, hub_settings: Settings
) -> None:
    async with _receiver(hub_settings, suites.GM) as receiver:
        rotated = await receiver.enrollment.rotate("artux.finance")  # migrates it to gm
        assert rotated.suite is suites.GM
        await hub.participants.wait_until(
            lambda cache: (p := cache.get("artux.finance")) is not None and p.suite is suites.GM
        )
        event_id = await _send_unchecked(hub, _impostor(hub, "artux.finance", suites.INTL))
        headers = await _quarantined(receiver, event_id)
    assert headers[H_REASON] == "suite_mismatch"
    assert "signed in the intl suite (ed25519)" in headers[H_DETAIL]
    assert "registered under the gm suite (sm2)" in headers[H_DETAIL]


async def test_a_participant_migrated_to_gm_keeps_its_intl_history_and_signs_in_gm(
    hub: Hub, hub_settings: Settings
) -> None:
    before = format_time(datetime.now(UTC) - timedelta(seconds=1))
    old = hub.keystore.current("akqi.civil")
    assert old.suite is suites.INTL
    async with _receiver(hub_settings, suites.GM) as receiver:
        await receiver.enrollment.rotate("akqi.civil")
        await receiver.participants.wait_until(
            lambda cache: (p := cache.get("akqi.civil")) is not None and p.suite is suites.GM
        )
        body = receiver.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
        earlier = seal(old, "evt.akqi.civil.notice", NOTICE, body, time_text=before)
        assert receiver.verifier.verify(earlier).fields.suite is suites.INTL
        now = receiver.seal("akqi.civil", NOTICE, {"title": "t", "body": "b"})
        event = receiver.verifier.verify(now)
        assert event.fields.suite is suites.GM
        key = event.sender.key(event.fields.key_id)
        check_gm_event(dict(now.headers), now.subject, now.body, key.public_key)


@pytest.mark.parametrize("name", ["gm", "intl"])
def test_the_suite_comes_from_the_environment_then_the_home(
    tmp_path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:  # type: ignore[no-untyped-def]
    from hub.home import Home, record_suite

    monkeypatch.delenv(suites.SUITE_ENV, raising=False)
    assert Settings.from_env(tmp_path).suite is suites.INTL
    record_suite(Home(tmp_path), suites.by_name(name))
    assert Settings.from_env(tmp_path).suite is suites.by_name(name)
    monkeypatch.setenv(suites.SUITE_ENV, "intl" if name == "gm" else "gm")
    assert Settings.from_env(tmp_path).suite is not suites.by_name(name)
