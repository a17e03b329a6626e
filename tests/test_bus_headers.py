"""govhub's nats-py client parses and writes message headers exactly as nats-py does, faster."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client

from hub.bus import HubClient

TRICKY = [b"a", b" ", b"\x1c", b":", b"\t", b"\xff", b"\r\n", b"\x0b", b"\xc3\xa9"]


def test_received_headers_parse_as_nats_py_parses_them_for_every_tricky_byte_sequence() -> None:
    for length in range(1, 5):
        for parts in itertools.product(TRICKY, repeat=length):
            raw = b"".join(parts)
            assert HubClient._parse_header_lines(raw) == Client._parse_header_lines(raw), raw
    block = b"ce-id: 1\r\nce-source: akto.civil\r\ngovhub-key: a/b\r\nNats-Msg-Id: 1\r\n\r\n"
    assert HubClient._parse_header_lines(block) == Client._parse_header_lines(block)


class _Recorder:
    """Captures the protocol bytes a client would write, instead of writing them."""

    def __init__(self, cls: type[Client]) -> None:
        self.client = cls()
        self.sent: list[bytes] = []
        self.client._flush_queue = None

        async def send(command: bytes, priority: bool = False) -> None:
            self.sent.append(bytes(command))

        self.client._send_command = send  # type: ignore[method-assign]

    def publish(self, headers: dict[str, Any] | None) -> bytes | type[Exception]:
        try:
            asyncio.run(self.client._send_publish("evt.a.b.c", "_INBOX.1", b"body", 4, headers))
        except nats.errors.Error as exc:
            return type(exc)
        return self.sent[-1]


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"ce-id": "1", "Nats-Msg-Id": "1", "govhub-batch-path": "A" * 400},
        {" padded ": "  value with spaces  ", "x": "line\r\nbreak", "y": "\n"},
        {"": "skipped", "   ": "skipped too", "ok": ""},
        {"bad name": "refused"},
        {"naïve": "refused"},
        {"k": "中文 value"},
    ],
)
def test_published_headers_are_written_byte_for_byte_as_nats_py_writes_them(
    headers: dict[str, Any] | None,
) -> None:
    assert _Recorder(HubClient).publish(headers) == _Recorder(Client).publish(headers)
