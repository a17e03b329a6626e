"""Hostile bytes on the wire: header blocks, envelopes, Avro bodies and batch signatures.

Whatever a publisher puts in a NATS message, a receiver refuses it with a typed reason (and a
clear sentence) or accepts exactly what the sender signed; nothing else escapes. See
tests/hostile.py for the mutations.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from hub.batchsig import BATCH_HEADERS, H_BATCH_INDEX, H_BATCH_PATH, H_BATCH_SIG, H_BATCH_SIZE
from hub.bus import H_DETAIL, HubClient, quarantine_envelope
from hub.codec import SchemaCache
from hub.envelope import (
    H_ID,
    H_KEY,
    H_SIG,
    H_SOURCE,
    H_TIME,
    H_TYPE,
    REQUIRED_HEADERS,
    Envelope,
    SigningKey,
    format_time,
    read_fields,
    seal,
)
from hub.errors import InputError, Reason, RejectedEvent, SchemaError
from hub.participants import Participant, ParticipantCache, ParticipantKey
from hub.sender import Item, seal_batch
from hub.verifier import Verifier
from schemas import SCHEMA_DIR
from tests.hostile import (
    NASTY_CHARS,
    any_text,
    avro_values,
    hostile_bytes,
    hostile_text,
    mutated_bytes,
    mutated_json,
    only,
    scaled,
)
from tests.test_bus_headers import _Recorder

SCHEMAS = SchemaCache.from_directory(SCHEMA_DIR)
NOTICE = "gov.common.v1.Notice"
KEY = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WHEN = T0 + timedelta(days=10)
STORED = WHEN + timedelta(seconds=1)


def _verifier() -> Verifier:
    cache = ParticipantCache()
    cache.put(
        Participant(
            id="akto.civil",
            unit="akto",
            name="akto.civil",
            keys=(ParticipantKey(KEY.key_id, KEY.public_bytes, T0),),
        )
    )
    return Verifier(cache, SCHEMAS)


VERIFIER = _verifier()
GOOD_BODY = SCHEMAS.by_name(NOTICE).encode({"title": "通知", "body": "b", "attachments": ["x"]})
GOOD = seal(KEY, "evt.akto.civil.notice", NOTICE, GOOD_BODY, time_text=format_time(WHEN))
BATCH = seal_batch(
    KEY,
    [
        Item(f"evt.akto.civil.n{i}", NOTICE, GOOD_BODY, time_text=format_time(WHEN))
        for i in range(3)
    ],
)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (nats-py's header processing) without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended")


# --- NATS header blocks: the bytes a publisher writes, forwarded unchecked by nats-server ---

_TRICKY = [b"a", b" ", b"\x1c", b":", b"\t", b"\xff", b"\r\n", b"\x0b", b"\xc3\xa9", b"\x00"]
_STATUS_LINES = [
    b"NATS/1.0", b"NATS/1.0 503", b"NATS/1.0 404 No Messages", b"NATS/1.0 100 Idle Heartbeat",
    b"NATS/1.0 ", b"NATS/1.", b"N", b"", b"NATS/1.0 \xff\xfe", b"NATS/1.0 503 \xc3", b"XXXX",
]  # fmt: skip
header_lines = st.lists(st.sampled_from(_TRICKY), max_size=6).map(b"".join)
header_blocks = st.one_of(
    st.builds(
        lambda status, lines, end: status + b"\r\n" + b"\r\n".join(lines) + end,
        st.sampled_from(_STATUS_LINES),
        st.lists(header_lines, max_size=4),
        st.sampled_from([b"\r\n\r\n", b"\r\n", b""]),
    ),
    mutated_bytes(b"NATS/1.0\r\nce-id: 1\r\nce-source: akto.civil\r\n\r\n"),
    mutated_bytes(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\n\r\n"),
)


@given(raw=st.one_of(header_lines, st.binary(max_size=64)))
def test_header_lines_parse_exactly_as_nats_py_parses_them(raw: bytes) -> None:
    assert HubClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


@given(block=header_blocks)
def test_no_header_block_makes_the_reader_raise_and_well_formed_ones_read_as_in_nats_py(
    block: bytes,
) -> None:
    ours = _run(HubClient()._process_headers(block))
    assert ours is None or all(isinstance(v, str) for v in ours.values())
    try:
        theirs = _run(Client()._process_headers(block))
    except (UnicodeDecodeError, IndexError):
        return  # nats-py would have ended its read loop here; ours delivers the message
    assert ours == theirs


@given(subject=st.one_of(mutated_bytes(b"evt.akto.civil.notice"), st.binary(max_size=24)))
def test_no_subject_bytes_make_the_reader_raise(subject: bytes) -> None:
    msg = HubClient()._build_message(1, subject, b"$JS.ACK.x", b"body", None)
    assert isinstance(msg.subject, str)
    assert msg.subject.encode() == subject or "\ufffd" in msg.subject


# --- envelopes: the receiver checks of the wire contract ------------------------------------


def _names(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title(), f" {name}", name + "\n"])


@st.composite
def damaged_headers(draw: st.DrawFn, headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from([*REQUIRED_HEADERS, *BATCH_HEADERS, "Nats-Msg-Id", "x-y"]))
        kind = draw(st.sampled_from(["text", "drop", "case", "empty", "number"]))
        if kind == "text":
            out[name] = draw(hostile_text(out.get(name, "")))
        elif kind == "drop":
            out.pop(name, None)
        elif kind == "case":
            out[draw(_names(name))] = out.get(name, "x")
        elif kind == "empty":
            out[name] = ""
        else:
            out[name] = str(draw(st.integers(-(2**70), 2**70)))
    return out


def _event(env: Envelope) -> st.SearchStrategy[Envelope]:
    return st.one_of(
        st.builds(
            Envelope, st.just(env.subject), damaged_headers(dict(env.headers)), st.just(env.body)
        ),
        st.builds(Envelope, hostile_text(env.subject), st.just(env.headers), st.just(env.body)),
        st.builds(Envelope, st.just(env.subject), st.just(env.headers), hostile_bytes(env.body)),
        st.builds(
            Envelope,
            hostile_text(env.subject),
            damaged_headers(dict(env.headers)),
            hostile_bytes(env.body),
        ),
    )


def _signed(env: Envelope) -> tuple[Any, ...]:
    h = env.headers
    return (env.subject, h.get(H_ID), h.get(H_SOURCE), h.get(H_TYPE), h.get(H_TIME), env.body)


@given(env=st.one_of(_event(GOOD), *(_event(e) for e in BATCH)))
def test_damaged_events_are_refused_with_a_typed_reason_or_are_exactly_what_was_signed(
    env: Envelope,
) -> None:
    outcome = only(RejectedEvent)(lambda: VERIFIER.verify(env, STORED))
    if not isinstance(outcome, RejectedEvent):
        originals = {_signed(e) for e in (GOOD, *BATCH)}
        assert _signed(env) in originals, "a changed signed field was accepted"


@given(headers=st.dictionaries(st.one_of(st.sampled_from(REQUIRED_HEADERS), any_text), any_text))
def test_headers_of_any_shape_are_read_or_refused_with_a_typed_reason(
    headers: dict[str, str],
) -> None:
    only(RejectedEvent)(lambda: read_fields(Envelope("evt.akto.civil.x", headers, GOOD_BODY)))


def test_a_sealed_event_verifies_to_the_record_it_was_sealed_with() -> None:
    event = VERIFIER.verify(GOOD, STORED)
    assert event.record["title"] == "通知" and event.sender.id == "akto.civil"
    assert [VERIFIER.verify(e, STORED).subject for e in BATCH] == [e.subject for e in BATCH]


# --- Avro single-object bodies --------------------------------------------------------------

NAMES = SCHEMAS.names()


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN equal to NaN (a float field round-trips NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@st.composite
def fitting_records(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(NAMES))
    return name, draw(avro_values(SCHEMAS.by_name(name).parsed))


@scaled(0.5)
@given(named=fitting_records())
def test_every_record_that_fits_a_shipped_schema_encodes_and_decodes_to_itself(
    named: tuple[str, Any],
) -> None:
    name, record = named
    schema = SCHEMAS.by_name(name)
    writer, decoded = SCHEMAS.decode(schema.encode(record))
    assert writer is schema and _same(decoded, record)


@given(body=hostile_bytes(GOOD_BODY))
def test_damaged_bodies_are_refused_with_a_typed_reason(body: bytes) -> None:
    only(RejectedEvent)(lambda: SCHEMAS.decode(body))


@given(body=hostile_bytes(GOOD_BODY), reader=st.sampled_from(NAMES))
def test_damaged_bodies_read_through_another_schema_are_refused_with_a_typed_reason(
    body: bytes, reader: str
) -> None:
    only(RejectedEvent, SchemaError)(lambda: SCHEMAS.decode_as(body, SCHEMAS.by_name(reader)))


@scaled(0.3)
@given(
    named=st.sampled_from(NAMES).flatmap(
        lambda n: st.tuples(
            st.just(n), avro_values(SCHEMAS.by_name(n).parsed).flatmap(mutated_json)
        )
    )
)
def test_records_that_do_not_fit_a_schema_are_an_input_error_naming_the_field(
    named: tuple[str, Any],
) -> None:
    name, record = named
    outcome = only(InputError)(lambda: SCHEMAS.by_name(name).encode(record))
    if isinstance(outcome, InputError):
        assert "does not fit the schema's types" not in str(outcome), "no field was named"


# --- batch signatures (govhub-sig-v2) ---------------------------------------------------------


@given(
    changes=st.dictionaries(
        st.sampled_from([H_BATCH_SIG, H_BATCH_INDEX, H_BATCH_SIZE, H_BATCH_PATH, H_SIG, H_KEY]),
        st.one_of(
            hostile_text(BATCH[1].headers[H_BATCH_PATH]),
            st.sampled_from(
                ["0", "1", "2", "4096", "4097", "٣", "²", "+1", " 1", "-1", "1" * 5000]
            ),
            st.sampled_from(NASTY_CHARS),
        ),
        min_size=1,
    )
)
def test_damaged_batch_headers_are_refused_with_a_typed_reason(changes: dict[str, str]) -> None:
    env = Envelope(BATCH[1].subject, {**BATCH[1].headers, **changes}, BATCH[1].body)
    only(RejectedEvent)(lambda: VERIFIER.verify(env, STORED))


@pytest.mark.parametrize("index", range(len(BATCH)))
def test_every_event_of_a_sealed_batch_verifies(index: int) -> None:
    assert VERIFIER.verify(BATCH[index], STORED).event_id == BATCH[index].event_id


@pytest.mark.parametrize("name", [H_SIG, H_BATCH_SIG, H_BATCH_PATH])
def test_a_signature_header_that_is_not_ascii_is_a_bad_header_not_a_crash(name: str) -> None:
    base = GOOD if name == H_SIG else BATCH[1]
    env = Envelope(base.subject, {**base.headers, name: "\x80é"}, base.body)
    with pytest.raises(RejectedEvent) as caught:
        VERIFIER.verify(env, STORED)
    assert caught.value.reason is Reason.BAD_HEADER


def test_a_body_whose_string_is_not_utf8_is_refused_in_plain_words() -> None:
    body = GOOD_BODY[:10] + b"\x08\xff\xfe\xfd\xfc" + GOOD_BODY[-6:]
    with pytest.raises(RejectedEvent, match="a string in it is not valid UTF-8$"):
        SCHEMAS.decode(body)
    with pytest.raises(RejectedEvent, match="it is truncated or holds an impossible length$"):
        SCHEMAS.decode(GOOD_BODY[:-3])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "the record must be an object, not null"),
        ({"title": "t"}, "body is missing"),
        ({"title": 1, "body": "b"}, "title must be a string, not an integer"),
        ({"title": "\ud800", "body": "b"}, "title is not valid Unicode text"),
        ({"title": "t", "body": "b", "attachments": [1]}, r"attachments\[0\] must be a string"),
        ({"title": "t", "body": "b", "valid_until": "soon"}, "valid_until must be null or"),
        ({"title": "t", "body": "b", "colour": "red"}, "colour is not a field of"),
    ],
)
def test_a_record_that_does_not_fit_names_the_field_in_plain_words(
    record: Any, message: str
) -> None:
    with pytest.raises(InputError, match=f"^the data does not fit schema {NOTICE}: {message}"):
        SCHEMAS.by_name(NOTICE).encode(record)


@pytest.mark.parametrize("base", [GOOD, BATCH[1]], ids=["v1", "v2"])
@pytest.mark.parametrize("where", ["subject", H_ID, H_TYPE])
def test_a_lone_surrogate_in_what_was_signed_is_a_bad_header_not_a_crash(
    base: Envelope, where: str
) -> None:
    headers, subject = dict(base.headers), base.subject
    if where == "subject":
        subject += "\ud800"
    else:
        headers[where] += "\ud800"
        headers["Nats-Msg-Id"] = headers[H_ID]
    with pytest.raises(RejectedEvent, match="is not valid Unicode text") as caught:
        VERIFIER.verify(Envelope(subject, headers, base.body), STORED)
    assert caught.value.reason is Reason.BAD_HEADER


@pytest.mark.parametrize("name", [H_BATCH_INDEX, H_BATCH_SIZE])
def test_a_batch_number_of_thousands_of_digits_is_a_bad_header(name: str) -> None:
    env = Envelope(BATCH[1].subject, {**BATCH[1].headers, name: "1" * 5000}, BATCH[1].body)
    with pytest.raises(RejectedEvent, match="must be decimal") as caught:
        VERIFIER.verify(env, STORED)
    assert caught.value.reason is Reason.BAD_HEADER


def test_a_quarantine_detail_quoting_an_undecodable_file_name_can_still_be_sent() -> None:
    detail = "cannot read /srv/share/\udcff\udcfe.pdf"  # os.fsdecode of a non-UTF-8 name
    copy = quarantine_envelope(GOOD, Reason.POISON, detail)
    assert copy.headers[H_DETAIL].encode() == b"cannot read /srv/share/??.pdf"


@pytest.mark.parametrize(
    ("where", "value"),
    [("subject", "evt.akto.civil.\x00"), ("subject", "evt.akto.civil.a\nb"), (H_ID, "a\x00"),
     (H_SOURCE, "akto.civil\n"), (H_TYPE, "gov.common.v1.Notice\r"), ("x-note", "a\x00b")],
)  # fmt: skip
def test_control_characters_where_they_could_forge_or_break_storage_are_a_bad_header(
    where: str, value: str
) -> None:
    headers, subject = dict(GOOD.headers), GOOD.subject
    if where == "subject":
        subject = value
    else:
        headers[where] = value
        headers["Nats-Msg-Id"] = headers[H_ID]
    with pytest.raises(RejectedEvent, match="control characters|NUL") as caught:
        read_fields(Envelope(subject, headers, GOOD.body))
    assert caught.value.reason is Reason.BAD_HEADER


def _written(cls: type[Client], headers: dict[str, str]) -> bytes | str:
    recorder = _Recorder(cls)
    try:
        return recorder.publish(headers)  # type: ignore[return-value]
    except Exception as exc:  # both clients must fail alike, whatever the failure
        return type(exc).__name__


_NAME_PARTS = ["ce-id", "x", " ", "\t", "é", ":", "\r\n", "Nats-Msg-Id", "a b", "", "\x00"]


@given(
    headers=st.dictionaries(
        st.lists(st.sampled_from(_NAME_PARTS), max_size=3).map("".join),
        st.one_of(any_text, st.sampled_from(["", " v ", "a\r\nb", "\n", "中文"])),
        max_size=5,
    )
)
def test_headers_are_written_byte_for_byte_as_nats_py_writes_them(headers: dict[str, str]) -> None:
    HubClient._names.clear()  # the name cache must not change what is written either
    assert _written(HubClient, headers) == _written(Client, headers)
