"""C2SP signed notes, checkpoints and tlog-cosignature v1, with Go sumdb/note known answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hub import merkle
from hub.audit import note
from hub.audit.note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    KeyFormatError,
    MalformedNoteError,
    SignatureError,
    Signer,
    Verifier,
)

GO = json.loads((Path(__file__).parent / "vectors/sumdb_note_golang.json").read_text())
TEXT, PETER_SIG, ENOCH_SIG = GO["text"], GO["peter_sig_line"], GO["enoch_sig_line"]
PETER = Verifier.from_vkey(GO["peter_vkey"])
ENOCH = Verifier.from_vkey(GO["enoch_vkey"])
ORIGIN = "kezhou.gov.cn/audit/2026"


def checkpoint_note(size: int = 5, *signers: Signer) -> str:
    body = Checkpoint(ORIGIN, size, merkle.leaf_hash(b"root")).body()
    return note.sign_note(body, *signers)


def test_go_signer_key_signs_the_known_answer_note_byte_for_byte() -> None:
    signer = Signer.from_skey(GO["peter_skey"])
    assert signer.verifier.vkey() == GO["peter_vkey"]
    assert note.sign_note(TEXT, signer) == TEXT + "\n" + PETER_SIG
    assert signer.skey() == GO["peter_skey"]


def test_go_verifier_keys_round_trip_and_compute_the_same_key_id() -> None:
    assert PETER.key_id.hex() == "c74f20a3" and PETER.vkey() == GO["peter_vkey"]
    assert ENOCH.key_id.hex() == "af0cfe78" and ENOCH.vkey() == GO["enoch_vkey"]


def test_every_mangling_of_a_verifier_key_is_rejected() -> None:
    vkey = GO["peter_vkey"]
    manglings = [vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)]
    manglings += [vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))]
    for bad in [*manglings, *GO["bad_vkeys"]]:
        if bad == vkey:
            continue
        with pytest.raises(KeyFormatError):
            Verifier.from_vkey(bad)


def test_every_mangling_of_a_signer_key_is_rejected() -> None:
    skey = GO["peter_skey"]
    manglings = [skey[i:j] for i in range(0, len(skey) + 1, 3) for j in range(i + 1, len(skey) + 1)]
    manglings += [skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :] for i in range(len(skey))]
    for bad in manglings:
        if bad == skey:
            continue
        with pytest.raises(KeyFormatError):
            Signer.from_skey(bad)


def test_open_verifies_known_signatures_and_ignores_unknown_ones() -> None:
    msg = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    parsed, verified = note.open_note(msg, [PETER])
    assert parsed.text == TEXT
    assert [v.verifier.name for v in verified] == ["PeterNeumann"]
    _, both = note.open_note(msg, [PETER, ENOCH])
    assert [v.verifier.name for v in both] == ["PeterNeumann", "EnochRoot"]


def test_a_note_with_no_known_signature_is_rejected() -> None:
    with pytest.raises(SignatureError, match="no valid signature from a known key"):
        note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])


def test_a_known_key_with_a_bad_signature_rejects_the_whole_note() -> None:
    tampered = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError, match=r"PeterNeumann\+c74f20a3 is invalid"):
        note.open_note(TEXT + "\n" + tampered, [PETER])
    with pytest.raises(SignatureError):
        note.open_note(TEXT.replace("answer", "amswer") + "\n" + PETER_SIG, [PETER])


def test_a_key_sharing_only_the_name_or_only_the_id_is_unknown() -> None:
    renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    rehashed = PETER_SIG.replace("x08g", "xxxx")
    for sig in (renamed, rehashed):
        parsed = note.parse_note(TEXT + "\n" + sig)
        assert note.verify_signatures(parsed, [PETER]) == ([], list(parsed.signatures))


def test_duplicate_signatures_are_counted_once() -> None:
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG
    verified, unknown = note.verify_signatures(note.parse_note(msg), [PETER])
    assert len(verified) == 1 and len(unknown) == 1


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\n" + "— PeterNeumann AAAA\n",
    ],
)
def test_malformed_notes_are_rejected_before_any_signature_check(msg: str) -> None:
    with pytest.raises(MalformedNoteError):
        note.open_note(msg, [PETER])


def test_invalid_utf8_is_a_malformed_note() -> None:
    with pytest.raises(MalformedNoteError, match="UTF-8"):
        note.parse_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())


def test_checkpoint_body_matches_the_go_sumdb_known_answer() -> None:
    tree = Checkpoint("go.sum database tree", 123456789012, merkle.leaf_hash(b"hello world"))
    assert tree.body() == GO["tree_note_text"]
    assert Checkpoint.parse(GO["tree_note_text"]) == tree


def test_checkpoint_extension_lines_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(cp.body()) == cp


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n5\n",  # no root
        f"{ORIGIN}\n05\n{base64.b64encode(b'x' * 32).decode()}\n",  # leading zero
        f"{ORIGIN}\n-5\n{base64.b64encode(b'x' * 32).decode()}\n",
        f"{ORIGIN}\n0x5\n{base64.b64encode(b'x' * 32).decode()}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(b'x' * 31).decode()}\n",  # short root
        f"{ORIGIN}\n5\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        f"{ORIGIN}\n5\n{base64.b64encode(b'x' * 32).decode()}",  # no final newline
        f"{ORIGIN}\n5\n{base64.b64encode(b'x' * 32).decode()}\n\nx\n",  # empty extension
        f"\n5\n{base64.b64encode(b'x' * 32).decode()}\n",  # empty origin
    ],
)
def test_malformed_checkpoints_are_rejected(body: str) -> None:
    with pytest.raises(MalformedNoteError):
        Checkpoint.parse(body)


def test_open_checkpoint_pins_the_origin() -> None:
    log = Signer.generate(ORIGIN)
    cp, verified = note.open_checkpoint(checkpoint_note(5, log), [log.verifier], ORIGIN)
    assert cp.size == 5 and verified[0].timestamp is None
    with pytest.raises(MalformedNoteError, match="origin"):
        note.open_checkpoint(checkpoint_note(5, log), [log.verifier], "other.example/log")


def test_cosignature_round_trip_carries_the_witness_timestamp() -> None:
    log = Signer.generate(ORIGIN)
    witness = Signer.generate("witness.artux.gov.cn", ALG_COSIGNATURE_V1)
    cosigned = note.cosign(checkpoint_note(5, log), witness, timestamp=1_679_315_147)
    assert cosigned.startswith(checkpoint_note(5, log))
    wv = Verifier.from_vkey(witness.verifier.vkey())
    assert wv.alg == ALG_COSIGNATURE_V1
    verified, unknown = note.verify_signatures(note.parse_note(cosigned), [wv])
    assert [(v.verifier.name, v.timestamp) for v in verified] == [(witness.name, 1_679_315_147)]
    assert [u.name for u in unknown] == [ORIGIN]


def test_cosignature_signs_the_c2sp_message_and_key_id_uses_type_0x04() -> None:
    witness = Signer.generate("w.example", ALG_COSIGNATURE_V1)
    body = Checkpoint(ORIGIN, 7, merkle.EMPTY_ROOT).body()
    sig = witness.sign(body, timestamp=42)
    assert sig.key_id == note.key_id("w.example", 0x04, witness.verifier.raw)
    assert sig.signature[:8] == (42).to_bytes(8, "big") and len(sig.signature) == 72
    message = f"cosignature/v1\ntime 42\n{body}".encode()
    witness.verifier.public_key.verify(sig.signature[8:], message)


def test_the_c2sp_example_cosignature_line_parses_to_its_timestamp() -> None:
    line = (
        "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
        "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    parsed = note.parse_note(body + "\n" + line)
    sig = parsed.signatures[0]
    assert sig.key_id.hex() == "8d66cf3f"
    assert int.from_bytes(sig.signature[:8], "big") == 1_679_315_147
    assert Checkpoint.parse(parsed.text).size == 20852163


def test_a_tampered_cosignature_timestamp_fails_verification() -> None:
    log = Signer.generate(ORIGIN)
    witness = Signer.generate("w.example", ALG_COSIGNATURE_V1)
    cosigned = note.parse_note(note.cosign(checkpoint_note(5, log), witness, timestamp=100))
    forged = cosigned.signatures[1]
    forged = note.NoteSignature(
        forged.name, forged.key_id, b"\x00" * 7 + b"\x65" + forged.signature[8:]
    )
    with pytest.raises(SignatureError):
        note.verify_signatures(note.Note(cosigned.text, (forged,)), [witness.verifier])


def test_a_log_key_does_not_verify_a_cosignature_with_the_same_key_material() -> None:
    shared = Signer.generate("same.example")
    as_witness = Verifier(shared.name, shared.verifier.public_key, ALG_COSIGNATURE_V1)
    signed = note.parse_note(checkpoint_note(5, shared))
    assert note.verify_signatures(signed, [as_witness])[0] == []


def test_a_note_signature_cannot_carry_a_timestamp() -> None:
    with pytest.raises(ValueError, match="no timestamp"):
        Signer.generate("log.example").sign("x\n", timestamp=5)


def test_signer_repr_never_shows_the_private_key() -> None:
    signer = Signer.generate("log.example")
    assert "PRIVATE" not in repr(signer) and signer.skey().split("+")[-1] not in repr(signer)


def test_add_signatures_keeps_existing_lines_and_drops_duplicates() -> None:
    log = Signer.generate(ORIGIN)
    witness = Signer.generate("w.example", ALG_COSIGNATURE_V1)
    signed = checkpoint_note(5, log)
    line = witness.sign(note.parse_note(signed).text, timestamp=1)
    once = note.add_signatures(signed, line)
    assert note.add_signatures(once, line) == once
    assert len(note.parse_note(once).signatures) == 2


def test_two_different_keys_with_the_same_name_and_id_are_ambiguous() -> None:
    a = Verifier("x.example", Signer.generate("x.example").verifier.public_key)
    b = Verifier("x.example", Signer.generate("x.example").verifier.public_key)
    object.__setattr__(b, "key_id", a.key_id)
    with pytest.raises(SignatureError, match="two keys share the name and id"):
        note.verify_signatures(note.parse_note(checkpoint_note(1, Signer.generate("y"))), [a, b])
