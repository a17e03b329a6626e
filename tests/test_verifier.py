"""The receiver checks: every way an event can be refused, and what must still pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.codec import SchemaCache
from hub.envelope import Envelope, SigningKey, format_time, seal
from hub.errors import Reason, RejectedEvent
from hub.participants import Participant, ParticipantCache, ParticipantKey
from hub.verifier import Verifier
from schemas import SCHEMA_DIR

NOTICE = "gov.common.v1.Notice"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _participant(
    pid: str,
    keys: list[tuple[SigningKey, datetime, datetime | None]],
    revoked_at: datetime | None = None,
) -> Participant:
    return Participant(
        id=pid,
        unit=pid.split(".")[0],
        name=pid,
        status="revoked" if revoked_at else "active",
        revoked_at=revoked_at,
        keys=tuple(ParticipantKey(k.key_id, k.public_bytes, nb, na) for k, nb, na in keys),
    )


@pytest.fixture
def world() -> tuple[Verifier, ParticipantCache, dict[str, SigningKey]]:
    keys = {
        name: SigningKey.from_private(name.split("#")[0], Ed25519PrivateKey.generate())
        for name in ["akto.civil", "akto.civil#old", "artux.stats", "akqi.edu"]
    }
    cache = ParticipantCache()
    rotated_at = T0 + timedelta(days=100)
    cache.put(
        _participant(
            "akto.civil",
            [(keys["akto.civil#old"], T0, rotated_at), (keys["akto.civil"], rotated_at, None)],
        )
    )
    cache.put(_participant("artux.stats", [(keys["artux.stats"], T0, None)]))
    cache.put(
        _participant(
            "akqi.edu", [(keys["akqi.edu"], T0, None)], revoked_at=T0 + timedelta(days=200)
        )
    )
    return Verifier(cache, SchemaCache.from_directory(SCHEMA_DIR)), cache, keys


def _notice(
    verifier: Verifier,
    key: SigningKey,
    *,
    subject: str | None = None,
    at: datetime | None = None,
    type_name: str = NOTICE,
) -> Envelope:
    body = verifier.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    return seal(
        key,
        subject or f"evt.{key.participant}.notice",
        type_name,
        body,
        time_text=format_time(at or T0 + timedelta(days=150)),
    )


def _reason(verifier: Verifier, env: Envelope, stored_at: datetime | None = None) -> Reason:
    with pytest.raises(RejectedEvent) as caught:
        verifier.verify(env, stored_at)
    return caught.value.reason


def test_a_correct_event_passes_and_is_decoded(world) -> None:
    verifier, _, keys = world
    event = verifier.verify(_notice(verifier, keys["akto.civil"]))
    assert event.record["title"] == "t"
    assert event.sender.id == "akto.civil"
    assert event.schema.name == NOTICE


def test_an_unknown_sender_is_refused(world) -> None:
    verifier, _, _ = world
    stranger = SigningKey.from_private("kashgar.civil", Ed25519PrivateKey.generate())
    assert _reason(verifier, _notice(verifier, stranger)) is Reason.UNKNOWN_PARTICIPANT


def test_a_participant_cannot_publish_on_another_participants_subject(world) -> None:
    verifier, _, keys = world
    env = _notice(verifier, keys["akto.civil"], subject="evt.artux.stats.notice")
    assert _reason(verifier, env) is Reason.SUBJECT_NOT_ALLOWED


def test_signing_in_another_participants_name_with_ones_own_key_is_refused(world) -> None:
    verifier, _, keys = world
    env = _notice(verifier, keys["akto.civil"], subject="evt.artux.stats.notice")
    headers = dict(env.headers)
    headers["ce-source"] = "artux.stats"
    assert _reason(verifier, Envelope(env.subject, headers, env.body)) is Reason.UNKNOWN_KEY


def test_a_key_the_registry_does_not_list_is_refused(world) -> None:
    verifier, _, _ = world
    rogue = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
    assert _reason(verifier, _notice(verifier, rogue)) is Reason.UNKNOWN_KEY


def test_a_forged_signature_is_refused(world) -> None:
    verifier, _, keys = world
    env = _notice(verifier, keys["akto.civil"])
    other = verifier.schemas.by_name(NOTICE).encode({"title": "forged", "body": "b"})
    assert _reason(verifier, Envelope(env.subject, env.headers, other)) is Reason.BAD_SIGNATURE


def test_a_rotated_out_key_still_verifies_events_stamped_before_the_rotation(world) -> None:
    verifier, _, keys = world
    old_event = _notice(verifier, keys["akto.civil#old"], at=T0 + timedelta(days=50))
    assert verifier.verify(old_event).sender.id == "akto.civil"


def test_a_rotated_out_key_cannot_sign_events_after_the_rotation(world) -> None:
    verifier, _, keys = world
    late = _notice(verifier, keys["akto.civil#old"], at=T0 + timedelta(days=150))
    assert _reason(verifier, late) is Reason.KEY_NOT_VALID


def test_a_new_key_cannot_sign_events_dated_before_it_existed(world) -> None:
    verifier, _, keys = world
    backdated = _notice(verifier, keys["akto.civil"], at=T0 + timedelta(days=50))
    assert _reason(verifier, backdated) is Reason.KEY_NOT_VALID


def test_revocation_refuses_events_from_the_revocation_time_on_but_keeps_history(world) -> None:
    verifier, _, keys = world
    before = _notice(verifier, keys["akqi.edu"], at=T0 + timedelta(days=150))
    after = _notice(verifier, keys["akqi.edu"], at=T0 + timedelta(days=250))
    assert verifier.verify(before).sender.id == "akqi.edu"
    assert _reason(verifier, after) is Reason.PARTICIPANT_REVOKED


def test_ce_type_must_name_the_schema_the_body_was_written_with(world) -> None:
    verifier, _, keys = world
    env = _notice(verifier, keys["artux.stats"], type_name="gov.admin.v1.ParticipantChanged")
    assert _reason(verifier, env) is Reason.TYPE_MISMATCH


def test_an_unregistered_fingerprint_is_refused(world) -> None:
    verifier, _, keys = world
    body = b"\xc3\x01" + bytes(8) + b"\x02t\x02b"
    env = seal(
        keys["artux.stats"],
        "evt.artux.stats.notice",
        NOTICE,
        body,
        time_text=format_time(T0 + timedelta(days=1)),
    )
    assert _reason(verifier, env) is Reason.UNKNOWN_SCHEMA


def test_a_body_that_does_not_decode_is_malformed(world) -> None:
    verifier, _, keys = world
    good = verifier.schemas.by_name(NOTICE).encode({"title": "t" * 40, "body": "b"})
    env = seal(
        keys["artux.stats"],
        "evt.artux.stats.notice",
        NOTICE,
        good[:20],
        time_text=format_time(T0 + timedelta(days=1)),
    )
    assert _reason(verifier, env) is Reason.MALFORMED_BODY


def test_an_event_dated_far_after_it_was_stored_is_refused(world) -> None:
    verifier, _, keys = world
    env = _notice(verifier, keys["artux.stats"], at=T0 + timedelta(days=10))
    assert _reason(verifier, env, stored_at=T0 + timedelta(days=9)) is Reason.BAD_HEADER
    assert (
        verifier.verify(env, stored_at=T0 + timedelta(days=10, minutes=1)).event_id == env.event_id
    )
