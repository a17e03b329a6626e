"""A hostile publisher, writing NATS protocol bytes by hand, cannot stop or wedge a receiver.

nats-server forwards a message's subject and header block as the publisher wrote them, and
JetStream stores them that way. Each message below once either ended the receiving connection's
read loop (every subscription of the process then went silent) or was taken for a server status
by the pull consumer (never delivered, never quarantined); now each is delivered, refused with a
typed reason and quarantined, and the honest event sent after them arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.service import AuditLog
from hub.bus import H_REASON, Publisher, connect, provision
from hub.codec import SchemaCache
from hub.consumer import Consumer
from hub.envelope import Envelope, SigningKey, seal
from hub.participants import Participant, ParticipantCache, ParticipantKey
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM, hub_streams
from hub.verifier import Verifier
from schemas import SCHEMA_DIR
from tests.servers import NatsServer
from tests.unchecked import publish_unchecked

NOTICE = "gov.common.v1.Notice"
KEY = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
KEY_SINCE = datetime(2020, 1, 1, tzinfo=UTC)

# (subject, header block) pairs no honest client writes.
HOSTILE = [
    (b"evt.akto.civil.\xff\xfe", b"NATS/1.0\r\nce-id: 1\r\n\r\n"),  # subject not UTF-8
    (b"evt.akto.civil.a", b"NATS/1.0 \xff\xfe\r\n\r\n"),  # status line not UTF-8
    (b"evt.akto.civil.b", b"NATS/1.0 100 \xc9dle\r\nk: v\r\n\r\n"),  # description not UTF-8
    (b"evt.akto.civil.c", b"N\r\n\r\n"),  # shorter than the version line
    (b"evt.akto.civil.d", b"NATS/1.0 404 No Messages\r\n\r\n"),  # a server status, forged
    (b"evt.akto.civil.e", b"NATS/1.0\r\nStatus: 503\r\n\r\n"),  # a status header, forged
    (b"evt.akto.civil.f", b"NATS/1.0\r\nStatus: 408\r\nce-id: 2\r\n\r\n"),
]


class RawPublisher:
    """A NATS client written by hand: it sends whatever bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawPublisher:
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"headers":true,"protocol":1}\r\n')
        return cls(reader, writer)

    async def send(self, subject: bytes, header: bytes, body: bytes = b"x") -> None:
        size = len(header)
        self._writer.write(
            b"HPUB %s %d %d\r\n%s%s\r\n" % (subject, size, size + len(body), header, body)
        )
        self._writer.write(b"PING\r\n")
        await self._writer.drain()
        line = await self._reader.readline()
        while line.startswith(b"INFO "):  # the server may send its INFO again after CONNECT
            line = await self._reader.readline()
        assert line == b"PONG\r\n", f"the server refused the message: {line!r}"

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


@pytest.fixture
async def raw(nats_server: NatsServer) -> AsyncIterator[RawPublisher]:
    publisher = await RawPublisher.open(nats_server.url)
    yield publisher
    await publisher.close()


async def test_a_subscriber_keeps_receiving_after_subjects_and_headers_that_are_not_utf8(
    nats_server: NatsServer, raw: RawPublisher
) -> None:
    nc = await connect(nats_server.url)
    received: list[str] = []
    done = asyncio.Event()

    async def handle(msg: object) -> None:
        received.append(msg.subject)  # type: ignore[attr-defined]
        if msg.subject == "evt.akto.civil.honest":  # type: ignore[attr-defined]
            done.set()

    await nc.subscribe("evt.>", cb=handle)
    await nc.flush()
    for subject, header in HOSTILE:
        await raw.send(subject, header)
    await nc.publish("evt.akto.civil.honest", b"after")
    async with asyncio.timeout(5):
        await done.wait()
    await nc.close()
    assert len(received) == len(HOSTILE) + 1
    assert received[0] == "evt.akto.civil.\ufffd\ufffd"


async def test_hostile_messages_in_a_stream_are_refused_and_quarantined_and_none_is_lost(
    nats_server: NatsServer, raw: RawPublisher
) -> None:
    nc = await connect(nats_server.url)
    await provision(nc, hub_streams())
    participants = ParticipantCache()
    participants.put(
        Participant(
            id="akto.civil",
            unit="akto",
            name="akto.civil",
            keys=(ParticipantKey(KEY.key_id, KEY.public_bytes, KEY_SINCE),),
        )
    )
    schemas = SchemaCache.from_directory(SCHEMA_DIR)
    publisher = Publisher(nc)
    for subject, header in HOSTILE:
        await raw.send(subject, header)
    honest = seal(
        KEY,
        "evt.akto.civil.notice",
        NOTICE,
        schemas.by_name(NOTICE).encode({"title": "t", "body": "b"}),
    )
    await publisher.publish(honest)
    consumer = Consumer(
        nc, Verifier(participants, schemas), publisher, stream=HUB_STREAM, durable="reader",
        subjects=["evt.>"],
    )  # fmt: skip
    accepted = []
    async with asyncio.timeout(10):
        while not accepted:
            accepted += await consumer.fetch_verified(64, timeout=0.5)
    await consumer.stop()
    assert [d.envelope.event_id for d in accepted] == [honest.event_id]
    reader = Consumer(
        nc, Verifier(participants, schemas), publisher, stream=QUARANTINE_STREAM, durable=None,
        quarantine=False,
    )  # fmt: skip
    copies = await reader.fetch(64, timeout=1.0)
    await reader.stop()
    await publisher.close()
    await nc.close()
    assert len(copies) == len(HOSTILE)
    assert {c.envelope.headers[H_REASON] for c in copies} <= {"missing_header"}


async def test_nul_characters_in_subjects_and_headers_never_stop_the_audit_log(hub: Hub) -> None:
    # PostgreSQL text refuses U+0000; the leaf's search columns are text, so one such message
    # once failed every batch of the appender from then on.
    honest = hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"})
    signed_nul_id = hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"}, event_id="id\x00")
    forged = Envelope("evt.akto.civil.\x00", {**honest.headers, "ce-source": "akto\x00civil",
                      "ce-type": "x\x00", "ce-id": "nul-1", "Nats-Msg-Id": "nul-1"},
                      honest.body)  # fmt: skip
    await publish_unchecked(hub.nc, signed_nul_id, forged, honest)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up(timeout=20)
    rows = await hub.pool.fetch("SELECT event_id, verdict, reason FROM audit_leaves")
    verdicts = {r["event_id"]: (r["verdict"], r["reason"]) for r in rows}
    assert verdicts[honest.event_id] == ("accepted", None)
    assert verdicts["id\ufffd"] == verdicts["nul-1"] == ("quarantined", "bad_header")
    assert len(rows) == await _stream_messages(hub, HUB_STREAM)


async def _stream_messages(hub: Hub, stream: str) -> int:
    info = await hub.nc.jetstream().stream_info(stream)
    return int(info.state.messages)
