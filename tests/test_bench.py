"""The benchmarks still run (tiny N); their timings are not asserted, only their shape."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.home import Settings


@pytest.fixture
def bench(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        result = CliRunner().invoke(
            cli,
            ["--home", str(hub_settings.home.root), "bench", *args, "--json"],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run


def test_bench_publish_reports_govhub_next_to_both_raw_clients(bench) -> None:  # type: ignore[no-untyped-def]
    result = bench("publish", "--events", "300")
    for side in ("govhub", "raw_publish_async", "raw_atomic_batch"):
        assert result[side]["events_per_s"] > 0
        assert result[side]["p99_ms"] >= result[side]["p50_ms"] > 0
    assert result["ratio"] > 0 and result["machine"]["cores"]


def test_bench_consume_reports_verified_and_raw_rates_and_live_latency(bench) -> None:  # type: ignore[no-untyped-def]
    result = bench("consume", "--events", "300", "--rate", "200")
    assert result["govhub"]["events"] == 300
    assert result["raw_fetch_ack"]["events"] == 300
    assert result["govhub"]["live"]["events"] > 0


def test_bench_pipeline_reports_the_audited_path_next_to_raw_publishing(  # type: ignore[no-untyped-def]
    bench, tmp_path
) -> None:
    import importlib.util

    plot = tmp_path / "pipeline.png"
    result = bench(
        "pipeline", "--events", "300", "--rates", "200", "--seconds", "1", "--plot", str(plot)
    )
    assert result["events_per_s"] > 0 and result["raw_publish_per_s"] > 0 and result["ratio"] > 0
    assert result["p99_ms"] >= result["p50_ms"] > 0
    assert [row["offered_per_s"] for row in result["loads"]] == [200]
    assert result["checkpoint"]["size"] and result["checkpoint"]["cosignatures"] >= 3
    assert result["durability"]["postgres_synchronous_commit"] == "on"
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert plot.exists() == has_matplotlib == (result["plot"] is not None)


def test_bench_scale_reports_cost_and_serve_memory_at_each_log_size(bench) -> None:  # type: ignore[no-untyped-def]
    result = bench("scale", "--sizes", "1000,3000", "--events", "200", "--samples", "5")
    sizes = [row["log_entries"] for row in result["rows"]]
    assert len(sizes) == 2 and sizes[0] >= 1000 and sizes[1] >= 3000
    for row in result["rows"]:
        assert row["events_per_s"] > 0 and row["serve_rss_mb"] > 0
        assert row["proof"]["p50_ms"] > 0
