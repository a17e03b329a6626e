"""The `govhub` command: one entry point, sub-commands by capability (names fixed by the brief)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback

import click

from hub.cli.common import say
from hub.errors import GovhubError
from hub.home import Settings
from hub.log import configure
from hub.outage import first_failure
from hub.userfiles import why


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="GOVHUB_HOME",
    default=None,
    help="Home folder for keys and embedded servers (env GOVHUB_HOME, default ./.govhub).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """govhub: signed Avro events over NATS JetStream between government departments."""
    configure()
    ctx.obj = Settings.from_env(home)


def _register() -> None:
    """Every module of this package that defines COMMANDS contributes them to `govhub`."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: errors become one sentence on stderr and a non-zero exit.

    Error messages quote what people typed and what other departments sent, so they go out
    through `literal` like every other line govhub prints.
    """
    configure()
    try:
        try:
            code = cli.main(args, standalone_mode=False)
        except BaseExceptionGroup as group:
            # A TaskGroup's failure is never shown as a group: the person hears about its
            # first govhub error (or its first failure), like any other.
            raise first_failure(group) from group
        sys.stdout.flush()  # a full disk or closed pipe under stdout is reported here, not lost
    except click.exceptions.Abort:
        say("govhub: interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GovhubError as exc:
        say(f"govhub: {exc}")
        if exc.diagnostics():
            say(f"        {exc.diagnostics()}")
        sys.exit(1)
    except KeyboardInterrupt:
        say("govhub: interrupted")
        sys.exit(130)
    except OSError as exc:  # the machine refused (a full disk, a closed pipe): not a bug
        _quiet_stdout()
        writing = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EPIPE)
        where = f"{exc.filename}: " if exc.filename else "cannot write: " if writing else ""
        say(f"govhub: {where}{why(exc)}")
        if os.environ.get("GOVHUB_DEBUG"):
            traceback.print_exc()
        sys.exit(1)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for GOVHUB_DEBUG
        say(f"govhub: internal error ({type(exc).__name__}): {exc}")
        if os.environ.get("GOVHUB_DEBUG"):
            traceback.print_exc()
        else:
            say("        Run again with GOVHUB_DEBUG=1 for the traceback.")
        sys.exit(70)
    # Outside standalone mode click hands back the status of `ctx.exit(n)` or `Exit(n)` instead
    # of exiting with it (a command's own return value is None): a failing check must not
    # leave the process with status 0.
    if isinstance(code, int) and code:
        sys.exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again (and
    print Python's own words) after the failure was reported."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
