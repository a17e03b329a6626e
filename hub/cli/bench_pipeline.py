"""`govhub bench pipeline` and `govhub bench scale`: the signed and audited path end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from hub.benchmark import print_results, scratch_hub
from hub.cli.bench import bench, bench_suite_option
from hub.cli.common import async_command, emit, json_option, settings
from hub.display import console, status


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


@bench.command("pipeline")
@click.option("--events", default=50_000, show_default=True, help="Events in the full-speed run.")
@click.option("--size", default=200, show_default=True, help="Payload text size in bytes.")
@click.option(
    "--rates",
    default="500,1000,2000,5000,10000",
    show_default=True,
    help="Offered loads (events/s) for the latency runs; empty for none.",
)
@click.option("--seconds", default=5.0, show_default=True, help="Length of each offered-load run.")
@click.option(
    "--plot",
    "plot_path",
    default="bench-pipeline.png",
    show_default=True,
    type=click.Path(dir_okay=False, resolve_path=True),
    help="Where to write the PNG plot (needs the `bench` extra).",
)
@click.option(
    "--compare-v1",
    is_flag=True,
    help="Also run the full-speed pass with one signature per event (govhub-sig-v1).",
)
@bench_suite_option
@json_option
@click.pass_context
@async_command
async def pipeline_bench(
    ctx: click.Context,
    events: int,
    size: int,
    rates: str,
    seconds: float,
    plot_path: str,
    compare_v1: bool,
    suite: str | None,
    as_json: bool,
) -> None:
    """Record → sign → JetStream → verify → Merkle → PostgreSQL, next to raw nats-py publishing."""
    from hub.bench_pipeline import bench_pipeline
    from hub.benchplot import write_plot

    conf = settings(ctx).with_suite(suite)
    with status("measuring the pipeline…") if not as_json else _null():
        async with scratch_hub(conf) as hub:
            result = await bench_pipeline(
                hub, events, size, _rates(rates), seconds, compare_v1=compare_v1
            )
    result["suite"] = conf.suite.name
    if conf.suite.name == "gm":
        result["signatures"] = "govhub-sig-v1-sm2 (one SM2 signature per event; no v2 in gm yet)"
    target = Path(plot_path)
    note: str | None = "plot skipped: no --rates"
    if result["loads"]:
        note = await asyncio.to_thread(write_plot, result, target)
    result["plot"] = None if note else str(target)

    def human() -> None:
        ours, raw = result["govhub"], result
        print_results(
            console,
            f"bench pipeline ({result['suite']} suite): {events:,} events of "
            f"{result['body_bytes']} bytes, audited",
            [
                (
                    "events/s (publish → audited)",
                    f"{ours['events_per_s']:,}",
                    f"{raw['raw_publish_per_s']:,}",
                ),
                ("p50 ms", str(ours["p50_ms"]), ""),
                ("p99 ms", str(ours["p99_ms"]), ""),
                ("ratio govhub / best raw publish", f"{result['ratio']:.2f}", ""),
            ],
        )
        if result["govhub_sig_v1"]:
            v1 = result["govhub_sig_v1"]
            console.print(
                f"one signature per event (v1): {v1['events_per_s']:,} audited events/s, "
                f"p99 {v1['p99_ms']} ms"
            )
        for row in result["loads"]:
            console.print(
                f"offered {row['offered_per_s']:>8,.0f}/s: audited {row['events_per_s']:>7,}/s, "
                f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
            )
        console.print(note or f"plot: {result['plot']}")

    emit(as_json, result, human)
    if as_json and note:
        click.echo(note, err=True)


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


@bench.command("scale")
@click.option(
    "--sizes",
    default="1e4,1e6",
    show_default=True,
    help="Audit log sizes (entries) to measure at, grown in one log.",
)
@click.option(
    "--with-1e7",
    "with_1e7",
    is_flag=True,
    help="Also measure at 10^7 entries (the bulk load takes 10-20 minutes on 2 cores).",
)
@click.option("--events", default=20_000, show_default=True, help="Events pushed at each size.")
@click.option("--samples", default=200, show_default=True, help="Proofs timed at each size.")
@json_option
@click.pass_context
@async_command
async def scale_bench(
    ctx: click.Context, sizes: str, with_1e7: bool, events: int, samples: int, as_json: bool
) -> None:
    """Per-event cost and `govhub serve` memory at growing audit log sizes (flat is the goal)."""
    from hub.bench_scale import bench_scale

    targets = _sizes(sizes) + ([10_000_000] if with_1e7 else [])

    def say(message: str) -> None:
        if not as_json:
            console.print(message, style="dim")

    async with scratch_hub(settings(ctx)) as hub:
        result = await bench_scale(hub, targets, events, samples, say)

    def human() -> None:
        for row in result["rows"]:
            console.print(
                f"{row['log_entries']:>12,} entries: {row['events_per_s']:>6,} events/s, "
                f"{row['serve_cpu_us_per_event']:>6} µs CPU/event in serve, RSS "
                f"{row['serve_rss_mb']} MB (peak {row['serve_peak_rss_mb']}), proof p50 "
                f"{row['proof']['p50_ms']} ms"
            )

    emit(as_json, result, human)
