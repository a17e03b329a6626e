"""What every command shares: settings from `--home`, `--json` output, running async code."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from hub.display import literal
from hub.home import Settings, record_suite
from hub.jsonout import dumps
from hub.listen import parse_address
from hub.suites import SUITES

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def settings(ctx: click.Context) -> Settings:
    """The settings the root command built from `--home` and the environment."""
    value = ctx.find_root().obj
    assert isinstance(value, Settings)
    return value


def suite_option(func: F) -> F:
    """Add `--suite intl|gm`: the crypto suite of the home, recorded in its config.toml."""
    return click.option(
        "--suite",
        type=click.Choice(sorted(SUITES)),
        default=None,
        help="Crypto suite: intl (Ed25519, SHA-256) or gm (SM2, SM3, SM4); recorded in the "
        "home's config.toml (default: GOVHUB_SUITE, then config.toml, then intl).",
    )(func)


def chosen_suite(ctx: click.Context, name: str | None) -> Settings:
    """The settings with a `--suite` applied and recorded in the home, for every later command."""
    conf = settings(ctx).with_suite(name)
    if name is not None:
        record_suite(conf.home, conf.suite)
        ctx.find_root().obj = conf
    return conf


def json_option(func: F) -> F:
    """Add `--json`: print one JSON document on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
    )(func)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop (uvloop's when it is installed).

    uvloop's loop costs less per callback and per socket read than asyncio's own; at
    thousands of events a second that is several percent of the audit appender's CPU.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print `data` as JSON, or call `human` to print it for a person."""
    if as_json:
        click.echo(dumps(data))
    else:
        human()


def async_command(func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """Let a click command be an `async def` taking the click context first."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(func(*args, **kwargs))

    return wrapper


def say(message: str) -> None:
    """One line for a person on stderr, literal like everything govhub prints."""
    click.echo(literal(message), err=True)


def address(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Option callback for HOST:PORT: refused with one sentence when the command line is read."""
    if value is not None:
        try:
            parse_address(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param=param) from None
    return value
