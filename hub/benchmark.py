"""Benchmark plumbing: a scratch hub, timing, percentiles, machine facts, result tables.

Benchmarks run against a scratch home (embedded servers started for the run and removed after)
unless external servers are configured, so they never pollute a real hub's streams or audit
log. Every govhub figure is printed next to the raw client measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.home import Home, Settings
from hub.runtime import Hub, open_hub


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of samples (0 for none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def latency_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    return {
        "p50_ms": round(percentile(samples_s, 0.50) * 1000, 3),
        "p99_ms": round(percentile(samples_s, 0.99) * 1000, 3),
    }


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Stopwatch:
    """Wall-clock timing of one measured phase."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds = 0.0

    def stop(self) -> float:
        """Stop and return the elapsed seconds."""
        self.seconds = time.perf_counter() - self.started
        return self.seconds


@contextlib.asynccontextmanager
async def scratch_hub(settings: Settings) -> AsyncIterator[Hub]:
    """A hub for a benchmark: embedded servers on a throwaway home (removed afterwards), or,
    when external servers are configured, those servers with this home's keys (the benchmark
    events then stay in their streams, on their own `bench` subjects)."""
    if settings.nats_url or settings.pg_dsn:
        async with open_hub(settings) as hub:
            yield hub
        return
    settings.home.root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-", dir=settings.home.root))
    try:
        async with open_hub(replace(settings, home=Home(root))) as hub:
            yield hub
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_results(console: Console, title: str, rows: list[tuple[str, str, str]]) -> None:
    """A three-column table: measure, govhub, raw client."""
    table = Table("measure", "govhub", "raw client", title=title, title_justify="left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    facts = machine()
    console.print(f"machine: {facts['cpu']}, {facts['cores']} cores, Python {facts['python']}")
