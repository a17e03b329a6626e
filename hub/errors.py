"""One error tree for govhub: every failure a person can see is one of these.

```
GovhubError                     one clear sentence in str(), next step in diagnostics()
├── ConfigError                 bad settings, config files or command-line input   (permanent)
├── InputError                  bad data handed to govhub (JSON, schema, file)      (permanent)
├── KeyStoreError               private key missing, unreadable or wrong passphrase (permanent)
├── RegistryError               unknown, duplicate or revoked participant           (permanent)
├── SchemaError                 unknown schema, unparsable schema, name mismatch     (permanent)
├── RejectedEvent               an event failed a receiver check; carries a Reason  (permanent)
├── PublishError                the bus did not accept a publish                    (see subclasses)
│   ├── PublishTimeout          no acknowledgement in time after retries            (retryable)
│   └── StreamFull              the stream is full and refuses new events           (permanent)
├── ServerError                 an embedded or external server is not usable
│   ├── ServerUnavailable       NATS or PostgreSQL cannot be reached                (retryable)
│   └── ServerStartError        an embedded server failed to start                  (permanent)
└── ServiceError                a hub service failed in a way a person must look at
```

Retryable failures derive from `Retryable` as well, so a runtime can decide with one
`isinstance` check whether to back off and retry or to dead-letter.
"""

from __future__ import annotations

import enum


class GovhubError(Exception):
    """Base of every govhub error: `str()` is one sentence for a person."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def diagnostics(self) -> str:
        """What an operator should do next, in one or two sentences (may be empty)."""
        return self.hint


class Retryable:
    """Mixin marking a failure that may succeed if retried later."""


class ConfigError(GovhubError):
    """Settings, a config file or command-line input is wrong."""


class InputError(GovhubError):
    """Data handed to govhub (JSON, a file, a record) cannot be used."""


class KeyStoreError(GovhubError):
    """A private key is missing, unreadable, or its passphrase is wrong."""


class RegistryError(GovhubError):
    """A participant is unknown, duplicated, or not allowed to do what was asked."""


class SchemaError(GovhubError):
    """A schema is unknown, cannot be parsed, or does not match its name."""


class Reason(enum.StrEnum):
    """Why a receiver refused an event; the value is the typed reason code on the wire."""

    MISSING_HEADER = "missing_header"
    BAD_HEADER = "bad_header"
    OVERSIZED = "oversized"
    UNKNOWN_PARTICIPANT = "unknown_participant"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_VALID = "key_not_valid"
    PARTICIPANT_REVOKED = "participant_revoked"
    BAD_SIGNATURE = "bad_signature"
    SUBJECT_NOT_ALLOWED = "subject_not_allowed"
    NOT_AVRO = "not_avro"
    UNKNOWN_SCHEMA = "unknown_schema"
    MALFORMED_BODY = "malformed_body"
    TYPE_MISMATCH = "type_mismatch"
    POISON = "poison"


class RejectedEvent(GovhubError):
    """An event failed one of the receiver checks of the wire contract."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PublishError(GovhubError):
    """The bus did not accept a publish."""


class PublishTimeout(PublishError, Retryable):
    """No acknowledgement arrived in time, even after retries with the same event id."""

    hint = (
        "Check that NATS is running (`govhub status`); "
        "re-sending is safe, the event id deduplicates."
    )


class StreamFull(PublishError):
    """The stream is at its byte or message limit and refuses new events, keeping old ones."""

    hint = (
        "The stream keeps old events rather than dropping them; "
        "raise its limit or restore the uplink."
    )


class ServerError(GovhubError):
    """An embedded or external server is not usable."""


class ServerUnavailable(ServerError, Retryable):
    """NATS or PostgreSQL cannot be reached."""


class ServerStartError(ServerError):
    """An embedded server failed to start; its log file says why."""


class ServiceError(GovhubError):
    """A hub service failed in a way that needs a person."""
