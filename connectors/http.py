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
already runs a PKI. Implementation: `connectors.webhook` and `connectors.rest`.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hub.integration.connector import ConnectorContext, Sink, Source
from hub.integration.tomlconfig import Secret
from hub.listen import parse_address

H_TIMESTAMP = "X-Govhub-Timestamp"
H_SIGNATURE = "X-Govhub-Signature"
H_IDEMPOTENCY = "Idempotency-Key"
H_EVENT_ID = "X-Govhub-Event-Id"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Govhub-Signature` value for a body sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(secret: bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers a webhook client sends with a JSON body: its type, timestamp and signature."""
    timestamp = str(int(now if now is not None else time.time()))
    return {
        "Content-Type": "application/json",
        H_TIMESTAMP: timestamp,
        H_SIGNATURE: signature(secret, timestamp, body),
    }


def verify_signature(
    secret: bytes, headers: Any, body: bytes, *, max_skew: float, now: float | None = None
) -> str | None:
    """None if the request is signed correctly and recently; else why not, for the 401."""
    timestamp = headers.get(H_TIMESTAMP, "")
    given = headers.get(H_SIGNATURE, "")
    if not timestamp or not given:
        return f"the request lacks {H_TIMESTAMP} or {H_SIGNATURE}"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{H_TIMESTAMP} must be unix seconds"
    # Bounds replays: a captured request is worthless once this window has passed.
    if abs((now if now is not None else time.time()) - sent) > max_skew:
        return f"{H_TIMESTAMP} is more than {max_skew:g} s away from the server's clock"
    # compare_digest: the time taken must not reveal how many leading characters matched.
    # Compared as bytes: on str it raises TypeError for a non-ASCII header value.
    expected = signature(secret, timestamp, body).encode()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected):
        return "the signature does not match the body"
    return None


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_address(value)
    except ValueError as exc:
        raise ValueError(f"listen: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class WebhookOptions:
    """`[adapters.connector]` of an http source: where the webhook listens and whom it trusts."""

    listen: str = "127.0.0.1:8491"
    path: str = "/events"
    hmac_secret: Secret | None = None
    max_skew: float = 300.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    allowed_clients: tuple[str, ...] = ()
    max_body: int = 256 * 1024
    response_timeout: float = 10.0
    queue: int = 1024

    def __post_init__(self) -> None:
        _listen(self.listen)
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if self.hmac_secret is None and self.client_ca is None:
            # An unauthenticated webhook would let anyone on the network publish signed
            # events in the department's name.
            raise ValueError("set hmac_secret, client_ca (mutual TLS), or both")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("mutual TLS (client_ca) needs tls_cert and tls_key")
        if self.allowed_clients and self.client_ca is None:
            raise ValueError("allowed_clients needs client_ca (mutual TLS)")

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to listen on."""
        return _listen(self.listen)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context (requiring client certificates with `client_ca`)."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.client_ca is not None:
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True, kw_only=True)
class RestOptions:
    """`[adapters.connector]` of an http sink: the department API events are sent to."""

    url: str
    method: Literal["POST", "PUT"] = "POST"
    bearer_token: Secret | None = None
    hmac_secret: Secret | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    def ssl_context(self) -> ssl.SSLContext | None:
        """Client TLS context for a private CA or mutual TLS; None means the system default."""
        if self.ca_file is None and self.client_cert is None:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert is not None and self.client_key is not None:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


class HttpConnector:
    """The `http` entry point."""

    name = "http"
    source_options = WebhookOptions
    sink_options = RestOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """A webhook source."""
        from connectors.webhook import WebhookSource

        return WebhookSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """A REST sink."""
        from connectors.rest import RestSink

        return RestSink(options, context)


CONNECTOR = HttpConnector()
