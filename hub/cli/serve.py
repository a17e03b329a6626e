"""`govhub serve`: run the hub services until stopped."""

from __future__ import annotations

import os

import click

from hub.cli.common import address, async_command, settings
from hub.console.app import ADDRESS_ENV, DEFAULT_ADDRESS
from hub.listen import parse_address
from hub.log import configure
from hub.runtime import open_hub
from hub.serve import serve as run_services


@click.command()
@click.option("--only", default="", help="Comma-separated service names to run (default: all).")
@click.option(
    "--http",
    "http_addr",
    default="127.0.0.1:8480",
    callback=address,
    show_default=True,
    help="Address for health, metrics and the audit read API.",
)
@click.option(
    "--console",
    "console_addr",
    default=DEFAULT_ADDRESS,
    envvar=ADDRESS_ENV,
    callback=address,
    show_default=True,
    help=f"Address of the web console (env {ADDRESS_ENV}); docs/console.md.",
)
@click.pass_context
@async_command
async def serve(ctx: click.Context, only: str, http_addr: str, console_addr: str) -> None:
    """Run the hub services (audit appender, checkpoints, directory, exchange tracker, console)."""
    configure("INFO")
    os.environ[ADDRESS_ENV] = console_addr  # read by the console service (hub.console.app)
    host, port = parse_address(http_addr)
    names = [n for n in only.split(",") if n]
    async with open_hub(settings(ctx)) as hub:
        await run_services(hub.parts, only=names, host=host, port=port)


COMMANDS = [serve]
