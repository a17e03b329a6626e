"""What a new user types: `govhub up --federated`, status, publish, tail, demo, down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.bench.federation import bench_federation
from hub.home import Home, Settings

pytestmark = pytest.mark.servers  # starts its own servers (embedded, through the CLI)


def _govhub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _json(home: Path, *args: str) -> Any:
    result = _govhub(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_up_federated_runs_every_node_and_a_county_event_reaches_the_regional_office(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    try:
        up = _json(home, "up", "--federated")
        assert up["participants"] == 56
        status = _json(home, "status")
        assert status["topology"] == "federated" and status["running"]
        nodes = {n["name"]: n for n in status["nodes"]}
        assert {"hub", "cty-artux", "cty-akto", "cty-akqi", "cty-wuqia", "region-xj"} <= set(nodes)
        assert nodes["cty-akto"]["domain"] == "cty-akto" and nodes["hub"]["domain"] == "pref"
        assert all(n["pid"] > 0 and n["client_url"] and n["role"] for n in status["nodes"])

        published = _json(
            home,
            "publish",
            "--as",
            "akto.office",
            "--schema",
            "gov.common.v1.Notice",
            "--subject",
            "doc.akto.office.notice",
            "--data",
            '{"title": "县政府通知", "body": "b"}',
        )
        assert published["stream"] == "GOV_AKTO"
        tail = ["tail", "--as", "pref.office", "--subject", "doc.akto.>"]
        first = _json(home, *tail)
        assert [e["event_id"] for e in first["events"]] == [published["event_id"]]
        assert first["events"][0]["verified"]
        assert _json(home, *tail)["count"] == 0  # the durable cursor resumed

        demo = _json(home, "demo", "--federated")
        drill = demo["chapters"]["federation"]["drill"]
        assert drill["exactly_once"] and drill["per_origin_order"]
        assert drill["acked_by_county"] == drill["published_offline"]
        assert drill["reached_hub_while_cut"] == 0
        assert demo["chapters"]["federation"]["refused"]["verdict"] == "refused by the server"
        # Documents go from a county up to the prefecture and the region, receipts come back.
        docs = demo["chapters"]["documents"]
        stores = docs["federated"]["stores"]
        assert stores["report_up"] == {"domain": "cty-akto", "stream": "DOCS_AKTO"}
        assert stores["confidential"] == {"domain": "pref", "stream": "DOCS_XJ"}
        assert docs["report_states"] == {"pref.office": "delivered", "xj.office": "delivered"}
        assert sorted(docs["circular"]["states"].values()) == ["accepted"] * 3 + ["rejected"]
        assert len(docs["federated"]["receipts_at_county"]) == 4
        cut = docs["federated"]["cut_off"]
        assert (cut["state_while_cut"], cut["state_after_reconnect"]) == ("sent", "delivered")
    finally:
        down = _govhub(home, "down", "--json")
    assert down.returncode == 0, down.stderr
    assert "cty-akto" in json.loads(down.stdout)["stopped"]
    assert not any(n["pid"] for n in _json(home, "status")["nodes"] if n["role"] != "database")


async def test_bench_federation_runs_with_tiny_numbers(tmp_path: Path, pg_dsn: str) -> None:
    settings = Settings(home=Home(tmp_path / "home"), nats_url=None, pg_dsn=pg_dsn)
    result = await bench_federation(settings, events=200, samples=5)
    assert result["catch_up"]["events"] == 200 and result["catch_up"]["catch_up_per_s"] > 0
    assert result["latency"]["govhub"]["p50_ms"] > 0 and result["latency"]["raw"]["p99_ms"] > 0
