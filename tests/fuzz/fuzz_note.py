"""Coverage-guided fuzzing of signed notes, checkpoints, cosignatures and witness requests.

The input is anything a log, a witness or an auditor is handed as a note: it is parsed as a
signed note, opened as a checkpoint of the log (with its witness's cosignature), read as a
verifier key, and posted to a witness as an add-checkpoint request. Only the note module's typed
errors (NoteError) and a witness's HTTP answer may come out; anything else is a crash.

    python tests/fuzz/fuzz_note.py -atheris_runs=1000000 tests/fuzz/corpus/note
    python tests/fuzz/fuzz_note.py --seeds DIR         # write the seed corpus into DIR

(Pass a copy of the committed corpus for a long run: libFuzzer adds what it finds to it.)
tests/test_fuzz_targets.py runs this briefly in the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

import atheris
import structlog

with atheris.instrument_imports(include=["hub"]):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub import merkle
    from hub.audit import note
    from hub.audit.checkpoints import read_cosignature, resync_size
    from hub.audit.note import ALG_COSIGNATURE_V1, Checkpoint, NoteError, Signer, Verifier
    from hub.audit.witness import Witness, format_request

ORIGIN = "kezhou.govhub.example/audit"
# Fixed keys, so the committed seeds carry signatures that verify.
LOG = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
WITNESS = Signer(
    "witness.akto.govhub.example",
    Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))),
    ALG_COSIGNATURE_V1,
)
ROOT = merkle.leaf_hash(b"seed")
_STATE = tempfile.TemporaryDirectory(prefix="govhub-fuzz-witness-")
WITNESS_SERVER = Witness(WITNESS, lambda: {ORIGIN: [LOG.verifier]}, Path(_STATE.name))
LOOP = asyncio.new_event_loop()
# Witnesses log every refusal; a fuzzer makes millions of them.
structlog.configure(logger_factory=structlog.ReturnLoggerFactory())


def seeds() -> list[bytes]:
    """A signed and cosigned checkpoint, a witness request, a cosignature line, the keys."""
    body = Checkpoint(ORIGIN, 17, ROOT, ("extension line",)).body()
    signed = note.sign_note(body, LOG)
    cosigned = note.cosign(signed, WITNESS, timestamp=1_772_400_000)
    request = format_request(0, [], signed)
    line = WITNESS.sign(body, timestamp=1_772_400_000).line()
    return [
        cosigned.encode(), request, line.encode(), LOG.verifier.vkey().encode(),
        WITNESS.verifier.vkey().encode(), b"17\n",
    ]  # fmt: skip


def test_one_input(data: bytes) -> None:
    """Read one input every way a note arrives; only typed errors may come out."""
    text = data.decode("utf-8", "replace")
    try:
        parsed = note.parse_note(data)
        note.verify_signatures(parsed, [LOG.verifier, WITNESS.verifier])
        Checkpoint.parse(parsed.text)
    except NoteError:
        pass
    try:
        checkpoint, _ = note.open_checkpoint(text, [LOG.verifier], ORIGIN)
        assert checkpoint.origin == ORIGIN
    except NoteError:
        pass
    with contextlib.suppress(NoteError):
        Verifier.from_vkey(text)
    signed = note.sign_note(Checkpoint(ORIGIN, 17, ROOT).body(), LOG)
    read_cosignature(signed, text, WITNESS.verifier)
    resync_size(text)
    answer = LOOP.run_until_complete(WITNESS_SERVER.add_checkpoint(data))
    assert answer.status in (200, 400, 403, 404, 409, 422), answer


def main() -> None:
    """Fuzz (libFuzzer arguments), or write the seed corpus with ``--seeds DIR``."""
    if sys.argv[1:2] == ["--seeds"]:
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (folder / f"seed-{i}").write_bytes(seed)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
