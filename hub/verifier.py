"""The receiver checks of the wire contract: nothing reaches user code unless all of them pass.

Order: header form, sender known, key owned by the sender, subject owned by the sender, key
valid at the event time and sender not revoked, event signed in the suite of that key,
signature, schema fingerprint registered,
`ce-type` equal to the schema's name, body decodes completely. Cheap checks come first so a
flood of junk costs little; every failure is a RejectedEvent with a typed Reason.

Senders run the same checks before publishing (`Verifier.preflight`, called by every
`hub.bus.Publisher` of a hub), so an event a receiver would refuse is never acknowledged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.codec import Schema, SchemaCache
from hub.envelope import Envelope, SignedFields, check_signature, read_fields
from hub.errors import Reason, RejectedEvent, Unpublishable
from hub.participants import Participant, ParticipantCache
from hub.subjects import may_publish

# Clocks of county servers drift; an event may carry a time slightly after the moment the
# stream stored it, but not more: a far-future ce-time could dodge a coming revocation.
MAX_CLOCK_SKEW = timedelta(minutes=5)

# How long a sender waits for its own registry copy to catch up with a change it just made.
REGISTRY_LAG = 5.0


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
        fields, sender, schema = self._admit(env, stored_at, signature=True)
        return VerifiedEvent(env, fields, sender, schema, schema.decode(env.body))

    def preflight(self, env: Envelope) -> None:
        """Refuse, before it is sent, an event a receiver would refuse; raises Unpublishable.

        The receiver's own checks in the receiver's own order, so sender and receiver can
        never disagree, with "now" as the moment the bus stores it. Two are not made again,
        because the sender has just produced what they check: the signature (made with the key
        whose id the key-window check found registered) and the complete decode of the body
        (written by Schema.encode with the schema whose fingerprint was found registered; a
        record that does not fit it is refused there). Re-proving either would cost more than
        signing (an Ed25519 verification, an Avro read per event) and catch only a bug.
        """
        try:
            self._admit(env, datetime.now(UTC), signature=False)
        except RejectedEvent as exc:
            raise Unpublishable(exc.reason, str(exc)) from None

    async def check_outgoing(self, env: Envelope) -> None:
        """`preflight`, waiting a moment for a registry change this process has just made.

        The participant cache follows the registry through a watch; a process that added a
        participant or rotated a key a moment ago may publish before its own copy has the
        change. Refusing then would strand the change half-announced, so an unknown sender or
        key is looked up again for up to REGISTRY_LAG seconds before the refusal stands.
        """
        try:
            self.preflight(env)
        except Unpublishable as exc:
            if exc.reason not in (Reason.UNKNOWN_PARTICIPANT, Reason.UNKNOWN_KEY):
                raise
            with contextlib.suppress(TimeoutError):
                await self.participants.wait_until(
                    lambda _cache: self._knows(env), timeout=REGISTRY_LAG
                )
            self.preflight(env)

    def _knows(self, env: Envelope) -> bool:
        try:
            self.preflight(env)
        except Unpublishable as exc:
            return exc.reason not in (Reason.UNKNOWN_PARTICIPANT, Reason.UNKNOWN_KEY)
        return True

    def _admit(
        self, env: Envelope, stored_at: datetime | None, *, signature: bool
    ) -> tuple[SignedFields, Participant, Schema]:
        """Every check up to the body's decode; the sender, its key and the writer schema."""
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
        registered = sender.key(fields.key_id).suite
        if fields.suite is not registered:
            # The suite is read off the signature's form; a key registered under the other
            # suite must never be asked to verify it, so a hub in migration that holds both
            # suites cannot be talked into judging an SM2 event by Ed25519 rules or back.
            raise RejectedEvent(
                Reason.SUITE_MISMATCH,
                f"event {fields.event_id} is signed in the {fields.suite.name} suite "
                f"({fields.suite.algorithm}) but its sender {fields.source} is registered under "
                f"the {registered.name} suite ({registered.algorithm}) with key {fields.key_id}",
            )
        if signature:
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
        return fields, sender, schema
