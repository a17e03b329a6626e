"""`govhub demo`: run the Kezhou story and print what happened as tables."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator

import click

from hub.cli.common import async_command, chosen_suite, emit, json_option, suite_option
from hub.console.app import DEFAULT_ADDRESS
from hub.demo import render, run_demo
from hub.display import console
from hub.home import Home
from hub.runtime import open_hub


@contextlib.contextmanager
def one_demo_at_a_time(home: Home) -> Iterator[None]:
    """Hold the home's demo lock for a whole run, waiting (and saying so) if another has it.

    A demo resets the departments' tables and folders of its home and reads with fixed durable
    cursors, so two at once would take each other's events and report wrong figures; and the
    embedded servers one of them started would stop under the other when it exits. So the
    lock is taken before the servers are opened and released after they are stopped.
    """
    home.ensure()
    with open(home.run / "demo.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            click.echo("another demo is running on this home; waiting", err=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@click.command()
@click.option(
    "--federated",
    is_flag=True,
    help="Run on the federated topology: county leaf nodes, the hub, the region link.",
)
@suite_option
@json_option
@click.pass_context
@async_command
async def demo(ctx: click.Context, federated: bool, suite: str | None, as_json: bool) -> None:
    """Run the Kezhou scenario end to end and print a summary."""
    conf = chosen_suite(ctx, suite)
    with one_demo_at_a_time(conf.home):
        async with open_hub(conf, federated=federated) as hub:
            result = await run_demo(hub)

    def human() -> None:
        render(console, result)
        console_hint(conf.home)

    emit(as_json, result, human)


def console_hint(home: Home) -> None:
    """How to look at what the demo did in the web console (docs/console.md)."""
    url = f"http://{DEFAULT_ADDRESS}/console/"
    gov = f"govhub --home {home.root}"
    click.echo(
        f"\nweb console: {url}\n"
        f"  start it:  {gov} serve\n"
        f"  sign in:   {gov} console login --as pref.office --url http://{DEFAULT_ADDRESS}\n"
        "             (or --as pref.audit for the auditor, akto.stats for a provider)"
    )


COMMANDS = [demo]
