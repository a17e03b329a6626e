"""The public face for connector and adapter authors: everything a plug-in may import from hub.

A department's adapter package, and the built-in ones in connectors/ and adapters/, import
from hub only through this module, so what is listed here is what govhub keeps stable for
them; the modules behind it may move. tests/test_plugin_face.py holds `__all__` to this list
and checks that the built-in plug-ins import nothing else from hub. `hub.testing` (in-memory
sources and sinks, `run_mapping`) is the companion for their tests.

- The seam (docs/adapters.md): `Record`, `Outcome` and `Verdict`, the `Source`, `Sink` and
  `Delivery` protocols, `Check`, `ConnectorContext`, and `ConnectorFactory`, which a
  `govhub.connectors` entry point provides.
- Adapters: `Adapter` (a `govhub.adapters` entry point), `AdapterContext`, `to_event`,
  `to_row`, and `DOCUMENT` (the record kind of a document).
- Reading a department's values with refusals that name the field: `moment`, `day`,
  `integer`, `number`.
- Configuration: `Secret` (a secret by reference: file or environment variable).
- Errors: `GovhubError`, `ConfigError`, `InputError`, `ServerUnavailable` (retryable),
  `Reason` (why an event was refused).
- Documents: `Classification`, `Urgency`, `safe_file_name`.
- Webhook signing (hub/integration/signing.py): `signature`, `signed_headers`,
  `verify_signature` and the `H_*` header names.
- Small helpers: `reason` and `redact` (PostgreSQL failures and DSNs in words, without the
  password), `dumps` and `to_jsonable` (JSON as govhub writes it), `parse_address` and
  `start_site` (listening), `check_participant_id` and `unit_of` (participant ids),
  `wait_event` (an event or a timeout, without polling), `rfc3339` (a time as RFC 3339 text
  in UTC, as govhub writes it).
"""

from __future__ import annotations

from hub.db import reason, redact
from hub.errors import ConfigError, GovhubError, InputError, Reason, ServerUnavailable
from hub.exchange.model import Classification, Urgency, safe_file_name
from hub.integration.adapter import Adapter, AdapterContext, to_event, to_row
from hub.integration.connector import (
    Check,
    ConnectorContext,
    ConnectorFactory,
    Delivery,
    Outcome,
    Record,
    Sink,
    Source,
    Verdict,
)
from hub.integration.docbridge import DOCUMENT
from hub.integration.signing import (
    H_EVENT_ID,
    H_IDEMPOTENCY,
    H_SIGNATURE,
    H_TIMESTAMP,
    signature,
    signed_headers,
    verify_signature,
)
from hub.integration.values import day, integer, moment, number
from hub.jsonout import dumps, to_jsonable
from hub.listen import parse_address, start_site
from hub.subjects import check_participant_id, unit_of
from hub.timetext import rfc3339
from hub.tomlconfig import Secret
from hub.waits import wait_event

__all__ = [
    "DOCUMENT",
    "H_EVENT_ID",
    "H_IDEMPOTENCY",
    "H_SIGNATURE",
    "H_TIMESTAMP",
    "Adapter",
    "AdapterContext",
    "Check",
    "Classification",
    "ConfigError",
    "ConnectorContext",
    "ConnectorFactory",
    "Delivery",
    "GovhubError",
    "InputError",
    "Outcome",
    "Reason",
    "Record",
    "Secret",
    "ServerUnavailable",
    "Sink",
    "Source",
    "Urgency",
    "Verdict",
    "check_participant_id",
    "day",
    "dumps",
    "integer",
    "moment",
    "number",
    "parse_address",
    "reason",
    "redact",
    "rfc3339",
    "safe_file_name",
    "signature",
    "signed_headers",
    "start_site",
    "to_event",
    "to_jsonable",
    "to_row",
    "unit_of",
    "verify_signature",
    "wait_event",
]
