"""The receiver checks of the wire contract: nothing reaches user code unless all of them pass.

Order: header form, sender known, key owned by the sender, subject owned by the sender, key
valid at the event time and sender not revoked, signature, schema fingerprint registered,
`ce-type` equal to the schema's name, body decodes completely. Cheap checks come first so a
flood of junk costs little; every failure is a RejectedEvent with a typed Reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.codec import Schema, SchemaCache
from hub.envelope import Envelope, SignedFields, check_signature, read_fields
from hub.errors import Reason, RejectedEvent
from hub.participants import Participant, ParticipantCache
from hub.subjects import may_publish

# Clocks of county servers drift; an event may carry a time slightly after the moment the
# stream stored it, but not more: a far-future ce-time could dodge a coming revocation.
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """An event that passed every receiver check, with its decoded payload."""

    envelope: Envelope
    fields: SignedFields
    sender: Participant
    schema: Schema
    record: Any

    @property
    def event_id(self) -> str:
        """The event id (`ce-id`)."""
        return self.fields.event_id

    @property
    def subject(self) -> str:
        """The NATS subject the event was published on."""
        return self.envelope.subject


class Verifier:
    """Checks envelopes against the participant registry and the schema cache."""

    def __init__(self, participants: ParticipantCache, schemas: SchemaCache) -> None:
        self.participants = participants
        self.schemas = schemas

    def verify(self, env: Envelope, stored_at: datetime | None = None) -> VerifiedEvent:
        """Return the verified event or raise RejectedEvent with the first failed check."""
        fields = read_fields(env)
        sender = self.participants.get(fields.source)
        if sender is None:
            raise RejectedEvent(
                Reason.UNKNOWN_PARTICIPANT,
                f"ce-source {fields.source!r} is not a registered participant",
            )
        if fields.key_participant != fields.source:
            # A key id alone is not enough: the key must belong to the claimed sender, or one
            # participant could sign in another's name with its own valid key.
            raise RejectedEvent(
                Reason.UNKNOWN_KEY,
                f"govhub-key names {fields.key_participant!r}, but the event claims to come from "
                f"{fields.source!r}",
            )
        if not may_publish(fields.source, env.subject):
            raise RejectedEvent(
                Reason.SUBJECT_NOT_ALLOWED,
                f"{fields.source} may not publish on {env.subject}; its subjects are "
                f"<channel>.{fields.source}.>",
            )
        if stored_at is not None and fields.time > stored_at + MAX_CLOCK_SKEW:
            raise RejectedEvent(
                Reason.BAD_HEADER,
                f"ce-time {fields.time_text} is later than the moment the bus stored the event",
            )
        public_key = sender.check_key(fields.key_id, fields.time)
        check_signature(env, fields, public_key)
        body = env.body
        schema = self.schemas.by_fingerprint(body[2:10]) if body[:2] == b"\xc3\x01" else None
        if schema is None:
            # Let the codec produce the precise reason (not Avro vs unknown fingerprint).
            self.schemas.decode(body)
            raise AssertionError("unreachable: decode must have raised")
        if schema.name != fields.type_name:
            raise RejectedEvent(
                Reason.TYPE_MISMATCH,
                f"ce-type says {fields.type_name} but the body was written with {schema.name}",
            )
        record = schema.decode(body)
        return VerifiedEvent(env, fields, sender, schema, record)
