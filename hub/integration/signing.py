"""Webhook request signing: the HMAC scheme shared by the http connector and its clients.

A department system that calls the webhook signs its requests this way, and the REST sink
signs the calls it makes, so the department can check them with the same code:

```
X-Govhub-Timestamp: <unix seconds>
X-Govhub-Signature: sha256=<lowercase hex HMAC-SHA256(secret, timestamp + "." + body)>
Idempotency-Key:    <the sender's id for this request; re-sends carry the same one>
```

The timestamp is inside the MAC so a captured request cannot be replayed after `max_skew`
seconds; within that window a replay has the same idempotency key, becomes the same event id,
and JetStream stores it once. It lives in hub (not in connectors/) because the demo and the
benchmarks play the department's side and sign their requests too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

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
