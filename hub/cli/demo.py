"""`govhub demo`: run the Kezhou story and print what happened as tables."""

from __future__ import annotations

import click

from hub.cli.common import async_command, emit, json_option, settings
from hub.demo import render, run_demo
from hub.display import console
from hub.runtime import open_hub


@click.command()
@click.option(
    "--federated",
    is_flag=True,
    help="Run on the federated topology: county leaf nodes, the hub, the region link.",
)
@json_option
@click.pass_context
@async_command
async def demo(ctx: click.Context, federated: bool, as_json: bool) -> None:
    """Run the Kezhou scenario end to end and print a summary."""
    async with open_hub(settings(ctx), federated=federated) as hub:
        result = await run_demo(hub)
    emit(as_json, result, lambda: render(console, result))


COMMANDS = [demo]
