"""`govhub bench adapters` still runs (tiny N); its figures are not asserted, only their shape."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.home import Settings


def test_bench_adapters_reports_each_path_next_to_the_raw_io(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    result = CliRunner().invoke(
        cli,
        [
            "--home",
            str(hub_settings.home.root),
            "bench",
            "adapters",
            "--rows",
            "300",
            "--requests",
            "40",
            "--concurrency",
            "4",
            "--files",
            "4",
            "--file-bytes",
            "2048",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    outbox, webhook, folder = report["outbox"], report["webhook"], report["folder"]
    assert outbox["govhub"]["rows_per_s"] > 0 and outbox["govhub"]["dead_lettered"] == 0
    assert outbox["raw_asyncpg_read"]["rows_per_s"] > 0
    assert outbox["raw_nats_publish_async"]["msgs_per_s"] > 0
    assert outbox["raw_read_publish_mark"]["rows_per_s"] > 0
    assert webhook["govhub"]["statuses"] == {"202": 40}
    assert webhook["govhub"]["p99_ms"] >= webhook["govhub"]["p50_ms"] > 0
    assert webhook["raw_aiohttp_nats"]["statuses"] == {"202": 40}
    assert folder["govhub"]["files_per_min"] > 0 and folder["govhub"]["dead_lettered"] == 0
    assert folder["raw_read_hash_publish_move"]["files_per_min"] > 0
    assert report["machine"]["cores"]
