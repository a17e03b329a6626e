"""The http connector with real sockets: the contract, authentication and the REST answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.http import (
    CONNECTOR,
    RestOptions,
    WebhookOptions,
    WebhookSource,
    signed_headers,
    verify_signature,
)
from hub.errors import ConfigError
from hub.integration.connector import ConnectorContext, Outcome, Record, Sink, Source, Verdict
from hub.ports import free_port
from hub.tomlconfig import Secret, load
from tests.connector_contract import SinkContract, SourceContract, take

SECRET_ENV = "GOVHUB_TEST_WEBHOOK_SECRET"
SECRET = "s3cret-for-tests"
CONTEXT = ConnectorContext(adapter="test", participant="artux.stats")


async def post(
    url: str, value: Any, *, key: str | None = None, secret: str = SECRET, **extra: str
) -> tuple[int, dict[str, Any]]:
    """One signed POST as a department system sends it."""
    body = json.dumps(value).encode()
    headers = {**signed_headers(secret.encode(), body), "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    headers.update(extra)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


class WebhookHarness:
    """Posts like a well-behaved client: re-sends with the same key on 503 or no connection."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.tasks: list[asyncio.Task[tuple[str, int]]] = []

    def make(self) -> Source:
        options = WebhookOptions(
            listen=f"127.0.0.1:{self.port}",
            hmac_secret=Secret(env=SECRET_ENV),
            response_timeout=30.0,
        )
        return CONNECTOR.source(options, CONTEXT)

    async def _client(self, key: str, n: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                status, _ = await post(self.url, {"n": n}, key=key)
            except aiohttp.ClientConnectionError:
                status = 0
            if status not in (0, 503) or loop.time() > deadline:
                return f"idem:{key}", status
            await asyncio.sleep(0.1)

    async def produce(self, count: int) -> list[str]:
        keys = [str(uuid.uuid4()) for _ in range(count)]
        self.tasks += [asyncio.create_task(self._client(k, i)) for i, k in enumerate(keys)]
        return [f"idem:{k}" for k in keys]

    async def settled(self) -> set[str]:
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        return {t.result()[0] for t in self.tasks if t.done() and t.result()[1] == 202}


class DepartmentApi:
    """A department's REST API that honours Idempotency-Key, as the sink expects."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[web.Response] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append((dict(request.headers), raw))
        if self.script:
            return self.script.pop(0)
        key = request.headers["Idempotency-Key"]
        fresh = key not in self.stored
        self.stored.setdefault(key, json.loads(raw))
        return web.json_response({"ok": True}, status=201 if fresh else 200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/figures", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/figures"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class RestHarness:
    def __init__(self, api: DepartmentApi) -> None:
        self.api = api

    def make(self) -> Sink:
        return CONNECTOR.sink(
            RestOptions(url=self.api.url, hmac_secret=Secret(env=SECRET_ENV)), CONTEXT
        )

    def records(self, count: int, offset: int = 0) -> list[Record]:
        return [
            Record(
                key=f"k{i}",
                id=f"0190a1b2-0000-7000-8000-{i:012d}",
                kind="gov.stats.v1.MonthlyFigures",
                value={"period": "2026-11", "n": i},
                time=datetime(2026, 12, 5, tzinfo=UTC),
                headers={"source": "artux.stats"},
            )
            for i in range(offset, offset + count)
        ]

    async def stored(self) -> list[str]:
        return list(self.api.stored)


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
async def source_harness() -> AsyncIterator[WebhookHarness]:
    harness = WebhookHarness()
    yield harness
    for task in harness.tasks:
        task.cancel()
    await asyncio.gather(*harness.tasks, return_exceptions=True)


@pytest.fixture
async def api() -> AsyncIterator[DepartmentApi]:
    server = DepartmentApi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def sink_harness(api: DepartmentApi) -> RestHarness:
    return RestHarness(api)


class TestWebhookSourceContract(SourceContract):
    """The webhook source passes the connector contract."""


class TestRestSinkContract(SinkContract):
    """The REST sink passes the connector contract."""


@contextlib.asynccontextmanager
async def running_webhook(**options: Any) -> AsyncIterator[tuple[WebhookSource, Any]]:
    defaults: dict[str, Any] = {"listen": "127.0.0.1:0", "hmac_secret": Secret(env=SECRET_ENV)}
    source = WebhookSource(WebhookOptions(**{**defaults, **options}), CONTEXT)
    await source.start()
    stream = source.deliveries()
    try:
        yield source, stream
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()


async def test_an_accepted_post_answers_202_with_the_event_id() -> None:
    async with running_webhook() as (source, stream):
        reply = asyncio.create_task(post(source.url, {"period": "2026-11"}, key="r1"))
        (delivery,) = await take(stream, 1)
        assert delivery.record.key == "idem:r1"
        assert delivery.record.value == {"period": "2026-11"}
        await delivery.ack(Outcome.done(event_id="0190a1b2-aaaa-7000-8000-000000000001"))
        status, body = await reply
    assert status == 202
    assert body == {"status": "accepted", "event_id": "0190a1b2-aaaa-7000-8000-000000000001"}


async def test_a_record_that_does_not_fit_answers_422_with_the_reason() -> None:
    async with running_webhook() as (source, stream):
        reply = asyncio.create_task(post(source.url, {"period": 11}, key="r2"))
        (delivery,) = await take(stream, 1)
        await delivery.ack(Outcome.reject("period: expected a string like 2026-11"))
        status, body = await reply
    assert status == 422
    assert "period" in body["error"]


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ({"secret": "wrong-secret"}, "signature does not match"),
        ({"X-Govhub-Timestamp": "1700000000"}, "away from the server's clock"),
    ],
)
async def test_a_bad_signature_is_refused_with_401_and_nothing_is_handed_out(
    tamper: dict[str, str], why: str
) -> None:
    async with running_webhook() as (source, stream):
        status, body = await post(source.url, {"period": "2026-11"}, **tamper)
        assert status == 401
        assert why in body["error"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.5)


async def test_an_unsigned_request_is_refused() -> None:
    async with (
        running_webhook() as (source, _stream),
        aiohttp.ClientSession() as session,
        session.post(source.url, json={"period": "2026-11"}) as response,
    ):
        assert response.status == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[1, 2]", 400), (b'{"x": "' + b"a" * 300_000 + b'"}', 413)],
)
async def test_a_body_that_is_not_a_json_object_is_refused_before_anything_is_published(
    body: bytes, status: int
) -> None:
    async with running_webhook() as (source, stream), aiohttp.ClientSession() as session:
        headers = signed_headers(SECRET.encode(), body)
        async with session.post(source.url, data=body, headers=headers) as response:
            assert response.status == status
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.5)


async def test_without_an_idempotency_key_the_same_body_is_the_same_record() -> None:
    async with running_webhook() as (source, stream):
        first = asyncio.create_task(post(source.url, {"a": 1}))
        (one,) = await take(stream, 1)
        await one.ack(Outcome.done())
        await first
        second = asyncio.create_task(post(source.url, {"a": 1}))
        (two,) = await take(stream, 1)
        await two.ack(Outcome.done())
        await second
    assert one.record.key == two.record.key and one.record.key.startswith("sha256:")


def test_a_webhook_without_any_authentication_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"adapters\[0\]\.connector: set hmac_secret"):
        load(WebhookOptions, {"listen": "0.0.0.0:8491"}, "adapters[0].connector")


def test_an_inline_secret_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"connector\.hmac_secret: secrets are given by reference"
    ):
        load(WebhookOptions, {"hmac_secret": "hunter2"}, "adapters[0].connector")


async def test_the_rest_sink_signs_requests_the_way_the_webhook_checks_them(
    api: DepartmentApi,
) -> None:
    sink = RestHarness(api).make()
    await sink.start()
    try:
        (record,) = RestHarness(api).records(1)
        await sink.send([record])
    finally:
        await sink.stop()
    headers, raw = api.requests[0]
    assert headers["Idempotency-Key"] == record.id
    assert verify_signature(SECRET.encode(), headers, raw, max_skew=60) is None
    assert api.stored[record.id or ""]["data"] == {"period": "2026-11", "n": 0}
    assert api.stored[record.id or ""]["source"] == "artux.stats"


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (web.json_response({"e": "busy"}, status=503, headers={"Retry-After": "7"}), Verdict.RETRY),
        (web.json_response({"e": "slow down"}, status=429), Verdict.RETRY),
        (web.json_response({"e": "period is invalid"}, status=422), Verdict.REJECT),
    ],
)
async def test_the_rest_sink_reads_the_answer_as_retry_or_refusal(
    api: DepartmentApi, answer: web.Response, verdict: Verdict
) -> None:
    api.script.append(answer)
    sink = RestHarness(api).make()
    await sink.start()
    try:
        (outcome,) = await sink.send(RestHarness(api).records(1))
    finally:
        await sink.stop()
    assert outcome.verdict is verdict
    if answer.status == 503:
        assert outcome.retry_after == 7.0
    if verdict is Verdict.REJECT:
        assert "period is invalid" in outcome.detail


async def test_an_unreachable_api_is_unavailable_not_a_refusal() -> None:
    sink = CONNECTOR.sink(RestOptions(url=f"http://127.0.0.1:{free_port()}/x"), CONTEXT)
    await sink.start()
    try:
        (outcome,) = await sink.send([Record(key="k", id="k", value={})])
    finally:
        await sink.stop()
    assert outcome.verdict is Verdict.UNAVAILABLE
