"""The pipeline benchmark's picture: audited throughput and latency against offered load (PNG).

matplotlib is an optional extra (`pip install -e '.[bench]'`); without it the figures are still
printed and the plot is skipped with a one-line note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
