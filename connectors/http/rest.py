"""The REST sink: each record is one JSON request to a department API, with an idempotency key.

Every request carries `Idempotency-Key: <event id>`, so the department's API can recognise a
re-sent event; with `hmac_secret` it is signed like our webhook expects (connectors.http). The
answer decides the outcome: 2xx delivered; 408, 409, 425, 429 and 5xx retried (honouring
Retry-After) with the runtime's backoff; any other 4xx refused for good (dead letter with the
status and the start of the answer); no connection or no answer in time means the API is
unavailable, which is retried for as long as it takes without counting against the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog

from connectors.http.options import RestOptions
from hub.plugin import (
    H_EVENT_ID,
    H_IDEMPOTENCY,
    Check,
    ConnectorContext,
    Outcome,
    Record,
    ServerUnavailable,
    dumps,
    signed_headers,
)

log = structlog.get_logger("connectors.http")

_RETRY_STATUSES = {408, 409, 425, 429}


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class RestSink:
    """JSON requests to one URL, concurrently for the records of a batch."""

    def __init__(self, options: RestOptions, context: ConnectorContext) -> None:
        self.options = options
        self._context = context
        self._session: aiohttp.ClientSession | None = None
        self._secret: bytes | None = None
        self._static: dict[str, str] = {}

    async def start(self) -> None:
        """Resolve secrets and open the HTTP session; idempotent."""
        if self._session is not None:
            return
        opts = self.options
        self._secret = opts.hmac_secret.reveal().encode() if opts.hmac_secret else None
        self._static = {"Content-Type": "application/json", **opts.headers}
        if opts.bearer_token is not None:
            self._static["Authorization"] = f"Bearer {opts.bearer_token.reveal()}"
        connector = aiohttp.TCPConnector(limit=64, ssl=opts.ssl_context() or True)
        timeout = aiohttp.ClientTimeout(total=opts.timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def stop(self) -> None:
        """Close the session; idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def check(self) -> Check:
        """Ask the API for the URL's headers; any HTTP answer means it is reachable."""
        await self.start()
        assert self._session is not None
        try:
            async with self._session.head(self.options.url, headers=self._static) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(f"cannot reach {self.options.url}: {exc}") from exc
        finally:
            await self.stop()
        return Check(f"{self.options.url} answers (HEAD → {status})")

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """One request per record, concurrently; one outcome each."""
        session = self._session
        if session is None:
            return [Outcome.unavailable("the REST sink is not started") for _ in records]
        return list(await asyncio.gather(*(self._one(session, r) for r in records)))

    def body(self, record: Record) -> bytes:
        """The JSON sent for a record: its value, with the event's identity alongside."""
        document: dict[str, Any] = {
            "event_id": record.id or record.key,
            "type": record.kind,
            "source": record.headers.get("source", ""),
            "subject": record.subject or "",
            "time": record.time,
            "data": record.value,
        }
        return dumps(document, indent=None).encode()

    async def _one(self, session: aiohttp.ClientSession, record: Record) -> Outcome:
        body = self.body(record)
        event_id = record.id or record.key
        headers = {**self._static, H_IDEMPOTENCY: event_id, H_EVENT_ID: event_id}
        if self._secret is not None:
            headers.update(signed_headers(self._secret, body))
        try:
            async with session.request(
                self.options.method, self.options.url, data=body, headers=headers
            ) as response:
                status = response.status
                text = (await response.text(errors="replace"))[:200]
                after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            return Outcome.unavailable(f"{self.options.url}: {type(exc).__name__} {exc}".strip())
        except aiohttp.ClientError as exc:
            return Outcome.retry(f"{self.options.url}: {exc}")
        if 200 <= status < 300:
            return Outcome.done(event_id=event_id, ref=f"HTTP {status}")
        if status in _RETRY_STATUSES or status >= 500:
            return Outcome.retry(f"{self.options.url} answered {status}: {text}", after=after)
        return Outcome.reject(f"{self.options.url} answered {status}: {text}")
