"""Hostile records: directory entries and document manifests, as files and as signed events.

An entry file comes from a department (`govhub dir publish FILE`), and the same rules run again
on every entry that arrives on the bus; a manifest arrives inside a signed DocumentSent event
from any enrolled sender. Both are damaged here and must fail only with the typed errors their
callers turn into a refusal (EntryInvalid, InputError), and what they accept must be storable:
PostgreSQL text and JSON cannot hold U+0000.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hub.cli.audit import _trusted_keys
from hub.cli.events import parse_data
from hub.codec import SchemaCache
from hub.consumer import Delivery
from hub.crypto import KeyWrap, wraps_from_bytes, wraps_to_bytes
from hub.directory.apply import BatchApplier
from hub.directory.deadlines import parse_policy
from hub.directory.events import Kind as DirKind
from hub.directory.events import check_request_id, dir_subject
from hub.directory.model import Entry, template
from hub.directory.validation import parse_entry
from hub.envelope import Envelope, SignedFields
from hub.errors import ConfigError, ContentCorrupted, EntryInvalid, InputError, Reason
from hub.exchange.model import Manifest, check_doc_id
from hub.jsonout import to_jsonable
from hub.participants import Participant
from hub.userfiles import json_argument
from hub.verifier import VerifiedEvent
from schemas import SCHEMA_DIR
from tests.hostile import (
    avro_values,
    deep_json_text,
    hostile_bytes,
    hostile_text,
    mutated_json,
    only,
    scaled,
    typed,
)

SCHEMAS = SchemaCache.from_directory(SCHEMA_DIR)
TEMPLATE = template()
ENTRY = parse_entry(TEMPLATE)
PUBLISHED = SCHEMAS.by_name("gov.directory.v1.EntryPublished")
SENT = SCHEMAS.by_name("gov.exchange.v1.DocumentSent")
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _storable(record: Any) -> None:
    assert "\\u0000" not in json.dumps(to_jsonable(record)), "PostgreSQL cannot store this"


# --- directory entries ----------------------------------------------------------------------


def test_an_entry_file_round_trips_through_the_file_and_the_signed_record() -> None:
    assert parse_entry(ENTRY.to_file()) == ENTRY
    _, decoded = SCHEMAS.decode(PUBLISHED.encode(ENTRY.to_record()))
    assert Entry.from_record(decoded) == ENTRY


@given(data=mutated_json(TEMPLATE))
@example(data={**TEMPLATE, "classification": {**TEMPLATE["classification"], "category": [],
                                              "code": "201001"}})  # fmt: skip
@example(data={**TEMPLATE, "code": "١٠١٠٠١-٠٠٠٠١٧"})  # Arabic-Indic digits
@example(data={**TEMPLATE, "title": "人口\x00统计"})
@example(data={**TEMPLATE, "sharing": {}})  # once taken as "no sharing rules to check"
@example(data={**TEMPLATE, "classification": {}})
def test_a_damaged_entry_file_is_entry_invalid_and_what_passes_can_be_stored(data: Any) -> None:
    entry = only(EntryInvalid)(lambda: parse_entry(data))
    if isinstance(entry, Entry):
        _storable(entry.to_json_record())
        assert entry.code.isascii() and entry.class_code.isascii()
        assert parse_entry(entry.to_file()) == entry


@scaled(0.5)
@given(record=avro_values(PUBLISHED.parsed))
def test_any_signed_entry_record_is_applied_or_refused_as_an_invalid_entry(record: Any) -> None:
    # What the directory does with a verified EntryPublished event (hub/directory/apply.py).
    entry = only(EntryInvalid)(lambda: parse_entry(Entry.from_record(record).to_file()))
    if isinstance(entry, Entry):
        _storable(entry.to_json_record())


# --- document manifests ---------------------------------------------------------------------


def _check(record: Any) -> Manifest:
    manifest = Manifest.from_record(record)
    manifest.check()
    return manifest


@scaled(0.5)
@given(record=avro_values(SENT.parsed))
def test_any_signed_manifest_is_taken_or_refused_as_inconsistent(record: Any) -> None:
    manifest = only(InputError)(lambda: _check(record))
    if isinstance(manifest, Manifest):
        _storable(manifest.to_record())
        assert len(manifest.sha256) == len(manifest.chunk_list_sha256) == 32


GOOD_MANIFEST = {
    "doc_id": "019a0000-0000-7000-8000-000000000001", "title": "关于开展社会救助的通知",
    "doc_number": "克政办发〔2026〕12号", "sender": "pref.office", "recipients": ["akto.office"],
    "file_name": "notice.pdf", "media_type": "application/pdf", "size": 10, "sha256": bytes(32),
    "chunk_size": 262144, "chunk_count": 1, "chunk_digests": [bytes(32)],
    "chunk_list_sha256": bytes(32), "index_parts": 0, "classification": "PUBLIC",
    "urgency": "NORMAL", "deadline": None, "store_domain": "", "store_stream": "DOCS_PREF",
    "store_prefix": "docs.pref.x", "encryption": None,
}  # fmt: skip


def test_a_consistent_manifest_passes_even_with_a_title_over_two_lines() -> None:
    assert _check(GOOD_MANIFEST).doc_id == GOOD_MANIFEST["doc_id"]
    assert _check({**GOOD_MANIFEST, "title": "关于开展\n社会救助的通知"}).title.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipients": ["Akto.Office"]}, "participant id 'Akto.Office' must be"),
        ({"sender": "pref.office\n"}, "participant id 'pref.office\\n' must be"),
        ({"doc_id": "019a0000-0000-7000-8000-000000000001\n"}, "is not a document id"),
        ({"title": "通知\x00"}, "its title holds a control character"),
        ({"sha256": b"short"}, "digest is not 32 bytes"),
        ({"chunk_digests": [b"x"]}, "digest is not 32 bytes"),
        ({"index_parts": -1}, "impossible number of index parts"),
    ],
)
def test_an_inconsistent_manifest_is_an_input_error_naming_what_is_wrong(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("\\", "\\\\").replace("(", r"\(")):
        _check({**GOOD_MANIFEST, **change})


@pytest.mark.parametrize("check", [check_doc_id, check_request_id])
def test_an_id_with_a_final_newline_is_refused_before_it_meets_a_subject(check: Any) -> None:
    with pytest.raises(InputError, match="is not a"):
        check("019a0000-0000-7000-8000-000000000001\n")


# --- JSON a person hands the CLI: `publish --data`, `dir publish FILE`, `audit verify --trust` ---


@given(text=st.one_of(hostile_text('{"title": "t", "body": "b"}'), st.just(deep_json_text(50_000))))
@example(text=deep_json_text(50_000))
def test_publish_data_of_any_shape_is_an_input_error_or_an_object(text: str) -> None:
    value = typed(lambda: parse_data(text))
    assert isinstance(value, InputError | dict)


@example(text=deep_json_text(50_000))
@given(text=hostile_text(json.dumps(TEMPLATE, ensure_ascii=False)))
def test_an_entry_file_of_any_text_is_an_input_error_or_json(text: str) -> None:
    typed(lambda: json_argument(text, "the entry file"))


def test_a_trust_file_nested_past_the_stack_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(deep_json_text(50_000))
    with pytest.raises(ConfigError, match="it nests too deeply$"):
        _trusted_keys(None, str(path))  # type: ignore[arg-type]  # a trust file: no log needed


# --- the sealed key list a confidential document's sender stores beside its chunks ----------

WRAPS = wraps_to_bytes([KeyWrap("akto.office", "0011223344556677", "x25519", bytes(48))])


@given(data=st.one_of(hostile_bytes(WRAPS), st.just(deep_json_text(50_000).encode())))
@example(data=b'[{"recipient": "akto.office"}]')  # once "unreadable: 'key_id'"
@example(data=deep_json_text(50_000).encode())
def test_a_damaged_sealed_key_list_is_content_corrupted(data: bytes) -> None:
    wraps = typed(lambda: wraps_from_bytes(data))
    assert isinstance(wraps, ContentCorrupted | list)


async def test_a_signed_directory_event_that_cannot_be_applied_is_refused_in_plain_words() -> None:
    # A record the directory cannot read (here: one without its fields, as an older writer
    # schema could give) is refused, and the refusal a person reads holds no Python repr.
    env = Envelope(dir_subject("akto.stats", DirKind.PUBLISHED, "101001-000017"), {}, b"")
    fields = SignedFields("e1", "akto.stats", PUBLISHED.name, NOW, "", "akto.stats", "k", b"")
    sender = Participant(id="akto.stats", unit="akto", name="akto.stats")
    event = VerifiedEvent(env, fields, sender, PUBLISHED, {})
    delivery = Delivery(None, env, event, None, "GOVHUB", 1, 1, NOW, None)  # type: ignore[arg-type]
    applier = BatchApplier(None, parse_policy("", "config.toml"), "pref.egov")  # type: ignore[arg-type]
    step = await applier.apply(delivery)
    assert (step.outcome, step.reason) == ("refused", Reason.INVALID_ENTRY)
    assert (
        step.detail == "it cannot be applied: a field is missing or holds a value of the wrong kind"
    )
