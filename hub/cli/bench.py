"""`govhub bench ...`: rerunnable benchmarks that print figures next to the raw client's."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks: govhub's figures next to the raw client measured in the same run."""


COMMANDS = [bench]
