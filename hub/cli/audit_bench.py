"""`govhub bench audit`: the audit log's figures (see hub/audit/bench.py for what is measured)."""

from __future__ import annotations

import click

from hub.audit.bench import dumps, iter_sizes, render, run_bench
from hub.cli.bench import bench
from hub.cli.common import json_option, run
from hub.display import console


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
