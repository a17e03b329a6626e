"""`govhub adapter run|check|list`: run or validate department adapters from a TOML file."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from hub.cli.common import address, async_command, emit, json_option, settings
from hub.display import console, line, styled
from hub.envelope import format_time
from hub.errors import ConfigError, ServiceError
from hub.integration.adapter import known_adapters, load_adapter_file, load_plugin
from hub.integration.connector import known_connectors
from hub.integration.host import build, check_adapter, run_adapters
from hub.integration.pipeline import Pipeline
from hub.jsonout import dumps
from hub.runtime import open_hub
from hub.waits import wait_event

CONFIG = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def adapter() -> None:
    """Department adapters: connect a database, a folder or an HTTP system to the hub."""


@adapter.command("check")
@click.argument("config", type=CONFIG)
@json_option
@click.pass_context
@async_command
async def check(ctx: click.Context, config: Path, as_json: bool) -> None:
    """Validate CONFIG, connect to each system, and show how a sample record maps.

    Nothing is published and nothing is consumed.

    Exit status: 0 when every adapter is ready, 1 when any check or sample mapping failed or
    CONFIG itself is wrong (then nothing connects), 2 for a usage mistake.
    """
    loaded = load_adapter_file(config)
    async with open_hub(settings(ctx)) as hub:
        reports = [await check_adapter(hub.parts, item) for item in loaded.adapters]
    result = {
        "file": str(config),
        "ok": all(r.ok for r in reports),
        "adapters": [r.to_json() for r in reports],
    }
    emit(as_json, result, lambda: _print_checks(result))
    bad = [r.name for r in reports if not r.ok]
    if bad:
        raise ConfigError(
            f"{len(bad)} of {len(reports)} adapters cannot run as configured: {', '.join(bad)}",
            hint="The report above names each problem.",
        )


def _print_checks(result: dict[str, Any]) -> None:
    for report in result["adapters"]:
        mark = ("ok", "green") if report["ok"] else ("problem", "red")
        console.print()
        console.print(
            line(
                (report["name"], "bold"),
                f" ({report['adapter']}, {report['direction']}, "
                f"{report['connector']}, as {report['participant']}): ",
                mark,
            )
        )
        table = Table("side", "", "detail", show_header=False)
        for row in report["checks"]:
            table.add_row(
                row["side"],
                styled("✓", "green") if row["ok"] else styled("✗", "red"),
                row["detail"],
            )
        console.print(table)
        sample = report.get("sample")
        if sample is None:
            console.print("no sample record at hand")
            continue
        console.print(f"sample record {sample['key']}:")
        console.print(dumps(sample["native"]), style="dim")
        if sample.get("fits"):
            where = f" → {sample['kind']}" if sample.get("kind") else ""
            console.print(f"maps to{where}:")
            console.print(dumps(sample.get("mapped")))
            if "event_id" in sample:
                console.print(
                    f"event id {sample['event_id']}, {sample['encoded_bytes']} bytes encoded"
                )
        else:
            console.print(line(("does not map:", "red"), f" {sample['error']}"))
    verdict = ("all good", "green") if result["ok"] else ("fix the problems above", "red")
    console.print()
    console.print(line(f"{result['file']}: ", verdict))


@adapter.command("run")
@click.argument("config", type=CONFIG)
@click.option(
    "--http",
    default=None,
    callback=address,
    help="Serve /healthz and /metrics on HOST:PORT (default: the file's `http`, else none).",
)
@json_option
@click.pass_context
@async_command
async def run(ctx: click.Context, config: Path, http: str | None, as_json: bool) -> None:
    """Run the adapters of CONFIG until SIGINT or SIGTERM (or until every one has failed).

    Each adapter runs on its own: one that fails is reported and the others go on. On a
    terminal a live table shows every adapter's progress; otherwise one line is printed per
    change of an adapter's state (running, degraded, failed, stopped) as it happens. With
    --json the final counts are printed as one JSON document when it stops.

    Exit status: 0 when every adapter ran until stopped, 1 when any adapter failed (or CONFIG
    is wrong, or the --http address cannot be used), 2 for a usage mistake.
    """
    loaded = load_adapter_file(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_hub(settings(ctx)) as hub:
        pipelines = [build(hub.parts, item) for item in loaded.adapters]
        show = sys.stdout.isatty() and not as_json
        display = asyncio.create_task(_progress(pipelines, stop)) if show else None
        if not show and not as_json:
            for pipeline in pipelines:
                pipeline.on_state = _state_line
        try:
            stats = await run_adapters(pipelines, stop, http=http or loaded.http)
        finally:
            stop.set()
            if display is not None:
                await display
    emit(
        as_json, {"file": str(config), "adapters": stats}, lambda: console.print(_table(pipelines))
    )
    failed = [p for p in pipelines if p.stats.state == "failed"]
    if failed:
        causes = "; ".join(f"{p.name}: {p.stats.last_error}" for p in failed)
        raise ServiceError(
            f"{len(failed)} of {len(pipelines)} adapters failed ({causes})",
            hint=f"`govhub adapter check {config}` shows what each adapter needs.",
        )


def _state_line(pipeline: Pipeline) -> None:
    """One plain line per state change, flushed at once: what a log collector keeps."""
    s = pipeline.stats
    error = f": {s.last_error}" if s.state in ("degraded", "failed") and s.last_error else ""
    click.echo(f"{format_time(datetime.now(UTC))[:19]}Z {pipeline.name} {s.state}{error}")


def _table(pipelines: Sequence[Pipeline], rates: dict[str, float] | None = None) -> Table:
    table = Table(
        "adapter",
        "state",
        "received",
        "delivered",
        "dead letters",
        "rejected",
        "retried",
        "in flight",
        "rate/s",
        "last error",
        title="govhub adapters",
        title_justify="left",
    )
    for p in pipelines:
        s = p.stats
        colour = {"running": "green", "degraded": "yellow", "failed": "red"}.get(s.state, "")
        table.add_row(
            p.name,
            styled(s.state, colour),
            str(s.received),
            str(s.delivered),
            str(s.dead_lettered),
            str(s.rejected),
            str(s.retried),
            str(s.inflight),
            f"{(rates or {}).get(p.name, 0.0):,.0f}",
            s.last_error,
        )
    return table


async def _progress(pipelines: Sequence[Pipeline], stop: asyncio.Event) -> None:
    """A live table while attached to a terminal; redrawn twice a second until stopped."""
    last = {p.name: (time.monotonic(), p.stats.delivered) for p in pipelines}
    rates: dict[str, float] = {}
    hint = styled("Ctrl-C stops intake, finishes what is in flight, then exits.", "dim")
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not stop.is_set():
            now = time.monotonic()
            for p in pipelines:
                then, count = last[p.name]
                rates[p.name] = (p.stats.delivered - count) / max(now - then, 1e-6)
                last[p.name] = (now, p.stats.delivered)
            live.update(Group(_table(pipelines, rates), hint))
            await wait_event(stop, 0.5)


@adapter.command("list")
@json_option
def list_installed(as_json: bool) -> None:
    """The installed adapters and connectors (entry points)."""
    adapters: list[dict[str, Any]] = []
    for name in known_adapters():
        plugin = load_plugin(name, name)
        directions = [d for d in ("to_hub", "from_hub") if getattr(plugin, d) is not None]
        adapters.append(
            {
                "name": name,
                "description": plugin.description,
                "directions": directions,
                "schemas": list(plugin.schemas),
                "target": plugin.target,
            }
        )
    connectors = known_connectors()
    result = {"adapters": adapters, "connectors": connectors}

    def human() -> None:
        table = Table("adapter", "directions", "schemas", "description")
        for row in adapters:
            table.add_row(
                row["name"],
                ", ".join(row["directions"]),
                "\n".join(row["schemas"]),
                row["description"],
            )
        console.print(table)
        console.print(f"connectors: {', '.join(connectors)}")

    emit(as_json, result, human)


COMMANDS = [adapter]
