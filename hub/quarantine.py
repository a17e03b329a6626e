"""The quarantine stream read back for a person: what was refused or dead-lettered, and why.

Every event a receiver refused (with the reason code and sentence, hub/bus.py
`quarantine_envelope`) and every record an adapter gave up on (hub/integration/deadletter.py)
is a message in QUARANTINE. `recent` reads the newest entries by sequence, newest first,
without a consumer: a page showing the latest refusals must not read the whole stream.
`govhub tail --quarantine` reads it in stream order and shows the same fields (`fields`).

Nothing here is verified: a quarantined message is, by definition, one that failed a check, so
its `ce-source` is only what it claims. The fields are shown as evidence, never trusted.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import nats.errors
import nats.js.errors

from hub.bus import H_ADAPTER, H_DETAIL, H_ORIG_SUBJECT, H_REASON, H_RECORD_KEY, jetstream
from hub.outage import nats_failure
from hub.timetext import rfc3339
from hub.topology import QUARANTINE_STREAM

WINDOW = 2000
"""At most this many of the newest messages are looked at for one read."""


def fields(headers: Mapping[str, str]) -> dict[str, str]:
    """What a person reads of one quarantined message, from its headers ("" when absent)."""
    return {
        "event_id": headers.get("ce-id", ""),
        "source": headers.get("ce-source", ""),
        "type": headers.get("ce-type", ""),
        "subject": headers.get(H_ORIG_SUBJECT, ""),
        "reason": headers.get(H_REASON, ""),
        "detail": headers.get(H_DETAIL, ""),
        "adapter": headers.get(H_ADAPTER, ""),
        # The header carries the key percent-encoded (one line of ASCII); shown as the origin
        # named it.
        "record_key": unquote(headers.get(H_RECORD_KEY, "")),
    }


@dataclass(frozen=True)
class Entry:
    """One quarantined message: its sequence, when it was stored, and its `fields`."""

    seq: int
    stored_at: datetime | None
    fields: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON (what `/console/quarantine` and `tail --quarantine` show)."""
        return {"seq": self.seq, "stored_at": rfc3339(self.stored_at), **self.fields}


async def _headers(nc: Any, hdrs: str | None) -> dict[str, str]:
    """The headers of a stored message as a subscriber receives them.

    nats-py's `get_msg` parses them with the e-mail parser, which turns a value holding
    non-ASCII text (a Chinese reason) into an `email.header.Header` object instead of the
    string; the client's own parser (hub.bus.HubClient) gives what every consumer sees.
    """
    if not hdrs:
        return {}
    parsed: dict[str, str] | None = await nc._process_headers(base64.b64decode(hdrs))
    return {k: v for k, v in (parsed or {}).items() if isinstance(k, str)}


async def recent(
    nc: Any, *, limit: int = 100, source: str | None = None, window: int = WINDOW
) -> list[Entry]:
    """Up to ``limit`` of the newest entries, newest first; only those claiming ``source``
    when given. Looks at no more than ``window`` messages back from the newest."""
    js = jetstream(nc)
    try:
        state = (await js.stream_info(QUARANTINE_STREAM)).state
        entries: list[Entry] = []
        seq = state.last_seq
        oldest = max(state.first_seq, state.last_seq - window + 1, 1)
        while seq >= oldest and len(entries) < limit:
            try:
                msg = await js.get_msg(QUARANTINE_STREAM, seq)
            except nats.js.errors.NotFoundError:
                seq -= 1  # removed by the stream's limits since the info was read
                continue
            found = fields(await _headers(nc, msg.hdrs))
            if source is None or found["source"] == source:
                entries.append(Entry(seq, msg.time, found))
            seq -= 1
    except (nats.errors.Error, TimeoutError) as exc:
        raise nats_failure(exc, f"read the stream {QUARANTINE_STREAM}") from exc
    return entries
