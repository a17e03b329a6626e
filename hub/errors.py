"""One error tree for govhub: every failure a person can see is one of these.

```
GovhubError                     one clear sentence in str(), next step in diagnostics()
├── ConfigError                 bad settings, config files or command-line input   (permanent)
├── InputError                  bad data handed to govhub (JSON, schema, file)      (permanent)
├── OutputError                 an output file cannot be written (folder, disk full) (permanent)
├── KeyStoreError               private key missing, unreadable or wrong passphrase (permanent)
├── RegistryError               unknown, duplicate or revoked participant           (permanent)
├── SchemaError                 unknown schema, unparsable schema, name mismatch     (permanent)
│   └── SchemaIncompatible      breaks its subject's compatibility mode; `reasons`   (permanent)
│       └── SchemaIndistinguishable a registered fingerprint, other logical types    (permanent)
├── RejectedEvent               an event failed a receiver check; carries a Reason  (permanent)
│   ├── Unpublishable           receivers would refuse it, so it was never sent     (permanent)
│   └── RuleBroken              a verified event breaks a domain rule; quarantined  (permanent)
│       └── NotYetKnown         names a document or case not seen yet; retried      (retryable)
├── PublishError                the bus did not accept a publish                    (see subclasses)
│   ├── PublishTimeout          no acknowledgement in time after retries            (retryable)
│   └── StreamFull              the stream is full and refuses new events           (permanent)
├── AccessDenied                the NATS server refused a user or a subject         (permanent)
├── ServerError                 an embedded or external server is not usable
│   ├── ServerUnavailable       NATS or PostgreSQL cannot be reached                (retryable)
│   ├── ServerStartError        an embedded server failed to start                  (permanent)
│   └── CannotListen            an HTTP server cannot bind its address (in use...)  (retryable)
├── AuditError                  the audit log cannot answer or does not verify
│   ├── NotInLog                an event id or tree size the log does not hold      (permanent)
│   └── TamperEvidence          stored leaves, tiles or checkpoints fail to verify  (permanent)
├── ExchangeError               a document exchange step cannot proceed
│   ├── FileChanged             the file changed while it was being sent            (permanent)
│   ├── ContentCorrupted        stored content fails its signed digest              (permanent)
│   ├── NotRecipient            the participant is not a party to the document      (permanent)
│   ├── UnknownDocument         no document with that id is known                   (permanent)
│   ├── DocumentClosed          recalled, expired or already answered               (permanent)
│   └── TransferInterrupted     the connection dropped; the same command resumes    (retryable)
├── DirectoryError              a resource directory step cannot proceed
│   ├── EntryInvalid            breaks the catalog rules; `problems` name the fields (permanent)
│   ├── UnknownResource         no resource with that code is in the directory      (permanent)
│   ├── NotProvider             only the resource's provider may do this            (permanent)
│   ├── ResourceClosed          withdrawn, or not shared (不予共享)                   (permanent)
│   ├── UnknownRequest          no access request with that id is known (yet)       (permanent)
│   ├── RequestClosed           the request was already answered, revoked or expired (permanent)
│   └── NoGrant                 no valid grant covers this participant              (permanent)
├── ApprovalError               a parallel-approval (并联审批) step cannot proceed
│   ├── UnknownCaseType         no case type of that name is configured             (permanent)
│   ├── UnknownCase             no case with that id has been opened (yet)          (permanent)
│   ├── NotLead                 only the case's lead department may do this         (permanent)
│   ├── NotAssigned             the department is not a reviewer of the case        (permanent)
│   └── CaseClosed              decided, withdrawn, or this step was already taken  (permanent)
└── ServiceError                a hub service failed in a way a person must look at
```

Retryable failures derive from `Retryable` as well, so a runtime can decide with one
`isinstance` check whether to back off and retry or to dead-letter.

A few modules subclass these next to the code that raises them: `SchemaParseError`
(SchemaError, hub/avro/graph.py), `UnknownSuite` (ConfigError, hub/suites.py), `TileError`
and `StaleState` (AuditError, hub/audit/), `SignInError` and `SignInRefused` (the console).
Library failures are wrapped with `raise ... from exc`: the bus layer raises nats-py's as
ServerUnavailable or ServerError naming what it was doing (hub.outage.nats_failure).

Outside the tree, on purpose: the errors of the offline verifier (hub/audit/verify.py,
hub/merkle.py, hub/audit/note.py), which an auditor runs from those three files alone
(docs/audit.md); the hub's own callers turn them into AuditError, TamperEvidence or
ConfigError. tests/test_error_tree.py checks both rules.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


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


class OutputError(GovhubError):
    """A file a person asked govhub to write cannot be written: no such folder, a folder, full."""


class KeyStoreError(GovhubError):
    """A private key is missing, unreadable, or its passphrase is wrong."""


class RegistryError(GovhubError):
    """A participant is unknown, duplicated, or not allowed to do what was asked."""


class SchemaError(GovhubError):
    """A schema is unknown, cannot be parsed, or does not match its name."""


class SchemaIncompatible(SchemaError):
    """A schema breaks its subject's compatibility mode; `reasons` name each path and rule."""

    def __init__(self, message: str, reasons: Sequence[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = tuple(reasons)


class SchemaIndistinguishable(SchemaIncompatible):
    """A schema has the fingerprint of a registered one but other logical types (a decimal's
    scale, a timestamp's unit): bodies of the two could not be told apart, so it is refused in
    every mode; `reasons` name each attribute."""


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
    # The event is signed in one crypto suite (hub/suites.py) but the key it names is
    # registered in the other: refused before any signature is checked.
    SUITE_MISMATCH = "suite_mismatch"
    SUBJECT_NOT_ALLOWED = "subject_not_allowed"
    NOT_AVRO = "not_avro"
    UNKNOWN_SCHEMA = "unknown_schema"
    MALFORMED_BODY = "malformed_body"
    TYPE_MISMATCH = "type_mismatch"
    POISON = "poison"
    DUPLICATE_ID = "duplicate_id"
    # Dead letters of adapters (hub.integration.pipeline): a department record that does not fit its
    # mapping or schema, and a record the department's target system refused for good.
    UNMAPPABLE = "unmappable"
    SINK_REFUSED = "sink_refused"
    # Document exchange (hub.exchange.tracker): receipts and notices that do not fit the
    # document they name are refused into quarantine like any other bad event.
    UNKNOWN_DOCUMENT = "unknown_document"
    NOT_RECIPIENT = "not_recipient"
    NOT_SENDER = "not_sender"
    RECEIPT_MISMATCH = "receipt_mismatch"
    # Resource directory (hub.directory.materializer): signed events that break the catalog's
    # rules (a code another provider owns, a grant by someone who is not the provider, ...).
    INVALID_ENTRY = "invalid_entry"
    DUPLICATE_CODE = "duplicate_code"
    STALE_VERSION = "stale_version"
    UNKNOWN_RESOURCE = "unknown_resource"
    RESOURCE_CLOSED = "resource_closed"
    NOT_PROVIDER = "not_provider"
    UNKNOWN_REQUEST = "unknown_request"
    REQUEST_CLOSED = "request_closed"
    # Parallel approval (hub.approval.projection): signed case events that break the case's
    # rules (an opinion signed by someone other than the reviewer it names, a decision that
    # does not follow from the opinions, a step by a department that is not the lead).
    UNKNOWN_CASE = "unknown_case"
    NOT_LEAD = "not_lead"
    NOT_ASSIGNED = "not_assigned"
    NOT_REVIEWER = "not_reviewer"
    NOT_OPERATOR = "not_operator"
    CASE_MISMATCH = "case_mismatch"
    CASE_CLOSED = "case_closed"


class RejectedEvent(GovhubError):
    """An event failed one of the receiver checks of the wire contract."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unpublishable(RejectedEvent, InputError):
    """An event every receiver would refuse, refused by its sender before anything was sent.

    The sender makes the receivers' own checks (hub.verifier.Verifier.preflight) before it
    publishes, so nothing is acknowledged that a receiver will quarantine; `reason` is the
    code a receiver would have given. Also an InputError: the data or the signer must change.
    """


class RuleBroken(RejectedEvent):
    """A verified event breaks a rule of the state it changes (a document, the directory, a
    case): nothing of it is applied, and the service quarantines it with its `reason`.

    The signature and schema checks passed (those failures are plain RejectedEvents); what
    fails is the event's meaning, such as a receipt signed by someone who is not a recipient.
    """


class NotYetKnown(RuleBroken, Retryable):
    """A verified event names a document or case that has not reached the hub (yet).

    Events travel on several streams and may overtake one another, so the service retries
    it a few times before it quarantines it with its `reason`.
    """


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


class AccessDenied(GovhubError):
    """The NATS server refused: credentials revoked or unknown, or a subject not permitted.

    Raised in a federated deployment, where every participant connects with its own nkey and
    the server enforces what it may publish (hub/federation/permissions.py).
    """

    hint = (
        "A participant may publish only on <channel>.<its id>.>; "
        "check `govhub participant show ID` for revocation."
    )


class ServerError(GovhubError):
    """An embedded or external server is not usable."""


class ServerUnavailable(ServerError, Retryable):
    """NATS or PostgreSQL cannot be reached."""


class ServerStartError(ServerError):
    """An embedded server failed to start; its log file says why."""


class CannotListen(ServerError, Retryable):
    """An HTTP server of govhub cannot listen on its address: in use, not local, not allowed.

    Retryable: a port held by a process that is shutting down is free again soon; a webhook
    adapter keeps trying (degraded, with this sentence as its error) instead of failing.
    """

    hint = "Choose another port, or stop what listens there (`ss -ltnp` shows it)."


class ServiceError(GovhubError):
    """A hub service failed in a way that needs a person."""


class AuditError(GovhubError):
    """The audit log cannot answer a question, or what it stores does not verify."""


class NotInLog(AuditError):
    """An event id, leaf index or tree size is not (yet) covered by the audit log."""


class TamperEvidence(AuditError):
    """Stored leaves, tiles, state or checkpoints do not verify; `index` names the first bad leaf.

    `index` is None when the failure cannot be tied to one leaf (a checkpoint signature).
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ExchangeError(GovhubError):
    """A document exchange step cannot proceed."""


class FileChanged(ExchangeError):
    """The file changed (size, time or bytes) while it was being sent; nothing was announced."""

    hint = "Send the file again once nothing is writing to it."


class ContentCorrupted(ExchangeError):
    """Stored document content does not match the digests its sender signed."""

    hint = (
        "The copy in the sender's store is damaged or was altered; "
        "ask the sender to send the document again."
    )


class NotRecipient(ExchangeError):
    """The participant is neither the sender nor a recipient of the document."""


class UnknownDocument(ExchangeError):
    """No document with that id has been seen on the bus."""


class DocumentClosed(ExchangeError):
    """The document was recalled or expired, or this recipient has already answered it."""


class TransferInterrupted(ExchangeError, Retryable):
    """The connection dropped during a transfer for longer than the retry budget."""

    hint = "Run the same command again: chunks already transferred are kept and not sent again."


class DirectoryError(GovhubError):
    """A resource directory step (publish, request, grant, share, receive) cannot proceed."""


class EntryInvalid(DirectoryError, InputError):
    """A directory entry breaks the catalog rules; `problems` holds (field, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(f"{field}: {message}" for field, message in self.problems)
        count = len(self.problems)
        super().__init__(
            f"the entry has {count} problem{'s' if count != 1 else ''}: {listed}",
            hint="`govhub dir template` prints a complete entry; docs/directory.md lists its keys.",
        )


class UnknownResource(DirectoryError):
    """No resource with that code is in the directory."""

    hint = "Find resources with `govhub dir search`; a county offline may not have sent it yet."


class NotProvider(DirectoryError):
    """Only the participant that provides a resource may change it or answer its requests."""


class AgentRefused(DirectoryError):
    """The sharing agent refused a request that does not carry the provider's agent token."""

    hint = "The provider's system reads the token from the file `govhub dir agent-token` names."


class ResourceClosed(DirectoryError):
    """The resource was withdrawn, or is not shared (不予共享), so it cannot be requested."""


class UnknownRequest(DirectoryError):
    """No access request with that id has reached the directory (yet)."""

    hint = (
        "If the requester's county is offline, its request arrives when the uplink returns; "
        "list known requests with `govhub dir requests --as ID`."
    )


class RequestClosed(DirectoryError):
    """The request was already granted, denied, revoked or has expired."""


class NoGrant(DirectoryError):
    """The participant holds no valid grant for the resource, so its data is not sealed to it."""

    hint = "Request access with `govhub dir request CODE --as ID --purpose TEXT`."


class ApprovalError(GovhubError):
    """A parallel-approval (并联审批) step (open, opinion, 补正, withdraw) cannot proceed."""


class UnknownCaseType(ApprovalError, ConfigError):
    """No case type of that name is configured (ops/approval/ or the home's approval/)."""

    hint = "List the configured case types with `govhub approval types`."


class UnknownCase(ApprovalError):
    """No case with that id has reached the hub (yet)."""

    hint = (
        "List cases with `govhub approval cases`; a case opened in a county that is cut off "
        "arrives when its uplink returns."
    )


class NotLead(ApprovalError):
    """Only the case's lead department (牵头部门) may open, supply material for or withdraw it."""


class NotAssigned(ApprovalError):
    """The department is not one of the case's reviewers, or may not take this step."""


class CaseClosed(ApprovalError):
    """The case was decided or withdrawn, or the department has already taken this step."""
