"""Batch signatures (govhub-sig-v2): one signature per run, every event still checkable alone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.leaf import canonical_json
from hub.batchsig import (
    H_BATCH_INDEX,
    H_BATCH_PATH,
    H_BATCH_SIG,
    H_BATCH_SIZE,
    signing_input,
    statement,
    tree,
)
from hub.envelope import H_SIG, Envelope, SigningKey, check_signature, read_fields
from hub.errors import Reason, RejectedEvent
from hub.runtime import Hub
from hub.sender import BatchSender, Item, seal_batch
from hub.topology import HUB_STREAM
from tests import rfc9162
from tests.test_audit_verify import LOG_KEY, NOW, WITNESSES, Log, b64, verify

KEY = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
TYPE = "gov.common.v1.Notice"


def _items(n: int) -> list[Item]:
    return [
        Item(f"evt.akto.civil.n{i}", TYPE, b"\xc3\x01" + bytes(8) + os.urandom(9)) for i in range(n)
    ]


def _check(env: Envelope) -> None:
    check_signature(env, read_fields(env), KEY.private_key.public_key())


def _reason(env: Envelope) -> Reason:
    with pytest.raises(RejectedEvent) as info:
        _check(env)
    return info.value.reason


def _with(env: Envelope, **changes: str | None) -> Envelope:
    headers = {k: v for k, v in env.headers.items()}
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return replace(env, headers=headers)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 64, 100])
def test_every_event_of_a_batch_verifies_on_its_own(n: int) -> None:
    envs = seal_batch(KEY, _items(n))
    assert len({e.headers[H_BATCH_SIG] for e in envs}) == 1
    for env in reversed(envs):
        _check(env)
        assert H_SIG not in env.headers


def test_a_single_event_is_sealed_with_a_v1_signature() -> None:
    (env,) = seal_batch(KEY, _items(1))
    assert H_SIG in env.headers and H_BATCH_SIG not in env.headers
    _check(env)


def test_batch_tree_and_paths_are_those_of_rfc_9162() -> None:
    for n in range(1, 40):
        data = [os.urandom(5) for _ in range(n)]
        root, paths = tree([hashlib.sha256(b"\x00" + d).digest() for d in data])
        assert root == rfc9162.mth(data)
        for i in range(n):
            expected = rfc9162.path(i, 0, n, lambda a, b, d=data: rfc9162.mth(d[a:b]))  # type: ignore[misc]
            assert paths[i] == b"".join(expected)


def test_a_changed_body_subject_or_time_breaks_only_that_event() -> None:
    envs = seal_batch(KEY, _items(4))
    assert _reason(replace(envs[1], body=envs[1].body + b"x")) is Reason.BAD_SIGNATURE
    assert _reason(replace(envs[2], subject="evt.akto.civil.other")) is Reason.BAD_SIGNATURE
    later = "2030-01-01T00:00:00.000000Z"
    assert _reason(_with(envs[3], ce_time=later)) is Reason.BAD_SIGNATURE
    _check(envs[0])


def test_an_event_moved_to_another_index_or_batch_size_does_not_verify() -> None:
    envs = seal_batch(KEY, _items(5))
    assert _reason(_with(envs[1], govhub_batch_index="2")) is Reason.BAD_SIGNATURE
    assert _reason(_with(envs[1], govhub_batch_size="6")) is Reason.BAD_SIGNATURE
    other = seal_batch(KEY, _items(5))
    assert _reason(_with(envs[1], govhub_batch_path=other[1].headers[H_BATCH_PATH])) is (
        Reason.BAD_SIGNATURE
    )


def test_a_batch_signed_by_another_key_is_refused() -> None:
    thief = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
    env = seal_batch(thief, _items(3))[0]
    assert _reason(env) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"govhub_batch_path": None}, Reason.MISSING_HEADER),
        ({"govhub_batch_index": "+1"}, Reason.BAD_HEADER),
        ({"govhub_batch_index": "7"}, Reason.BAD_HEADER),
        ({"govhub_batch_size": "1"}, Reason.BAD_HEADER),
        ({"govhub_batch_size": "5000"}, Reason.BAD_HEADER),
        ({"govhub_batch_sig": "not base64!"}, Reason.BAD_HEADER),
        ({"govhub_batch_path": base64.b64encode(bytes(31)).decode()}, Reason.BAD_HEADER),
        ({"govhub_sig": base64.b64encode(bytes(64)).decode()}, Reason.BAD_HEADER),
    ],
)
def test_malformed_batch_headers_are_refused_with_a_typed_reason(
    changes: dict[str, Any], reason: Reason
) -> None:
    env = seal_batch(KEY, _items(3))[1]
    assert _reason(_with(env, **changes)) is reason


def test_an_empty_batch_signature_header_makes_an_event_v2_for_receivers_and_auditors() -> None:
    (env,) = seal_batch(KEY, _items(1))  # a valid v1 event
    assert _reason(_with(env, govhub_batch_sig="")) is Reason.MISSING_HEADER


def test_the_signing_input_is_the_four_lines_of_the_contract() -> None:
    root = bytes(range(32))
    assert signing_input("akto.civil", 12, root) == (
        f"govhub-sig-v2\nakto.civil\n12\n{root.hex()}\n".encode()
    )
    body = b"\xc3\x01xyz"
    assert (
        statement("evt.a.b.c", "id-1", "a.b", TYPE, "2026-01-01T00:00:00Z", body)
        == (
            "govhub-event-v2\nevt.a.b.c\nid-1\na.b\ngov.common.v1.Notice\n2026-01-01T00:00:00Z\n"
            f"{hashlib.sha256(body).hexdigest()}\n"
        ).encode()
    )


# The offline verifier (python -m hub.audit.verify) re-checks v2 senders from the leaf alone.


def _leaf(env: Envelope, seq: int) -> bytes:
    return canonical_json(
        {
            "v": 1, "subject": env.subject, "headers": dict(env.headers),
            "body": b64(env.body), "verdict": "accepted", "reason": None, "detail": None,
            "stream": "GOVHUB", "stream_seq": seq, "origin": None,
            "received_at": "2026-03-01T09:00:00.000000Z",
        }
    )  # fmt: skip


def _bundle(envs: list[Envelope]) -> dict[str, Any]:
    log = Log([_leaf(e, i + 1) for i, e in enumerate(envs)], LOG_KEY, WITNESSES)
    bundle = log.bundle([len(envs)], list(range(len(envs))))
    raw = KEY.public_bytes
    bundle["participant_keys"] = [
        {"participant": "akto.civil", "key_id": KEY.key_id, "public_key": b64(raw),
         "not_before": "2020-01-01T00:00:00Z", "not_after": None, "revoked_at": None}
    ]  # fmt: skip
    return bundle


def _batch_at(when: str) -> list[Envelope]:
    return seal_batch(KEY, [replace(i, time_text=when) for i in _items(6)])


def test_the_offline_verifier_accepts_batch_signed_events_from_their_leaves() -> None:
    envs = _batch_at("2026-03-01T08:00:00.000000Z") + seal_batch(KEY, _items(1))
    report = verify(_bundle(envs))
    assert report.accepted_verified == 7


def test_the_offline_verifier_refuses_a_batch_event_whose_body_was_changed() -> None:
    from hub.audit.verify import VerificationError

    envs = _batch_at("2026-03-01T08:00:00.000000Z")
    envs[3] = replace(envs[3], body=envs[3].body + b"!")
    with pytest.raises(VerificationError, match="entry 3 .*sender signature does not verify"):
        verify(_bundle(envs))
    assert NOW  # the bundle's times are checked against the same clock as test_audit_verify


async def test_batch_signed_events_reach_a_verifying_consumer_and_a_forgery_is_refused(
    hub: Hub,
) -> None:
    schema = hub.schemas.by_name(TYPE)
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"), linger=0.05)
    futures = [
        sender.submit_record("evt.akto.civil.batch", schema, {"title": f"t{i}", "body": "b"})
        for i in range(50)
    ]
    acks = await asyncio.gather(*futures)
    assert len({a.seq for a in acks}) == 50
    genuine = seal_batch(
        hub.keystore.current("akto.civil"),
        [
            Item("evt.akto.civil.batch", TYPE, schema.encode({"title": "x", "body": "y"}))
            for _ in range(2)
        ],
    )
    forged = replace(genuine[0], body=schema.encode({"title": "forged", "body": "y"}))
    await hub.publisher.publish(forged)
    consumer = hub.consumer(HUB_STREAM, None, ["evt.akto.civil.batch"])
    deliveries = []
    while len(deliveries) < 51:
        deliveries += await consumer.fetch(100, timeout=5)
    accepted = [d for d in deliveries if d.event is not None]
    refused = [d for d in deliveries if d.rejection is not None]
    assert len(accepted) == 50
    assert [d.rejection.reason for d in refused if d.rejection] == [Reason.BAD_SIGNATURE]
    assert {d.envelope.headers[H_BATCH_SIZE] for d in accepted} == {"50"}
    assert sorted(int(d.envelope.headers[H_BATCH_INDEX]) for d in accepted) == list(range(50))
    await consumer.stop()
