"""Coverage-guided fuzzing of everything a receiver does with one NATS message.

The input is one message as the server would deliver it: the subject, a newline, the header
block (``NATS/1.0...``) up to and including its blank line, then the body. It goes through
govhub's header and subject decoding, the receiver checks of the wire contract, the audit leaf
and the quarantine copy. Only a typed refusal (RejectedEvent) may come out; anything else is a
crash that libFuzzer saves as ``crash-<sha1>`` for a test to be written from.

    python tests/fuzz/fuzz_envelope.py -atheris_runs=1000000 tests/fuzz/corpus/envelope
    python tests/fuzz/fuzz_envelope.py --seeds DIR     # write the seed corpus into DIR

(A corpus folder given to libFuzzer also receives the new inputs it finds: pass a copy of the
committed one for a long run.) tests/test_fuzz_targets.py runs this briefly in the suite.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["hub"]):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub.audit.leaf import build
    from hub.audit.verify import parse_leaf
    from hub.bus import HubClient, quarantine_envelope
    from hub.codec import SchemaCache
    from hub.consumer import Delivery
    from hub.envelope import Envelope, SigningKey, format_time, seal
    from hub.errors import Reason, RejectedEvent
    from hub.participants import Participant, ParticipantCache, ParticipantKey
    from hub.sender import Item, seal_batch
    from hub.verifier import Verifier
    from schemas import SCHEMA_DIR

NOTICE = "gov.common.v1.Notice"
# A fixed key, so the committed seeds carry signatures that verify.
KEY = SigningKey.from_private("akto.civil", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
STORED = SINCE + timedelta(days=10, seconds=1)
SCHEMAS = SchemaCache.from_directory(SCHEMA_DIR)
CLIENT = HubClient()


def _verifier() -> Verifier:
    cache = ParticipantCache()
    cache.put(
        Participant(
            id="akto.civil",
            unit="akto",
            name="akto.civil",
            keys=(ParticipantKey(KEY.key_id, KEY.public_bytes, SINCE),),
        )
    )
    return Verifier(cache, SCHEMAS)


VERIFIER = _verifier()


def _headers(block: bytes) -> dict[str, str]:
    coro = CLIENT._process_headers(block)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value or {}
    raise AssertionError("header processing suspended")


def frame(env: Envelope) -> bytes:
    """One message in this target's input form."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in env.headers.items())
    return env.subject.encode() + b"\n" + f"NATS/1.0\r\n{lines}\r\n".encode() + env.body


def seeds() -> list[bytes]:
    """Honest messages: a v1 event, a v2 batch of three, and an empty header block."""
    when = format_time(SINCE + timedelta(days=10))
    body = SCHEMAS.by_name(NOTICE).encode({"title": "通知", "body": "正文"})
    single = seal(KEY, "evt.akto.civil.notice", NOTICE, body, event_id="seed-1", time_text=when)
    batch = seal_batch(
        KEY,
        [Item(f"evt.akto.civil.n{i}", NOTICE, body, f"seed-b{i}", when) for i in range(3)],
    )
    return [frame(single), *(frame(e) for e in batch), b"evt.akto.civil.x\nNATS/1.0\r\n\r\n"]


def test_one_input(data: bytes) -> None:
    """Receive one message: refuse it with a typed reason or accept it; log and copy it."""
    raw_subject, _, rest = data.partition(b"\n")
    block, end, body = rest.partition(b"\r\n\r\n")
    msg = CLIENT._build_message(1, raw_subject, b"$JS.ACK.x", body, _headers(block + end))
    env = Envelope(msg.subject, dict(msg.headers or {}), msg.data)
    verdict, reason, detail = "accepted", None, None
    try:
        VERIFIER.verify(env, STORED)
    except RejectedEvent as refused:
        verdict, reason, detail = "quarantined", refused.reason.value, str(refused)
        quarantine_envelope(env, refused.reason, detail, stream="GOVHUB", seq=1)
    delivery = Delivery(
        msg=msg, envelope=env, event=None, rejection=None, stream="GOVHUB", seq=1,
        delivered=1, stored_at=STORED, origin=None,
    )  # fmt: skip
    record = build(delivery, verdict, reason, detail)
    parse_leaf(record.leaf)  # the offline verifier can read every leaf
    assert Reason(reason or "poison")


def main() -> None:
    """Fuzz (libFuzzer arguments), or write the seed corpus with ``--seeds DIR``."""
    if sys.argv[1:2] == ["--seeds"]:
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            subject, _, rest = seed.partition(b"\n")
            block, _, body = rest.partition(b"\r\n\r\n")
            if i < 4:  # the honest ones must pass, or the fuzzer starts from refusals only
                VERIFIER.verify(Envelope(subject.decode(), _headers(block + b"\r\n\r\n"), body))
            (folder / f"seed-{i}").write_bytes(seed)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
