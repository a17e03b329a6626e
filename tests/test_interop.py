"""A message captured from NATS decodes with another Avro library and verifies with an
independent Ed25519 verifier, following docs/protocol.md and nothing else from govhub."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json

import avro.io
import avro.schema
import nats

from hub.runtime import Hub
from schemas import SCHEMA_DIR
from tests.independent.avro_pcf import canonical_form, crc64_avro
from tests.independent.ed25519 import verify


def _signing_input(subject: str, headers: dict[str, str], body: bytes) -> bytes:
    # Written from docs/protocol.md, section "Signing input".
    lines = [
        "govhub-sig-v1",
        subject,
        headers["ce-id"],
        headers["ce-source"],
        headers["ce-type"],
        headers["ce-time"],
        hashlib.sha256(body).hexdigest(),
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


async def test_a_captured_event_decodes_with_apache_avro_and_verifies_with_rfc8032(
    hub: Hub,
) -> None:
    raw = await nats.connect(hub.nats_url)
    captured: asyncio.Queue[nats.aio.msg.Msg] = asyncio.Queue()

    async def capture(msg: nats.aio.msg.Msg) -> None:
        await captured.put(msg)

    await raw.subscribe("evt.akqi.health.>", cb=capture)
    await raw.flush()
    await hub.publish(
        "akqi.health", "gov.common.v1.Notice", {"title": "接种通知", "body": "冬季接种"}
    )
    msg = await asyncio.wait_for(captured.get(), 10)
    await raw.close()

    headers = dict(msg.headers or {})
    assert headers["ce-specversion"] == "1.0"
    assert headers["content-type"] == "application/avro"
    assert headers["Nats-Msg-Id"] == headers["ce-id"]
    body = msg.data

    # Body: C3 01, 8-byte little-endian CRC-64-AVRO fingerprint, then the datum.
    schema_text = (SCHEMA_DIR / f"{headers['ce-type']}.avsc").read_text(encoding="utf-8")
    schema = avro.schema.parse(schema_text)
    assert body[:2] == b"\xc3\x01"
    pcf = canonical_form(json.loads(schema_text))
    assert body[2:10] == crc64_avro(pcf.encode()).to_bytes(8, "little")
    decoder = avro.io.BinaryDecoder(io.BytesIO(body[10:]))
    record = avro.io.DatumReader(schema).read(decoder)
    assert record["title"] == "接种通知"
    assert schema.fullname == headers["ce-type"]

    # Signature: the public key comes from the registry as any receiver would get it.
    entry = json.loads(
        (await (await hub.nc.jetstream().key_value("govhub_participants")).get("akqi.health")).value
    )
    public = base64.b64decode(entry["public_key"])
    owner, _, kid = headers["govhub-key"].partition("/")
    assert owner == headers["ce-source"] == "akqi.health"
    assert kid == hashlib.sha256(public).digest()[:8].hex()
    signature = base64.b64decode(headers["govhub-sig"])
    assert verify(public, _signing_input(msg.subject, headers, body), signature)
    assert not verify(public, _signing_input(msg.subject, headers, body + b"x"), signature)


def _from_file(full_name: str) -> object:
    return json.loads((SCHEMA_DIR / f"{full_name}.avsc").read_text(encoding="utf-8"))


def test_every_shipped_schema_fingerprint_follows_the_specification() -> None:
    from hub.codec import SchemaCache

    cache = SchemaCache.from_directory(SCHEMA_DIR)
    for name in cache.names():
        source = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))
        schema = cache.by_name(name)
        assert schema.canonical == canonical_form(source, _from_file), name
        assert schema.fingerprint == crc64_avro(schema.canonical.encode()).to_bytes(8, "little")
