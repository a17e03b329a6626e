"""HTTP connector: a webhook source (POST JSON in) and a REST sink (POST JSON out).

Both sides use one request-signing scheme, so a department system that can call our webhook
can also check the calls our REST sink makes to it:

```
X-Govhub-Timestamp: <unix seconds>
X-Govhub-Signature: sha256=<lowercase hex HMAC-SHA256(secret, timestamp + "." + body)>
Idempotency-Key:    <the sender's id for this request; re-sends carry the same one>
```

The timestamp is inside the MAC so a captured request cannot be replayed after `max_skew`
seconds; within that window a replay has the same idempotency key, becomes the same event id,
and JetStream stores it once. Mutual TLS is the alternative (or addition) where the department
already runs a PKI. Implementation: `webhook.py` (the source), `rest.py` (the sink),
`options.py` and `strictjson.py`; the signing helpers come from `hub.plugin` (the demo and
benchmarks sign requests too) and are re-exported here.
"""

from __future__ import annotations

from typing import Any

from connectors.http.options import RestOptions, WebhookOptions
from connectors.http.rest import RestSink
from connectors.http.webhook import WebhookSource
from hub.plugin import (
    H_EVENT_ID,
    H_IDEMPOTENCY,
    H_SIGNATURE,
    H_TIMESTAMP,
    ConnectorContext,
    Sink,
    Source,
    signature,
    signed_headers,
    verify_signature,
)

__all__ = [
    "CONNECTOR",
    "H_EVENT_ID",
    "H_IDEMPOTENCY",
    "H_SIGNATURE",
    "H_TIMESTAMP",
    "HttpConnector",
    "RestOptions",
    "RestSink",
    "WebhookOptions",
    "WebhookSource",
    "signature",
    "signed_headers",
    "verify_signature",
]


class HttpConnector:
    """The `http` entry point."""

    name = "http"
    source_options = WebhookOptions
    sink_options = RestOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """A webhook source."""
        return WebhookSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """A REST sink."""
        return RestSink(options, context)


CONNECTOR = HttpConnector()
