"""The webhook on a real hub answers only what it documents: 202 once a receiver would accept
the event, 413 or 422 with the reason when a receiver would refuse it, 400/415 for a body that
is not a JSON object, and never 500, whatever the body (hypothesis drives arbitrary ones)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.stats import SAMPLE
from connectors.http import signed_headers
from hub.integration.adapter import parse_adapter_file
from hub.integration.host import build
from hub.ports import free_port
from hub.runtime import Hub
from hub.topology import HUB_STREAM
from tests.test_adapters import start

SECRET = "refusals-webhook-secret"
SECRET_ENV = "GOVHUB_TEST_REFUSALS_SECRET"

CONFIG = """
[[adapters]]
name = "artux-stats-webhook"
adapter = "monthly_statistics"
participant = "artux.stats"
[adapters.connector]
type = "http"
listen = "127.0.0.1:{port}"
path = "/figures"
hmac_secret = {{ env = "GOVHUB_TEST_REFUSALS_SECRET" }}
response_timeout = 20.0
"""

# What the webhook documents (docs/adapters.md, "Webhook answers"), less 401 (every request
# here is signed) and 503 (the hub is up: a 503 here would hide a record stuck in retries).
ANSWERS = {202, 400, 413, 415, 422}


@pytest.fixture
async def webhook(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    port = free_port()
    (item,) = parse_adapter_file(CONFIG.format(port=port), tmp_path / "s.toml").adapters
    pipeline = build(hub.parts, item)
    stop, task = await start(pipeline)
    try:
        yield f"http://127.0.0.1:{port}/figures"
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def post(
    url: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {**signed_headers(SECRET.encode(), body), "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def stored(hub: Hub) -> int:
    info = await hub.nc.jetstream().stream_info(HUB_STREAM)
    return int(info.state.messages)


def release(indicators: int) -> dict[str, Any]:
    item = {"code": "A01", "name": "地区生产总值（现价）", "value": 58.2, "unit": "亿元"}
    return {**SAMPLE, "indicators": [dict(item, code=f"A{i:05d}") for i in range(indicators)]}


async def test_a_180_kb_release_answers_413_with_the_limit_and_nothing_is_published(
    hub: Hub, webhook: str
) -> None:
    body = json.dumps(release(1_890), ensure_ascii=False).encode()
    assert 175_000 < len(body) < 185_000
    before = await stored(hub)
    status, answer = await post(webhook, body)
    assert status == 413, answer
    assert answer["reason"] == "oversized"
    assert "events are limited to 40,960 bytes (40 KiB)" in answer["error"]
    assert await stored(hub) == before


async def test_a_release_the_schema_cannot_hold_answers_422_not_a_retry(
    hub: Hub, webhook: str
) -> None:
    # revision is an Avro int: 10**20 maps fine but no receiver could ever decode it.
    body = json.dumps({**SAMPLE, "revision": 10**20}).encode()
    before = await stored(hub)
    status, answer = await post(webhook, body)
    assert status == 422, answer
    assert "MonthlyFigures" in answer["error"]
    assert await stored(hub) == before


async def test_json_nested_100000_deep_answers_400(hub: Hub, webhook: str) -> None:
    body = b'{"period": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer = await post(webhook, body)
    assert status == 400, answer
    assert "nested" in answer["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b'{"period": 1' + b"0" * 5000 + b"}", "application/json", 400, "number"),
        (b'{"period": NaN}', "application/json", 400, "NaN"),
        (b'{"period": 1e999}', "application/json", 400, "number"),
        (b'{"period": "2026-11", "period": "2026-12"}', "application/json", 400, "twice"),
        ('{"period": "十一月"}'.encode("utf-16"), "application/json", 400, "UTF-8"),
        (b'{"period": "\xff"}', "application/json", 400, "UTF-8"),
        (json.dumps(SAMPLE).encode(), "text/plain", 415, "application/json"),
        (json.dumps(SAMPLE).encode(), "application/json; charset=latin-1", 415, "UTF-8"),
    ],
)
async def test_bodies_that_are_not_plain_json_objects_answer_a_documented_4xx(
    hub: Hub, webhook: str, body: bytes, content_type: str, status: int, words: str
) -> None:
    before = await stored(hub)
    got, answer = await post(webhook, body, content_type)
    assert got == status, answer
    assert words in answer["error"]
    assert await stored(hub) == before


def _signed_post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One signed POST from a plain thread (hypothesis drives these synchronously)."""
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "X-Govhub-Timestamp": stamp,
            "X-Govhub-Signature": f"sha256={mac}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
_indicator = st.fixed_dictionaries(
    {"code": _json_values, "name": _json_values, "value": _json_values, "unit": _json_values}
)
# Bodies near the real shape reach the mapping, the schema and the receiver checks; the rest
# exercise the parser: arbitrary JSON, arbitrary bytes, deep nesting, odd number tokens.
_near_release = st.fixed_dictionaries(
    {
        "period": st.sampled_from(["2026-11", "2026-13", ""]) | _json_values,
        "published_at": st.sampled_from(["2026-12-05T10:00:00+08:00", "2026-12-05"]) | _json_values,
        "revision": st.integers() | _json_values,
        "indicators": st.lists(_indicator, max_size=4) | _json_values,
    }
).map(lambda value: json.dumps(value, ensure_ascii=False).encode())
_bodies = st.one_of(
    _near_release,
    _json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.integers(1, 5_000).map(lambda depth: b'{"a":' + b"[" * depth + b"]" * depth + b"}"),
    st.sampled_from([b"NaN", b"-Infinity", b"1e400", b"-0", b"1" * 5000]).map(
        lambda token: b'{"period": ' + token + b"}"
    ),
)
_content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/xml", ""]
)


async def test_the_webhook_answers_only_documented_statuses_for_any_body(
    hub: Hub, webhook: str
) -> None:
    seen: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=_bodies, content_type=_content_types)
    def answers_are_documented(body: bytes, content_type: str) -> None:
        status, answer = _signed_post(webhook, body, content_type)
        seen.add(status)
        assert status in ANSWERS, (status, answer[:300], body[:200], content_type)
        json.loads(answer)  # every answer, refusals included, is a JSON document

    await asyncio.to_thread(answers_are_documented)
    assert {400, 415, 422} <= seen
