"""The Avro single-object encoding of bodies and the schema cache."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from hub.codec import SchemaCache, crc64_avro, fingerprint, load_schema_file, schema_from_json
from hub.errors import InputError, Reason, RejectedEvent, SchemaError
from schemas import SCHEMA_DIR

NOTICE = "gov.common.v1.Notice"


def test_crc64_avro_matches_the_specification_example_and_fastavro() -> None:
    schema = {"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"}]}
    canonical = to_parsing_canonical_form(schema)
    assert fingerprint(canonical).hex() == "508402f290399300"
    assert fingerprint(canonical).hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")
    # The spec's fingerprint of the empty string is the initial value itself.
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_every_shipped_schema_fingerprint_agrees_with_fastavro() -> None:
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    assert NOTICE in cache.names()
    for name in cache.names():
        schema = cache.by_name(name)
        assert schema.fingerprint_hex == fastavro_fingerprint(schema.canonical, "CRC-64-AVRO")


def test_body_is_c301_then_fingerprint_then_datum_and_round_trips() -> None:
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    notice = cache.by_name(NOTICE)
    body = notice.encode({"title": "停水通知", "body": "明天停水"})
    assert body[:2] == b"\xc3\x01"
    assert body[2:10] == notice.fingerprint
    schema, record = cache.decode(body)
    assert schema is notice
    assert record["title"] == "停水通知"
    assert record["category"] == "general"


def test_a_record_that_does_not_fit_the_schema_is_an_input_error_naming_the_schema() -> None:
    notice = SchemaCache.from_directory(SCHEMA_DIR).by_name(NOTICE)
    with pytest.raises(InputError, match=r"gov\.common\.v1\.Notice"):
        notice.encode({"title": 5, "body": "x"})
    with pytest.raises(InputError, match=r"colour is not a field of gov\.common\.v1\.Notice"):
        notice.encode({"title": "t", "body": "b", "colour": "red"})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", Reason.NOT_AVRO),
        (b'{"title": "json"}', Reason.NOT_AVRO),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02a", Reason.UNKNOWN_SCHEMA),
    ],
)
def test_bodies_that_are_not_registered_avro_are_refused_with_a_typed_reason(
    body: bytes, reason: Reason
) -> None:
    with pytest.raises(RejectedEvent) as caught:
        SchemaCache.from_directory(SCHEMA_DIR).decode(body)
    assert caught.value.reason is reason


def test_truncated_and_overlong_bodies_are_malformed() -> None:
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    body = cache.by_name(NOTICE).encode({"title": "t", "body": "b"})
    for bad in (body[:-3], body + b"\x00\x00"):
        with pytest.raises(RejectedEvent) as caught:
            cache.decode(bad)
        assert caught.value.reason is Reason.MALFORMED_BODY


def test_a_schema_file_must_be_named_after_its_full_name(tmp_path: Path) -> None:
    path = tmp_path / "gov.test.v1.Wrong.avsc"
    path.write_text(
        json.dumps({"type": "record", "name": "Right", "namespace": "gov.test.v1", "fields": []})
    )
    with pytest.raises(SchemaError, match=r"must be named gov\.test\.v1\.Right\.avsc"):
        load_schema_file(path)


def test_invalid_json_and_invalid_avro_schemas_are_schema_errors(tmp_path: Path) -> None:
    broken = tmp_path / "gov.test.v1.Broken.avsc"
    broken.write_text("{not json")
    with pytest.raises(SchemaError, match="Broken.avsc: not valid JSON: Expecting property name"):
        load_schema_file(broken)
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        schema_from_json({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})


def test_a_fingerprint_collision_between_different_schemas_is_refused() -> None:
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    other = schema_from_json({"type": "record", "name": "gov.test.v1.Other", "fields": []})
    impostor = replace(other, fingerprint=cache.by_name(NOTICE).fingerprint)
    with pytest.raises(SchemaError, match="collides"):
        cache.add(impostor)
    assert cache.by_name(NOTICE).name == NOTICE


def test_unknown_schema_names_list_known_ones() -> None:
    with pytest.raises(SchemaError, match=r"gov\.common\.v1\.Notice"):
        SchemaCache.from_directory(SCHEMA_DIR).by_name("gov.common.v1.Nope")


# --- one fingerprint, several schemas -----------------------------------------------------------


def payment(amount: object, note: dict[str, object] | None = None) -> dict[str, object]:
    fields: list[object] = [{"name": "id", "type": "long"}, {"name": "amount", "type": amount}]
    return {
        "type": "record",
        "name": "Payment",
        "namespace": "akto.civil.v1",
        "fields": fields + ([note] if note else []),
    }


def decimal(scale: int) -> dict[str, object]:
    return {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": scale}


def test_schemas_that_differ_only_in_defaults_share_a_fingerprint_but_are_not_equal() -> None:
    plain = schema_from_json(payment("long", {"name": "note", "type": "string"}))
    defaulted = schema_from_json(payment("long", {"name": "note", "type": "string", "default": ""}))
    assert plain.fingerprint == defaulted.fingerprint
    assert plain != defaulted and plain.digest != defaulted.digest


def test_a_reader_whose_decimal_scale_differs_from_the_writers_cannot_read_it() -> None:
    # fastavro would hand over the writer's 12.34; the specification says the two do not match
    writer, reader = schema_from_json(payment(decimal(2))), schema_from_json(payment(decimal(3)))
    body = writer.encode({"id": 1, "amount": Decimal("12.34")})
    with pytest.raises(SchemaError, match=r"cannot read data written with .*decimal\(12,2\)"):
        writer.decode_as(body, reader)
    assert writer.decode_as(body, writer) == {"id": 1, "amount": Decimal("12.34")}


def test_the_cache_refuses_a_schema_its_fingerprint_cannot_tell_from_a_cached_one() -> None:
    cache = SchemaCache([schema_from_json(payment(decimal(2)))])
    rescaled = schema_from_json(payment(decimal(3)))
    with pytest.raises(SchemaError, match="other logical types .*decimal scale 3"):
        cache.add(rescaled)
    assert cache.by_name(rescaled.name).digest != rescaled.digest


def test_a_names_current_schema_is_the_version_added_not_the_first_of_its_fingerprint() -> None:
    first = schema_from_json(payment("long", {"name": "note", "type": "string", "default": "a"}))
    later = schema_from_json(payment("long", {"name": "note", "type": "string", "default": "b"}))
    cache = SchemaCache([first])
    cache.add(later)
    assert cache.by_fingerprint(first.fingerprint) is first  # what bodies decode with
    assert cache.by_name(first.name) is later  # what publishers write with: default "b"
    _, value = cache.decode(cache.by_name(first.name).encode({"id": 1, "amount": 2}))
    assert value == {"id": 1, "amount": 2, "note": "b"}
