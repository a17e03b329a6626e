"""Dead letters of adapters: a record that can never be delivered, kept in QUARANTINE with its key.

An adapter's dead letter reuses the quarantine stream and `quarantine_envelope`, so
`govhub tail --quarantine` shows it next to refused events, with two more headers:
`govhub-adapter` (which adapter gave up) and `govhub-record-key` (which record, as its origin
names it: an outbox row, a file, an idempotency key). A record that was a hub event (an
outbound adapter) is kept as the original signed event; a department record that never became
one is kept as JSON with `content-type: application/json`, unsigned: it is evidence of what
arrived, not an event. The message id is a hash of the content, so handing the same record out
twice leaves one dead letter.
"""

from __future__ import annotations

from urllib.parse import quote

from hub.bus import H_ADAPTER, H_RECORD_KEY, Publisher, quarantine_envelope
from hub.envelope import H_ID, H_SOURCE, H_TIME, H_TYPE, Envelope, format_time
from hub.errors import Reason
from hub.integration.connector import Record
from hub.jsonout import dumps

H_TRUNCATED = "govhub-truncated"

# A dead letter is evidence for a person, not a transport for bulk data: keep it well inside
# the stream's message limit even when the record held a large value.
MAX_DEAD_LETTER_BYTES = 64 * 1024


def _header_value(text: str) -> str:
    """Header values stay one line of ASCII: non-ASCII (Chinese file names) is percent-encoded."""
    return quote(" ".join(text.split()), safe=" /:@.-_~()[]{}!$&'*+,;=#")[:500]


def dead_letter_envelope(
    record: Record, reason: Reason, detail: str, *, adapter: str, participant: str
) -> Envelope:
    """The quarantine copy of a record an adapter gave up on."""
    extra = {H_ADAPTER: adapter, H_RECORD_KEY: _header_value(record.key)}
    if record.envelope is not None:
        original = record.envelope
        env = Envelope(original.subject, {**original.headers, **extra}, original.body)
        return quarantine_envelope(env, reason, detail)
    body = dumps(record.value, indent=None).encode()
    if len(body) > MAX_DEAD_LETTER_BYTES:
        body = body[:MAX_DEAD_LETTER_BYTES]
        extra[H_TRUNCATED] = "true"
    headers = {
        H_SOURCE: participant,
        H_TYPE: record.kind or "record",
        H_TIME: format_time(record.time),
        "content-type": "application/json",
        **extra,
    }
    if record.id:
        headers[H_ID] = record.id
    subject = record.subject or f"adapter.{participant}.{adapter}"
    return quarantine_envelope(Envelope(subject, headers, body), reason, detail)


class QuarantineDeadLetters:
    """Publishes an adapter's dead letters to the QUARANTINE stream and waits for the ack."""

    def __init__(self, publisher: Publisher, *, adapter: str, participant: str) -> None:
        self._publisher = publisher
        self._adapter = adapter
        self._participant = participant

    async def put(self, record: Record, reason: Reason, detail: str) -> None:
        """Store one dead letter; raises PublishError if the bus did not take it."""
        env = dead_letter_envelope(
            record, reason, detail, adapter=self._adapter, participant=self._participant
        )
        await self._publisher.publish(env)
