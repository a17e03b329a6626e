"""Hostile input to the audit log: leaves, signed notes, checkpoints, witnesses, tiles, bundles.

The offline verifier and the note, Merkle and tile modules it uses import only the standard
library and `cryptography` (an auditor runs them on a machine without govhub), so their typed
errors are their own (NoteError, ProofError, TileError, BundleError, VerificationError) rather
than govhub's tree; the property is the same: those, with a clear message, and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub import merkle
from hub.audit import note, tiles
from hub.audit.checkpoints import Checkpointer, read_cosignature, resync_size
from hub.audit.fsck import VerifyReport, _check_columns
from hub.audit.leaf import build, requalify
from hub.audit.note import ALG_COSIGNATURE_V1, Checkpoint, NoteError, Signer, Verifier
from hub.audit.reader import StoredCheckpoint
from hub.audit.tiles import MAX_ENTRY_SIZE, Tile, TileError
from hub.audit.verify import (
    BundleError,
    VerificationError,
    load_trust,
    main,
    parse_leaf,
    verify_bundle,
)
from hub.audit.witness import HttpWitnessClient, Witness, format_request
from hub.bus import HubClient
from hub.consumer import Delivery
from hub.envelope import Envelope
from hub.errors import Reason, TamperEvidence
from tests.hostile import (
    any_text,
    deep_json_text,
    hostile_bytes,
    hostile_text,
    ints,
    mutated_bytes,
    mutated_json,
    only,
    scaled,
)
from tests.test_audit_verify import (
    LOG_KEY,
    NOW,
    SENDERS,
    WITNESSES,
    Log,
    b64,
    standard_bundle,
    standard_leaves,
    trust_for,
)

ORIGIN = "kezhou.gov.cn/audit/2026"
LOG = Signer.generate(ORIGIN)
WITNESS = Signer.generate("witness.akto.gov.cn", ALG_COSIGNATURE_V1)
ROOT = merkle.leaf_hash(b"root")
CHECKPOINT = Checkpoint(ORIGIN, 5, ROOT, ("ext line",))
SIGNED = note.cosign(note.sign_note(CHECKPOINT.body(), LOG), WITNESS, timestamp=1_772_400_000)

# --- leaves: whatever NATS delivers is logged, and every leaf reads back offline -------------

_HEADER_BYTES = [
    b"ce-id", b"ce-source", b"ce-time", b"Nats-Msg-Id", b"X", b"x", b": ", b"\r\n", b"\xff",
    b"\xc3\xa9", b"\x00", b" ", b"govhub-sig", b"CE-ID", b"a" * 300,
]  # fmt: skip
header_blocks = st.lists(st.sampled_from(_HEADER_BYTES), max_size=16).map(b"".join)


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    """Messages as a receiver gets them: decoded by HubClient, whatever the publisher wrote."""
    subject = draw(hostile_bytes(b"evt.akto.civil.notice")).decode("utf-8", "replace")
    headers = HubClient._parse_header_lines(draw(header_blocks))
    if draw(st.booleans()):
        # Values arrive as bytes and are decoded with replacement: never a lone surrogate.
        text = any_text.map(lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        headers[draw(st.sampled_from(["ce-time", "x-big"]))] = draw(
            st.one_of(text, st.integers(0, 70_000).map(lambda n: "A" * n))
        )
    body = draw(st.one_of(st.binary(max_size=64), st.integers(0, 70_000).map(bytes)))
    origin = draw(st.one_of(st.none(), st.tuples(st.text(max_size=8), st.integers(1, 2**63))))
    return Delivery(
        msg=None,  # type: ignore[arg-type]  # never acked here
        envelope=Envelope(subject, headers, body),
        event=None,
        rejection=None,
        stream="GOVHUB",
        seq=draw(st.integers(1, 2**63)),
        delivered=1,
        stored_at=datetime(2026, 3, 1, tzinfo=UTC),
        origin=origin,
    )


@scaled(0.5)
@given(
    delivery=deliveries(),
    verdict=st.sampled_from(["accepted", "quarantined"]),
    detail=st.one_of(st.none(), any_text, st.just("d" * 2000)),
)
def test_every_delivered_message_makes_a_leaf_that_fits_a_tile_and_reads_back_offline(
    delivery: Delivery, verdict: str, detail: str | None
) -> None:
    record = build(delivery, verdict, None if verdict == "accepted" else "bad_header", detail)
    assert len(record.leaf) <= MAX_ENTRY_SIZE
    leaf = parse_leaf(record.leaf)
    env = delivery.envelope
    if "omitted to fit" not in (leaf["detail"] or ""):  # kept whole: it round-trips exactly
        assert (leaf["subject"], leaf["headers"]) == (env.subject, dict(env.headers))
        assert base64.b64decode(leaf["body"]) == env.body
    again = requalify(record, Reason.POISON, "handling failed")
    assert parse_leaf(again.leaf)["verdict"] == "quarantined"


# --- signed notes and checkpoints -----------------------------------------------------------


def _signed_by_the_log(body: str) -> str:
    """A damaged checkpoint body the log key really signed (when it is signable at all)."""
    try:
        return note.sign_note(body, LOG)
    except NoteError:
        return body


damaged_notes = st.one_of(hostile_text(SIGNED), hostile_bytes(SIGNED.encode()))
notes = st.one_of(damaged_notes, hostile_text(CHECKPOINT.body()).map(_signed_by_the_log))


@given(data=notes)
@example(data="x\n\n— a " + "A" * 5000 + "\n")
@example(data=SIGNED.replace("kezhou", "\ud800ezhou", 1))
def test_damaged_notes_are_refused_with_a_note_error(data: str | bytes) -> None:
    only(NoteError)(lambda: note.parse_note(data))


@given(data=damaged_notes)
def test_a_damaged_checkpoint_never_opens_as_anything_but_what_the_log_signed(
    data: str | bytes,
) -> None:
    opened = only(NoteError)(lambda: note.open_checkpoint(data, [LOG.verifier], ORIGIN))
    if not isinstance(opened, NoteError):
        assert opened[0] == CHECKPOINT


@given(body=hostile_text(CHECKPOINT.body()))
@example(body="\ud800" + CHECKPOINT.body()[1:])  # once a UnicodeEncodeError out of sign()
def test_a_damaged_body_the_log_did_sign_opens_to_exactly_that_body(body: str) -> None:
    signed = _signed_by_the_log(body)
    opened = only(NoteError)(lambda: note.open_checkpoint(signed, [LOG.verifier]))
    if not isinstance(opened, NoteError):
        assert opened[0].body() == body


_LINE = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=20)


@given(
    origin=_LINE.filter(lambda s: "\n" not in s),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3),
)
def test_a_checkpoint_signed_by_the_log_opens_to_exactly_what_was_signed(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    signed = note.sign_note(checkpoint.body(), LOG)
    cosigned = note.cosign(signed, WITNESS, timestamp=1_772_400_000)
    opened, verified = note.open_checkpoint(cosigned, [LOG.verifier])
    assert opened == checkpoint and [v.verifier for v in verified] == [LOG.verifier]
    _, witnessed = note.open_note(cosigned, [WITNESS.verifier])
    assert witnessed[0].timestamp == 1_772_400_000


@given(text=st.one_of(hostile_text(LOG.verifier.vkey()), hostile_text(WITNESS.verifier.vkey())))
@example(text="\ud800" + LOG.verifier.vkey()[1:])  # a JSON trust file can escape a surrogate
def test_damaged_verifier_keys_are_a_key_format_error(text: str) -> None:
    parsed = only(NoteError)(lambda: Verifier.from_vkey(text))
    if isinstance(parsed, Verifier):
        assert parsed.vkey() == text


@given(text=hostile_text(LOG.skey()))
@example(text="PRIVATE+KEY+\ud800" + LOG.skey()[13:])
def test_damaged_signer_keys_are_a_key_format_error(text: str) -> None:
    only(NoteError)(lambda: Signer.from_skey(text))


# --- what a witness gets (anyone may post) and what the log gets back from witnesses -------


@pytest.fixture(scope="module")
def witness() -> Any:
    with tempfile.TemporaryDirectory() as folder:
        yield Witness(WITNESS, lambda: {ORIGIN: [LOG.verifier]}, Path(folder))


REQUEST = format_request(0, [], note.sign_note(CHECKPOINT.body(), LOG))


@given(body=hostile_bytes(REQUEST))
@example(body=b"old \xc2\xb2\n\n" + REQUEST.split(b"\n\n", 1)[1])  # "old ²": a Unicode digit
@example(body=b"old " + b"9" * 5000 + b"\n\n" + REQUEST.split(b"\n\n", 1)[1])
def test_a_witness_answers_every_request_with_a_status_and_never_fails(
    witness: Witness, body: bytes
) -> None:
    answer = asyncio.run(witness.add_checkpoint(body))
    assert answer.status in (200, 400, 403, 404, 409, 422), answer


@given(lines=st.one_of(hostile_text(WITNESS.sign(CHECKPOINT.body(), timestamp=1).line()), any_text))
def test_the_log_takes_a_witness_answer_only_if_it_is_a_valid_cosignature(lines: str) -> None:
    plain = note.sign_note(CHECKPOINT.body(), LOG)
    found = read_cosignature(plain, lines, WITNESS.verifier)
    if found is not None:
        assert note.verify_signatures(note.parse_note(plain + found.line()), [WITNESS.verifier])[0]


@given(body=st.one_of(hostile_text("17\n"), st.sampled_from(["²", "٣", "9" * 5000, "-1", " 1"])))
def test_a_witness_size_answer_is_a_plain_decimal_or_ignored(body: str) -> None:
    size = resync_size(body)
    assert size is None or (0 <= size < 2**64 and str(size) == body.strip())


# --- tiles and Merkle proofs ----------------------------------------------------------------

tile_values = st.builds(
    Tile,
    st.one_of(st.just(tiles.ENTRIES), st.integers(0, 63)),
    st.integers(0, 2**64),
    st.integers(1, 256),
)


@given(tile=tile_values)
def test_every_tile_path_parses_back_to_its_tile(tile: Tile) -> None:
    assert tiles.parse_tile_path(tile.path()) == tile


@given(path=st.one_of(tile_values.map(Tile.path).flatmap(hostile_text), any_text))
@example(path="tile/0/" + "x001/" * 1500 + "000")
@example(path="tile/" + "9" * 5000 + "/000")
@example(path="tile/0/000.p/" + "9" * 5000)
def test_damaged_tile_paths_are_a_tile_error(path: str) -> None:
    tile = only(TileError)(lambda: tiles.parse_tile_path(path))
    if isinstance(tile, Tile):
        assert tile.path() == path


@given(entries=st.lists(st.binary(max_size=300), max_size=20))
def test_entry_bundles_decode_to_the_entries_they_were_made_of(entries: list[bytes]) -> None:
    assert tiles.decode_entry_bundle(tiles.encode_entry_bundle(entries)) == entries


@given(data=hostile_bytes(tiles.encode_entry_bundle([b"leaf one", b"", b"leaf three"])))
def test_damaged_entry_bundles_are_a_tile_error(data: bytes) -> None:
    only(TileError)(lambda: tiles.decode_entry_bundle(data))


@given(data=st.binary(max_size=200), width=st.integers(1, 256))
def test_hash_tiles_of_the_wrong_length_are_a_tile_error(data: bytes, width: int) -> None:
    only(TileError)(lambda: tiles.split_tile(data, Tile(0, 0, width)))


hashes = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))


@given(index=ints, size=ints, proof=st.lists(hashes, max_size=8), leaf=hashes, root=hashes)
def test_inclusion_proofs_of_any_shape_verify_or_are_a_proof_error(
    index: int, size: int, proof: list[bytes], leaf: bytes, root: bytes
) -> None:
    only(merkle.ProofError)(lambda: merkle.verify_inclusion(leaf, index, size, proof, root))
    assert merkle.root_from_inclusion(leaf, index, size, proof) is None or len(leaf) == 32


@given(old=ints, new=ints, proof=st.lists(hashes, max_size=8), a=hashes, b=hashes)
def test_consistency_proofs_of_any_shape_verify_or_are_a_proof_error(
    old: int, new: int, proof: list[bytes], a: bytes, b: bytes
) -> None:
    only(merkle.ProofError)(lambda: merkle.verify_consistency(old, new, a, b, proof))


# --- evidence bundles and trust files for the offline verifier -------------------------------

BUNDLE = standard_bundle()
REPORT = verify_bundle(BUNDLE, now=NOW)


@scaled(0.3)
@given(bundle=mutated_json(BUNDLE))
def test_a_damaged_bundle_is_refused_or_verifies_to_what_the_log_signed(bundle: Any) -> None:
    report = only(BundleError, VerificationError)(lambda: verify_bundle(bundle, now=NOW))
    if not isinstance(report, Exception):
        assert (report.tree_size, report.root_hash) == (REPORT.tree_size, REPORT.root_hash)


@given(trust=mutated_json(trust_for(BUNDLE)))
def test_a_damaged_trust_file_is_refused_with_a_bundle_error(trust: Any) -> None:
    only(BundleError)(lambda: load_trust(trust, "trust file"))


TEXT = json.dumps(BUNDLE).encode()


@settings(
    max_examples=scaled(0.2).max_examples,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.one_of(
        mutated_bytes(TEXT),
        st.sampled_from([deep_json_text(100_000).encode(), b'{"a":' * 5000, b"\xff\xfe"]),
    )
)
@example(data=deep_json_text(100_000).encode())
def test_the_verifier_command_exits_1_or_2_for_damaged_bundle_files(
    data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(data)
        handle.flush()
        status = main([handle.name])
    err = capsys.readouterr().err
    assert status in (0, 1, 2) and (status == 0 or err.count("\n") == 1), err


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, "²".encode()),  # isdigit() says yes, int() says no
        (409, b"9" * 5000),  # int() refuses 4,300 digits and more
        (200, b"\xff\xfe\xe2\x80\x94 witness.akto.gov.cn AAAA\n"),  # not UTF-8
    ],
)
async def test_a_hostile_witness_answer_is_ignored_not_raised_by_the_log(
    status: int, body: bytes
) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_post("/add-checkpoint", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = HttpWitnessClient(WITNESS.verifier, f"http://127.0.0.1:{port}")
        plain = note.sign_note(CHECKPOINT.body(), LOG)
        stored = StoredCheckpoint(5, ROOT, plain, (), None, None)
        checkpointer = Checkpointer(None, None, [client])  # type: ignore[arg-type]  # no SQL here
        assert await checkpointer._ask(client, stored) is None
    finally:
        await runner.cleanup()


# --- `govhub audit verify --full` reads stored leaves as evidence -----------------------------

STORED_LEAF = standard_leaves(1)[0]
STORED_ROW = {
    "idx": 0, "event_id": "01JEVENT000000", "source": "artux.finance",
    "type": "gov.exchange.v1.DocumentSent", "subject": "gov.out.artux.finance.doc",
    "verdict": "accepted", "reason": None, "event_key": "01JEVENT000000",
    "received_at": datetime(2026, 3, 1, 9, tzinfo=UTC),
}  # fmt: skip


@given(leaf=st.one_of(hostile_bytes(STORED_LEAF), st.sampled_from([b'{"v":1}', b"[1]"])))
@example(leaf=b'{"v":1,"headers":{},"body":""}')  # once a KeyError out of `verify --full`
@example(leaf=STORED_LEAF.replace(b'"reason":null,', b""))  # a null field left out
def test_a_tampered_stored_leaf_is_tamper_evidence(leaf: bytes) -> None:
    report = VerifyReport(0, 0, None, None, [])
    only(TamperEvidence)(lambda: _check_columns(STORED_ROW, leaf, None, report))  # type: ignore[arg-type]


def _logged(leaf: dict[str, Any], *, ascii_only: bool = False) -> str:
    raw = json.dumps(leaf, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    bundle = Log([raw], LOG_KEY, WITNESSES).bundle([1], [0])
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, now=NOW)
    return str(caught.value)


def test_a_logged_event_with_an_escaped_lone_surrogate_is_reported_not_raised() -> None:
    leaf = json.loads(SENDERS[0].event_leaf(0))
    leaf["headers"]["ce-type"] += "\ud800"  # JSON can escape it; UTF-8 cannot carry it
    assert _logged(leaf, ascii_only=True) == "entry 0 (leaf index 0): leaf is not UTF-8 JSON"


@pytest.mark.parametrize("name", ["govhub-batch-index", "govhub-batch-size"])
def test_a_logged_batch_event_with_a_number_of_thousands_of_digits_is_reported(name: str) -> None:
    leaf = json.loads(SENDERS[0].event_leaf(0))
    headers = leaf["headers"]
    del headers["govhub-sig"]
    headers.update({"govhub-batch-sig": b64(bytes(64)), "govhub-batch-index": "0",
                    "govhub-batch-size": "2", "govhub-batch-path": b64(bytes(32))})  # fmt: skip
    headers[name] = "1" * 5000
    assert _logged(leaf).endswith("the batch signature headers of key "
                                  f"{headers['govhub-key']} are malformed")  # fmt: skip


def test_a_leaf_whose_detail_quotes_an_undecodable_file_name_is_still_logged() -> None:
    delivery = Delivery(
        None, Envelope("evt.akto.civil.x", {}, b""), None, None, "GOVHUB", 1, 5,  # type: ignore[arg-type]
        datetime(2026, 3, 1, tzinfo=UTC), None,
    )  # fmt: skip
    record = build(delivery, "quarantined", "poison", "cannot read /srv/\udcff.pdf")
    assert parse_leaf(record.leaf)["detail"] == "cannot read /srv/?.pdf"
    again = requalify(record, Reason.POISON, "last error: /srv/\udcfe")
    assert parse_leaf(again.leaf)["detail"] == "last error: /srv/?"
