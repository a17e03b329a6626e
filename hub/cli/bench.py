"""`govhub bench ...`: rerunnable benchmarks that print figures next to the raw client's.

Each capability adds its own sub-command in its own module (`from hub.cli.bench import bench`,
then `@bench.command("name")`); this module holds the group and the bus benchmarks.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from hub.benchmark import print_results, scratch_hub
from hub.cli.common import async_command, emit, json_option, settings
from hub.display import console, status
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
    from hub.bench_suites import bench_suites

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
    from hub.bench_bus import bench_publish

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
    from hub.bench_bus import bench_consume

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
    import contextlib

    return contextlib.nullcontext()


COMMANDS = [bench]
