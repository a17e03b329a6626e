"""The webhook source: an aiohttp endpoint where a department system POSTs JSON records.

The HTTP request stays open until the runtime settles the record, so the caller learns the
truth, and every answer is a JSON document (docs/adapters.md, "Webhook answers"):

```
202 {"status", "event_id"}   JetStream acknowledged the signed event
400 {"error"}                not a JSON object: not UTF-8 or not JSON, NaN or Infinity, a number
                             too large, a key twice in one object, too deeply nested (strictjson)
401 {"error"}                authentication (HMAC signature, client certificate)
413 {"error", "reason"}      the body is over max_body, or its event over the 40 KiB limit
415 {"error"}                a Content-Type other than JSON in UTF-8
422 {"error", "reason"}      the record does not fit, or receivers would refuse its event
503 {"error"}, Retry-After   the hub cannot take it now: re-send with the same Idempotency-Key
```

A refusal (413 from the event limit, 422) publishes nothing and dead-letters nothing: the
caller has the reason and owns the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from aiohttp import web

from connectors.http.options import WebhookOptions
from connectors.http.strictjson import read_object
from hub.plugin import (
    H_IDEMPOTENCY,
    Check,
    ConnectorContext,
    InputError,
    Outcome,
    Reason,
    Record,
    Verdict,
    start_site,
    verify_signature,
)

log = structlog.get_logger("connectors.http")

RETRY_AFTER_S = "2"


class WebhookDelivery:
    """One waiting request."""

    __slots__ = ("_deadline", "_future", "_record", "_source")

    def __init__(
        self,
        source: WebhookSource,
        record: Record,
        future: asyncio.Future[Outcome],
        deadline: float,
    ) -> None:
        self._source = source
        self._record = record
        self._future = future
        self._deadline = deadline

    @property
    def record(self) -> Record:
        """The posted JSON object as a record."""
        return self._record

    async def ack(self, outcome: Outcome) -> None:
        """Answer the caller (202 or 422)."""
        if not self._future.done():
            self._future.set_result(outcome)

    async def nak(self, delay: float) -> None:
        """Try again after `delay` while the caller still waits; else the caller re-sends."""
        if self._future.done() or time.monotonic() + delay >= self._deadline:
            return
        asyncio.get_running_loop().call_later(delay, self._source._requeue, self)

    @property
    def waiting(self) -> bool:
        """Whether the caller is still waiting for the answer."""
        return not self._future.done()


class WebhookSource:
    """POST JSON → record; the response waits for the runtime's outcome."""

    # The caller is told why a record was refused; it goes nowhere else.
    dead_letters: ClassVar[bool] = False

    def __init__(self, options: WebhookOptions, context: ConnectorContext) -> None:
        self.options = options
        self._context = context
        self._queue: asyncio.Queue[WebhookDelivery] = asyncio.Queue(options.queue)
        self._runner: web.AppRunner | None = None
        self._secret: bytes | None = None
        self.url = ""

    async def start(self) -> None:
        """Resolve the secret and start listening; idempotent."""
        if self._runner is not None:
            return
        opts = self.options
        self._secret = opts.hmac_secret.reveal().encode() if opts.hmac_secret else None
        app = web.Application(client_max_size=opts.max_body)
        app.router.add_post(opts.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        host, port = opts.address
        context = opts.ssl_context()
        site = web.TCPSite(runner, host, port, ssl_context=context)
        try:
            await start_site(site, host, port, f"the webhook of {self._context.adapter}")
        except BaseException:
            await runner.cleanup()
            raise
        bound = runner.addresses[0][1] if runner.addresses else port
        self.url = f"{'https' if context else 'http'}://{host}:{bound}{opts.path}"
        self._runner = runner
        log.info("webhook.listening", adapter=self._context.adapter, url=self.url)

    async def stop(self) -> None:
        """Stop listening; callers still waiting get 503 and re-send later. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        while not self._queue.empty():
            await self._queue.get_nowait().ack(Outcome.unavailable("the webhook is shutting down"))
        await runner.cleanup()

    async def check(self) -> Check:
        """Resolve the secret and load TLS files without listening."""
        opts = self.options
        if opts.hmac_secret is not None:
            opts.hmac_secret.reveal()
        opts.ssl_context()
        scheme = "https" if opts.tls_cert else "http"
        auth = " + ".join(
            name for name, on in (("HMAC", opts.hmac_secret), ("mutual TLS", opts.client_ca)) if on
        )
        return Check(f"will listen on {scheme}://{opts.listen}{opts.path} ({auth})")

    async def deliveries(self) -> AsyncIterator[WebhookDelivery]:
        """Requests in arrival order (and re-tries of nak'd ones)."""
        while True:
            delivery = await self._queue.get()
            if delivery.waiting:
                yield delivery

    def _requeue(self, delivery: WebhookDelivery) -> None:
        if delivery.waiting:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(delivery)

    def _peer(self, request: web.Request) -> tuple[str | None, str]:
        """(client certificate CN or None, why it is refused or '')."""
        if self.options.client_ca is None:
            return None, ""
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        if not cert:
            return None, "a client certificate is required"
        cn = next(
            (value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"),
            "",
        )
        allowed = self.options.allowed_clients
        if allowed and cn not in allowed:
            return cn, f"client certificate {cn!r} is not allowed here"
        return cn, ""

    async def _handle(self, request: web.Request) -> web.Response:
        opts = self.options
        if request.content_length is not None and request.content_length > opts.max_body:
            return _error(413, f"the body is larger than {opts.max_body} bytes")
        client, refused = self._peer(request)
        if refused:
            return _error(401, refused)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than {opts.max_body} bytes")
        moment = datetime.now(UTC)
        if self._secret is not None:
            why = verify_signature(self._secret, request.headers, body, max_skew=opts.max_skew)
            if why is not None:
                log.info("webhook.refused", adapter=self._context.adapter, status=401)
                return _error(401, why)
            moment = datetime.fromtimestamp(int(request.headers["X-Govhub-Timestamp"]), UTC)
        refused = _content_type_refused(request.headers.get("Content-Type", ""))
        if refused:
            return _error(415, refused)
        try:
            value = read_object(body)
        except InputError as exc:
            return _error(400, str(exc))
        idem = request.headers.get(H_IDEMPOTENCY, "")
        key = f"idem:{idem}" if idem else f"sha256:{hashlib.sha256(body).hexdigest()}"
        headers = {"remote": request.remote or ""}
        if client:
            headers["client"] = client
        record = Record(key=key, value=value, time=moment, headers=headers)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        delivery = WebhookDelivery(self, record, future, time.monotonic() + opts.response_timeout)
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            return _error(503, "the adapter is busy; retry later", retry=True)
        try:
            outcome = await asyncio.wait_for(future, opts.response_timeout)
        except TimeoutError:
            future.cancel()
            return _error(
                503, "not settled in time; re-send with the same Idempotency-Key", retry=True
            )
        if outcome.verdict is Verdict.DONE:
            return web.json_response(
                {"status": "accepted", "event_id": outcome.event_id}, status=202
            )
        if outcome.verdict is Verdict.REJECT:
            # Too large for an event is the caller's 413, like a body over max_body; anything
            # else a receiver would refuse, or that does not fit, is 422.
            status = 413 if outcome.reason is Reason.OVERSIZED else 422
            return _error(status, outcome.detail, reason=outcome.reason or Reason.UNMAPPABLE)
        return _error(503, outcome.detail or "the hub cannot take it now", retry=True)


def _error(
    status: int, message: str, *, retry: bool = False, reason: Reason | None = None
) -> web.Response:
    headers: dict[str, Any] = {"Retry-After": RETRY_AFTER_S} if retry else {}
    document = {"error": message}
    if reason is not None:
        document["reason"] = reason.value
    return web.json_response(document, status=status, headers=headers)


def _content_type_refused(header: str) -> str:
    """Why a Content-Type is refused, or '' for JSON in UTF-8 (or none given)."""
    mime, *params = (part.strip() for part in header.split(";"))
    mime = mime.lower()
    if mime and mime != "application/json" and not mime.endswith("+json"):
        return f"the body must be JSON sent as Content-Type: application/json, not {mime!r}"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return "the body must be JSON in UTF-8 (charset=utf-8)"
    return ""
