"""Benchmark plumbing: a scratch hub, timing, percentiles, machine facts, result tables, what
/proc says about a process, and the pipeline plot.

Benchmarks run against a scratch home (embedded servers started for the run and removed after)
unless external servers are configured, so they never pollute a real hub's streams or audit
log. Every govhub figure is printed next to the raw client measured in the same run.

CPU time, resident memory and children come from /proc (Linux only): the benchmarks report
CPU microseconds per event for each process on the path and the resident memory of `govhub
serve`; elsewhere the figures are simply absent (0 or None). matplotlib, for the plot, is an
optional extra (`pip install -e '.[bench]'`); without it the figures are still printed and the
plot is skipped with a one-line note.
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


# -- /proc ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A memory line of /proc/<pid>/status in MB (VmRSS: resident now, VmHWM: peak)."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open(f"/proc/{pid}/status", encoding="ascii") as f,
    ):
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def children(parent: int) -> list[int]:
    """Pids of the processes whose parent is ``parent``."""
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            with (
                contextlib.suppress(OSError, IndexError, ValueError),
                open(f"/proc/{entry}/stat", encoding="ascii") as f,
            ):
                if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry))
    return found


# -- the pipeline plot ------------------------------------------------------------------


def write_plot(result: dict[str, Any], path: Path) -> str | None:
    """Draw the plot into ``path``; returns why it was skipped, or None when written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install -e '.[bench]')"
    loads = sorted(result["loads"], key=lambda row: row["offered_per_s"])
    full = result["govhub"]
    offered = [row["offered_per_s"] for row in loads]
    achieved = [row["events_per_s"] for row in loads]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    top.plot(offered, achieved, "o-", label="govhub audited (signed, verified, in the log)")
    top.plot(offered, offered, ":", color="grey", label="offered")
    full_label = f"govhub at full speed: {full['events_per_s']:,}/s"
    raw_label = f"raw nats-py publish, same run: {result['raw_publish_per_s']:,}/s"
    top.axhline(full["events_per_s"], color="tab:blue", ls="--", lw=1, label=full_label)
    top.axhline(result["raw_publish_per_s"], color="tab:red", ls="--", lw=1, label=raw_label)
    top.set_ylabel("events/s")
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.plot(offered, [row["p50_ms"] for row in loads], "o-", label="p50")
    bottom.plot(offered, [row["p99_ms"] for row in loads], "s-", label="p99")
    bottom.axhline(50, color="grey", ls=":", lw=1, label="p99 target at 1,000/s: 50 ms")
    bottom.set_yscale("log")
    bottom.set_xscale("log")
    bottom.set_xlabel("offered load (events/s)")
    bottom.set_ylabel("record handed over → leaf committed (ms)")
    bottom.legend(fontsize=8, loc="upper left")
    bottom.grid(alpha=0.3, which="both")
    facts = result["machine"]
    fig.suptitle(
        f"govhub bench pipeline: {facts['cores']} cores, {facts['cpu'][:40]}, "
        f"{result['body_bytes']} B bodies",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
