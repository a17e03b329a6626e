"""`govhub bench ...`: rerunnable benchmarks that print figures next to the raw client's.

Every `govhub bench` command is declared here, and only here: each parses its options, runs
the measuring code of its capability in hub/bench/ (imported when the command runs, so
`govhub --help` stays quick) and prints the result for a person or as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, TaskID
from rich.table import Table

from hub.bench.measure import print_results, scratch_hub
from hub.cli.common import async_command, emit, json_option, run, settings
from hub.display import console, progress, status
from hub.runtime import Hub
from hub.suites import SUITES


@click.group()
def bench() -> None:
    """Benchmarks: govhub's figures next to the raw client measured in the same run."""


def _rows(result: dict[str, Any], raw_key: str, unit: str) -> list[tuple[str, str, str]]:
    ours, raw = result["govhub"], result[raw_key]
    rows = [(f"{unit}/s", f"{ours['events_per_s']:,}", f"{raw['events_per_s']:,}")]
    if "p50_ms" in ours:
        rows.append(("p50 ms", str(ours["p50_ms"]), str(raw.get("p50_ms", ""))))
        rows.append(("p99 ms", str(ours["p99_ms"]), str(raw.get("p99_ms", ""))))
    rows.append(("ratio govhub / raw", f"{result['ratio']:.2f}", ""))
    if "raw_atomic_batch" in result:
        best = result["raw_atomic_batch"]
        rows.append(("raw atomic batch events/s", "", f"{best['events_per_s']:,}"))
        rows.append(("ratio govhub / best raw", f"{result['ratio_to_best_raw']:.2f}", ""))
    return rows


def bench_suite_option(func: Any) -> Any:
    """`--suite intl|gm` for a benchmark's scratch hub (not recorded in any home)."""
    return click.option(
        "--suite",
        type=click.Choice(sorted(SUITES)),
        default=None,
        help="Crypto suite of the scratch hub (default: the home's).",
    )(func)


@bench.command("suites")
@click.option("--size", default=200, show_default=True, help="Event body size in bytes.")
@click.option("--seconds", default=2.0, show_default=True, help="Wall-clock time of each measure.")
@json_option
def suites_bench(size: int, seconds: float, as_json: bool) -> None:
    """Sign, verify, key generation, hashing and key sealing per suite (intl next to gm)."""
    from hub.bench.suites import bench_suites

    with status("timing both suites…") if not as_json else _null():
        result = bench_suites(size, seconds)
    intl, gm = result["suites"]

    def human() -> None:
        table = Table(
            "measure", "intl (Ed25519, SHA-256)", "gm (SM2, SM3)", "gm / intl",
            title=f"bench suites: one core, v1 signing input over a {size}-byte body",
            title_justify="left",
        )  # fmt: skip
        for label, key in (
            ("sign /s", "sign_per_s"),
            ("verify /s", "verify_per_s"),
            ("key generation /s", "keygen_per_s"),
            ("hash MB/s", "hash_mb_per_s"),
        ):
            ratio = gm[key] / intl[key] if intl[key] else 0.0
            table.add_row(label, f"{intl[key]:,}", f"{gm[key]:,}", f"{ratio:.2f}")
        sealing = result["key_sealing"]
        table.add_row(
            "seal a document key /s",
            f"{sealing['intl_hpke_x25519_seal_per_s']:,} (HPKE X25519)",
            f"{sealing['gm_sm2_wrap_per_s']:,} (SM2 encryption)",
            f"{sealing['gm_sm2_wrap_per_s'] / sealing['intl_hpke_x25519_seal_per_s']:.2f}",
        )
        console.print(table)
        m = result["machine"]
        console.print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}")

    emit(as_json, result, human)


@bench.command("publish")
@click.option("--events", default=20_000, show_default=True, help="Events per measured run.")
@click.option("--size", default=200, show_default=True, help="Payload text size in bytes.")
@bench_suite_option
@json_option
@click.pass_context
@async_command
async def publish_bench(
    ctx: click.Context, events: int, size: int, suite: str | None, as_json: bool
) -> None:
    """Signed, acknowledged publishing vs plain nats-py publish_async (same server, same run)."""
    from hub.bench.bus import bench_publish

    conf = settings(ctx).with_suite(suite)
    with status("publishing…") if not as_json else _null():
        async with scratch_hub(conf) as hub:
            result = await bench_publish(hub, events, size)
    result["suite"] = conf.suite.name
    emit(
        as_json,
        result,
        lambda: print_results(
            console,
            f"bench publish ({conf.suite.name} suite): {events:,} events of "
            f"{result['body_bytes']} bytes, {result['durability']}",
            _rows(result, "raw_publish_async", "events"),
        ),
    )


@bench.command("consume")
@click.option("--events", default=20_000, show_default=True, help="Events in the backlog.")
@click.option("--size", default=200, show_default=True, help="Payload text size in bytes.")
@click.option(
    "--rate", default=1000.0, show_default=True, help="Offered load for the live latency run."
)
@json_option
@click.pass_context
@async_command
async def consume_bench(
    ctx: click.Context, events: int, size: int, rate: float, as_json: bool
) -> None:
    """Verified consumption (every signature checked) vs plain fetch and ack, one process."""
    from hub.bench.bus import bench_consume

    with status("consuming…") if not as_json else _null():
        async with scratch_hub(settings(ctx)) as hub:
            result = await bench_consume(hub, events, size, rate)

    def human() -> None:
        print_results(
            console,
            f"bench consume: backlog of {events:,} events",
            _rows(result, "raw_fetch_ack", "events"),
        )
        live = result["govhub"]["live"]
        console.print(
            f"live: {live['offered_per_s']:g} events/s offered, publish → verified "
            f"p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms"
        )

    emit(as_json, result, human)


def _null() -> Any:
    return contextlib.nullcontext()


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


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
    from hub.bench.measure import write_plot
    from hub.bench.pipeline import bench_pipeline

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
    from hub.bench.scale import bench_scale

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


@bench.command("audit")
@click.option("--leaves", default=200_000, show_default=True, help="Leaves for the append rate.")
@click.option("--batch", default=1000, show_default=True, help="Leaves per transaction.")
@click.option("--events", default=20_000, show_default=True, help="Signed events, end to end.")
@click.option(
    "--sizes",
    default="1e4,1e6",
    show_default=True,
    help="Log sizes for proof timing (add 1e7 for the large sweep, a few minutes).",
)
@click.option("--samples", default=200, show_default=True, help="Proofs timed per size.")
@click.option("--latency-seconds", default=10.0, show_default=True, help="Checkpoint run time.")
@click.option("--rate", default=500, show_default=True, help="Events/s during the latency run.")
@json_option
def audit_bench(
    leaves: int,
    batch: int,
    events: int,
    sizes: str,
    samples: int,
    latency_seconds: float,
    rate: int,
    as_json: bool,
) -> None:
    """Appends/s, proof time against log size, checkpoint latency, appender memory."""
    from hub.bench.audit import dumps, iter_sizes, render, run_bench

    say = (lambda _m: None) if as_json else (lambda m: console.print(m, style="dim"))
    result = run(
        run_bench(
            leaves=leaves,
            batch=batch,
            events=events,
            sizes=tuple(iter_sizes(sizes)),
            samples=samples,
            latency_seconds=latency_seconds,
            rate=rate,
            say=say,
        )
    )
    click.echo(dumps(result) if as_json else render(result))


@bench.command("documents")
@click.option(
    "--size", default="1GiB", show_default=True, help="Size of the large file (0 skips it)."
)
@click.option(
    "--small", default=1000, show_default=True, help="Number of small documents (0 skips them)."
)
@click.option("--recipients", default=10, show_default=True, help="Recipients per small document.")
@click.option("--small-size", default=2048, show_default=True, help="Bytes per small document.")
@click.option(
    "--classification",
    type=click.Choice(["public", "internal", "confidential"]),
    default="internal",
    show_default=True,
    help="Classification of the large file (confidential measures the encrypted path).",
)
@json_option
@click.pass_context
@async_command
async def documents_bench(
    ctx: click.Context,
    size: str,
    small: int,
    recipients: int,
    small_size: int,
    classification: str,
    as_json: bool,
) -> None:
    """Document exchange vs nats-py's object store: MB/s, peak RSS, documents with receipts."""
    from hub.bench.documents import bench_documents, parse_size, render

    nbytes = parse_size(size)

    async def measure(hub: Hub) -> dict[str, Any]:
        return await bench_documents(
            hub,
            size=nbytes,
            small=small,
            recipients=recipients,
            small_size=small_size,
            classification=classification,
        )

    async with scratch_hub(settings(ctx)) as hub:
        if as_json:
            result = await measure(hub)
        else:
            with console.status(f"sending {size} and {small:,} documents…"):
                result = await measure(hub)
    emit(as_json, result, lambda: render(result))


def _step_bar(bar: Progress) -> Callable[[str, int, int], None]:
    """A benchmark's `on_step(name, done, total)` drawn as one progress bar per named step."""
    tasks: dict[str, TaskID] = {}

    def on_step(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=done)

    return on_step


@bench.command("approval")
@click.option("--cases", default=2000, show_default=True, help="Cases of four reviewers each.")
@click.option("--rate", default=20.0, show_default=True, help="Cases/s of the latency run.")
@click.option("--paced", default=200, show_default=True, help="Cases in the latency run.")
@json_option
@click.pass_context
@async_command
async def approval_bench(
    ctx: click.Context, cases: int, rate: float, paced: int, as_json: bool
) -> None:
    """Parallel approval: cases opened and completed per second, last opinion to decision."""
    from hub.bench.approval import render, run_bench

    with progress(disable=as_json, transient=True) as bar:
        on_step = _step_bar(bar)
        async with scratch_hub(settings(ctx)) as hub:
            result = await run_bench(hub, cases, on_step, rate=rate, paced=paced)
    emit(as_json, result, lambda: render(result))


@bench.command("directory")
@click.option("--entries", default=100_000, show_default=True, help="Entries to publish.")
@click.option("--queries", "query_count", default=500, show_default=True, help="Timed searches.")
@json_option
@click.pass_context
@async_command
async def directory_bench(
    ctx: click.Context, entries: int, query_count: int, as_json: bool
) -> None:
    """Directory at scale: publish, materialize, mirror, and search p50/p99 vs a LIKE scan."""
    from hub.bench.directory import render, run_bench

    with progress(disable=as_json, transient=True) as bar:
        on_step = _step_bar(bar)
        async with scratch_hub(settings(ctx)) as hub:
            result = await run_bench(hub, entries, query_count, on_step)
    emit(as_json, result, lambda: render(console, result))


@bench.command("schema")
@click.option("--lookups", default=1_000_000, show_default=True, help="Lookups per timed run.")
@click.option("--rounds", default=30, show_default=True, help="Timed compatibility checks.")
@click.option("--schemas", default=500, show_default=True, help="Synthetic schemas cached.")
@json_option
def schema_bench(lookups: int, rounds: int, schemas: int, as_json: bool) -> None:
    """Cached fingerprint lookups/s and a 50-field FULL_TRANSITIVE check against 20 versions."""
    from hub.bench.schema import render, run_bench

    with status("measuring…") if not as_json else contextlib.nullcontext():
        result = run_bench(lookups, rounds, schemas)
    emit(as_json, result, lambda: render(console, result))


@bench.command("federation")
@click.option(
    "--events", default=100_000, show_default=True, help="Events queued during the outage."
)
@click.option("--samples", default=500, show_default=True, help="Latency samples.")
@json_option
@click.pass_context
def federation_bench(ctx: click.Context, events: int, samples: int, as_json: bool) -> None:
    """Catch-up after an outage and county→hub latency, on a scratch federated topology."""
    from hub.bench.federation import bench_federation

    with status("federation benchmark…") if not as_json else contextlib.nullcontext():
        result = run(bench_federation(settings(ctx), events, samples))

    def human() -> None:
        ours, raw, outage = (
            result["latency"]["govhub"],
            result["latency"]["raw"],
            result["catch_up"],
        )
        print_results(
            console,
            f"bench federation: {result['topology']}",
            [
                ("county→hub p50 ms", str(ours["p50_ms"]), str(raw["p50_ms"])),
                ("county→hub p99 ms", str(ours["p99_ms"]), str(raw["p99_ms"])),
                ("events queued while cut", f"{outage['events']:,}", ""),
                ("queued (county acks) events/s", f"{outage['queued_per_s']:,}", ""),
                ("reconnect → first at hub s", str(outage["reconnect_to_first_s"]), ""),
                ("reconnect → caught up s", str(outage["reconnect_to_caught_up_s"]), ""),
                ("catch-up events/s", f"{outage['catch_up_per_s']:,}", "(server-side)"),
                ("source re-attached on reconnect", str(outage["source_reattached"]), ""),
            ],
        )

    emit(as_json, result, human)


@bench.command("adapters")
@click.option("--rows", default=20_000, show_default=True, help="Outbox rows.")
@click.option("--requests", default=2_000, show_default=True, help="Webhook requests.")
@click.option("--concurrency", default=32, show_default=True, help="Webhook clients at once.")
@click.option("--files", default=200, show_default=True, help="Files dropped in the folder.")
@click.option("--file-bytes", default=64 * 1024, show_default=True, help="Size of each file.")
@json_option
@click.pass_context
@async_command
async def adapters_bench(
    ctx: click.Context,
    rows: int,
    requests: int,
    concurrency: int,
    files: int,
    file_bytes: int,
    as_json: bool,
) -> None:
    """Outbox rows/s, webhook requests/s with p99, folder files/min, each next to raw I/O."""
    from hub.bench.adapters import bench_adapters

    spinner = status("measuring…") if not as_json else contextlib.nullcontext()
    with spinner:
        async with scratch_hub(settings(ctx)) as hub:
            result = await bench_adapters(
                hub,
                rows=rows,
                requests=requests,
                concurrency=concurrency,
                files=files,
                file_bytes=file_bytes,
            )

    def human() -> None:
        o, w, f = result["outbox"], result["webhook"], result["folder"]
        target = "meets" if o["meets_target"] else "MISSES"
        print_results(
            console,
            f"outbox: {rows:,} rows → signed, acknowledged events ({target} the "
            f"{o['target_rows_per_s']:,} rows/s target)",
            [
                (
                    "rows/s (read, publish, mark)",
                    f"{o['govhub']['rows_per_s']:,}",
                    f"{o['raw_read_publish_mark']['rows_per_s']:,}",
                ),
                ("asyncpg reads alone, rows/s", "", f"{o['raw_asyncpg_read']['rows_per_s']:,}"),
                (
                    "nats-py publish_async alone, msgs/s",
                    "",
                    f"{o['raw_nats_publish_async']['msgs_per_s']:,}",
                ),
            ],
        )
        print_results(
            console,
            f"webhook: {requests:,} signed POSTs, {concurrency} clients",
            [
                (
                    "requests/s",
                    f"{w['govhub']['requests_per_s']:,}",
                    f"{w['raw_aiohttp_nats']['requests_per_s']:,}",
                ),
                ("p50 ms", str(w["govhub"]["p50_ms"]), str(w["raw_aiohttp_nats"]["p50_ms"])),
                ("p99 ms", str(w["govhub"]["p99_ms"]), str(w["raw_aiohttp_nats"]["p99_ms"])),
            ],
        )
        print_results(
            console,
            f"folder: {files:,} files of {file_bytes:,} bytes → documents through the exchange",
            [
                (
                    "files/min",
                    f"{f['govhub']['files_per_min']:,}",
                    f"{f['raw_read_hash_publish_move']['files_per_min']:,}",
                ),
            ],
        )

    emit(as_json, result, human)


COMMANDS = [bench]
