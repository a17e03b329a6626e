"""SM2 checkpoint signatures of the gm suite: a second signed-note line, checked by gmssl too."""

from __future__ import annotations

import base64
import math

import pytest

from hub import merkle, suites
from hub.audit import note
from hub.audit.verify import LogKey, Trust, VerificationError, open_checkpoint
from tests.gm_support import gmssl_sm3, gmssl_verify

ORIGIN = "kezhou.govhub.example/log"


def _signers() -> tuple[note.Signer, note.Signer]:
    return note.Signer.generate(ORIGIN), note.Signer(ORIGIN, suites.GM.generate(), note.ALG_SM2)


def _trust(ed: note.Signer, sm2: note.Signer | None) -> Trust:
    keys = [LogKey(ed.verifier, -math.inf, math.inf)]
    extra = [LogKey(sm2.verifier, -math.inf, math.inf)] if sm2 else []
    return Trust(keys, [], 0, {}, "trust file", extra)


def test_an_sm2_vkey_round_trips_and_its_key_id_is_sm3() -> None:
    _, sm2 = _signers()
    vkey = sm2.verifier.vkey()
    parsed = note.Verifier.from_vkey(vkey)
    assert parsed.alg == note.ALG_SM2 and parsed.raw == sm2.verifier.raw
    material = base64.b64decode(vkey.split("+", 2)[2])
    assert material == note.SM2_TYPE + sm2.verifier.raw
    assert parsed.key_id == gmssl_sm3(ORIGIN.encode() + b"\n" + material)[:4]


def test_a_checkpoint_signed_by_both_keys_verifies_with_gmssl_and_with_both_trusts() -> None:
    ed, sm2 = _signers()
    body = note.Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).body()
    signed = note.sign_note(body, ed, sm2)
    parsed = note.parse_note(signed)
    line = next(s for s in parsed.signatures if s.key_id == sm2.key_id)
    assert gmssl_verify(sm2.verifier.raw, line.signature, body.encode())
    # An Ed25519-only verifier ignores the SM2 line; a gm trust requires and checks it.
    assert open_checkpoint(signed, ORIGIN, _trust(ed, None), 0, "cp").checkpoint.size == 0
    assert open_checkpoint(signed, ORIGIN, _trust(ed, sm2), 0, "cp").checkpoint.size == 0


def test_a_gm_trust_refuses_a_checkpoint_without_its_sm2_signature() -> None:
    ed, sm2 = _signers()
    body = note.Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).body()
    with pytest.raises(VerificationError, match="no valid SM2 signature"):
        open_checkpoint(note.sign_note(body, ed), ORIGIN, _trust(ed, sm2), 0, "cp")


def test_a_forged_sm2_line_fails_the_whole_checkpoint() -> None:
    ed, sm2 = _signers()
    body = note.Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).body()
    other = note.Checkpoint(ORIGIN, 1, bytes(32)).body()
    forged_line = sm2.sign(other)
    signed = note.Note(body, (ed.sign(body), forged_line)).format()
    with pytest.raises(VerificationError, match="SM2 signature by"):
        open_checkpoint(signed, ORIGIN, _trust(ed, sm2), 0, "cp")
