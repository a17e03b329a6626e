"""The wire contract v1 envelope: headers, signing input, ids."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.envelope import (
    REQUIRED_HEADERS,
    Envelope,
    SigningKey,
    check_signature,
    key_id,
    new_event_id,
    read_fields,
    seal,
    signing_input,
)
from hub.errors import Reason, RejectedEvent


def test_signing_input_is_exactly_the_seven_lines_of_the_contract() -> None:
    body = b"\xc3\x01body"
    expected = (
        "govhub-sig-v1\n"
        "evt.akto.civil.notice\n"
        "0190f0c2-0000-7000-8000-000000000001\n"
        "akto.civil\n"
        "gov.common.v1.Notice\n"
        "2026-11-26T10:00:00.000000Z\n"
        f"{hashlib.sha256(body).hexdigest()}\n"
    ).encode()
    assert (
        signing_input(
            "evt.akto.civil.notice",
            "0190f0c2-0000-7000-8000-000000000001",
            "akto.civil",
            "gov.common.v1.Notice",
            "2026-11-26T10:00:00.000000Z",
            body,
        )
        == expected
    )


def test_key_id_is_hex_of_first_eight_bytes_of_sha256_of_raw_key() -> None:
    raw = bytes(range(32))
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]


def test_event_ids_are_uuid7_and_increase_over_time() -> None:
    ids = [new_event_id() for _ in range(100)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 for u in parsed)
    assert len(set(ids)) == 100
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)


def _key() -> SigningKey:
    return SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())


def test_sealed_event_carries_every_contract_header_and_verifies() -> None:
    key = _key()
    env = seal(key, "evt.akto.civil.notice", "gov.common.v1.Notice", b"\xc3\x01xyz")
    for name in REQUIRED_HEADERS:
        assert env.headers[name]
    assert env.headers["Nats-Msg-Id"] == env.headers["ce-id"]
    assert env.headers["govhub-key"] == f"akto.civil/{key.key_id}"
    assert len(base64.b64decode(env.headers["govhub-sig"])) == 64
    fields = read_fields(env)
    check_signature(env, fields, key.private_key.public_key())


@pytest.mark.parametrize("missing", REQUIRED_HEADERS)
def test_each_missing_header_is_refused_by_name(missing: str) -> None:
    env = seal(_key(), "evt.akto.civil.notice", "gov.common.v1.Notice", b"\xc3\x01xyz")
    headers = {k: v for k, v in env.headers.items() if k != missing}
    with pytest.raises(RejectedEvent, match=missing) as caught:
        read_fields(Envelope(env.subject, headers, env.body))
    assert caught.value.reason is Reason.MISSING_HEADER


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce-specversion", "0.3"),
        ("content-type", "application/json"),
        ("ce-time", "yesterday"),
        ("ce-time", "2026-11-26T10:00:00"),
        ("govhub-key", "akto.civil"),
        ("govhub-sig", "not base64!"),
        ("govhub-sig", base64.b64encode(b"short").decode()),
        ("Nats-Msg-Id", "another-id"),
    ],
)
def test_malformed_headers_are_refused_as_bad_header(header: str, value: str) -> None:
    env = seal(_key(), "evt.akto.civil.notice", "gov.common.v1.Notice", b"\xc3\x01xyz")
    headers = dict(env.headers)
    headers[header] = value
    with pytest.raises(RejectedEvent) as caught:
        read_fields(Envelope(env.subject, headers, env.body))
    assert caught.value.reason is Reason.BAD_HEADER


def test_oversized_body_is_refused_before_any_cryptography() -> None:
    env = seal(
        _key(), "evt.akto.civil.notice", "gov.common.v1.Notice", b"\xc3\x01" + b"x" * 300_000
    )
    with pytest.raises(RejectedEvent) as caught:
        read_fields(env)
    assert caught.value.reason is Reason.OVERSIZED


@pytest.mark.parametrize("part", ["subject", "body", "ce-time", "ce-type", "ce-id"])
def test_changing_any_signed_part_breaks_the_signature(part: str) -> None:
    key = _key()
    env = seal(key, "evt.akto.civil.notice", "gov.common.v1.Notice", b"\xc3\x01xyz")
    headers = dict(env.headers)
    subject, body = env.subject, env.body
    if part == "subject":
        subject = "evt.akto.civil.other"
    elif part == "body":
        body = b"\xc3\x01xyZ"
    elif part == "ce-time":
        headers["ce-time"] = "2020-01-01T00:00:00.000000Z"
    else:
        headers[part] = headers[part] + "x"
        headers["Nats-Msg-Id"] = headers["ce-id"]
    altered = Envelope(subject, headers, body)
    with pytest.raises(RejectedEvent) as caught:
        check_signature(altered, read_fields(altered), key.private_key.public_key())
    assert caught.value.reason is Reason.BAD_SIGNATURE
