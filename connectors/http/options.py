"""Options of the http connector: where the webhook listens and whom it trusts, and the
department API the REST sink calls."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hub.plugin import Secret, parse_address


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
