"""A batch of govhub-sig-v2 events captured from NATS verifies with code written from
docs/protocol.md alone: RFC 9162 hashing (tests/rfc9162.py) and a plain RFC 8032 verifier."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import nats

from hub.runtime import Hub
from hub.sender import BatchSender
from tests import rfc9162
from tests.independent.ed25519 import verify


def _statement(subject: str, headers: dict[str, str], body: bytes) -> bytes:
    # docs/protocol.md, "Batch signatures (govhub-sig-v2)": the event statement.
    lines = [
        "govhub-event-v2",
        subject,
        headers["ce-id"],
        headers["ce-source"],
        headers["ce-type"],
        headers["ce-time"],
        hashlib.sha256(body).hexdigest(),
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


async def test_a_captured_batch_verifies_with_rfc_9162_and_rfc_8032_from_the_spec(
    hub: Hub,
) -> None:
    raw = await nats.connect(hub.nats_url)
    captured: asyncio.Queue[nats.aio.msg.Msg] = asyncio.Queue()

    async def capture(msg: nats.aio.msg.Msg) -> None:
        await captured.put(msg)

    await raw.subscribe("evt.artux.finance.>", cb=capture)
    await raw.flush()
    schema = hub.schemas.by_name("gov.common.v1.Notice")
    sender = BatchSender(hub.publisher, hub.keystore.current("artux.finance"), linger=0.05)
    for i in range(7):
        sender.submit_record(
            "evt.artux.finance.notice", schema, {"title": f"预算 {i}", "body": "b"}
        )
    await sender.flush()
    msgs = [await asyncio.wait_for(captured.get(), 10) for _ in range(7)]
    await raw.close()

    events = sorted(
        ((dict(m.headers or {}), m.subject, m.data) for m in msgs),
        key=lambda e: int(e[0]["govhub-batch-index"]),
    )
    size = int(events[0][0]["govhub-batch-size"])
    assert size == 7 and [int(h["govhub-batch-index"]) for h, _, _ in events] == list(range(7))
    assert all("govhub-sig" not in h for h, _, _ in events)
    statements = [_statement(subject, h, body) for h, subject, body in events]
    root = rfc9162.mth(statements)
    for (headers, _, _), statement in zip(events, statements, strict=True):
        path = base64.b64decode(headers["govhub-batch-path"])
        hashes = [path[i : i + 32] for i in range(0, len(path), 32)]
        index = int(headers["govhub-batch-index"])
        assert rfc9162.verify_inclusion(rfc9162.leaf(statement), index, size, hashes, root)

    signatures = {h["govhub-batch-sig"] for h, _, _ in events}
    assert len(signatures) == 1
    entry = json.loads(
        (
            await (await hub.nc.jetstream().key_value("govhub_participants")).get("artux.finance")
        ).value
    )
    public = base64.b64decode(entry["public_key"])
    owner, _, kid = events[0][0]["govhub-key"].partition("/")
    assert owner == "artux.finance" and kid == hashlib.sha256(public).digest()[:8].hex()
    signed = f"govhub-sig-v2\nartux.finance\n{size}\n{root.hex()}\n".encode()
    signature = base64.b64decode(signatures.pop())
    assert verify(public, signed, signature)
    assert not verify(public, signed.replace(b"\n7\n", b"\n8\n"), signature)
