"""`govhub bench audit` runs end to end with a tiny workload and reports every figure."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers  # starts its own servers (embedded, through the CLI)


async def test_the_audit_benchmark_runs_with_tiny_sizes_and_reports_every_figure() -> None:
    govhub = str(Path(sys.executable).parent / "govhub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    proc = await asyncio.create_subprocess_exec(
        govhub, "bench", "audit", "--leaves", "2000", "--batch", "500", "--events", "300",
        "--sizes", "500,3000", "--samples", "5", "--latency-seconds", "1.5", "--rate", "100",
        "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    assert result["append"]["leaves"] == 2000 and result["append"]["leaves_per_s"] > 0
    assert result["append"]["raw_copy_rows_per_s"] > 0
    assert result["appender"]["messages"] >= 300 and result["appender"]["raw_pull_ack_per_s"] > 0
    assert result["checkpoint_latency"]["covered"] > 0
    assert [p["size"] for p in result["proofs"]] == [500, 3000]
    assert all(p["p99_ms"] >= p["p50_ms"] > 0 for p in result["proofs"])
    assert all(m["state_bytes"] > 0 for m in result["memory"])
