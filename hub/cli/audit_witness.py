"""`govhub audit witness`: run a county's witness (c2sp.org/tlog-witness) with its own key."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import click

from hub.audit.config import audit_dir
from hub.audit.logkeys import witness_signer
from hub.audit.note import ALG_ED25519, KeyFormatError, Verifier
from hub.audit.witness import Witness, alarm_folder_sink, serve_witness
from hub.cli.audit import audit
from hub.cli.common import address, async_command, settings
from hub.display import console
from hub.errors import ConfigError
from hub.listen import parse_address


@audit.command("witness")
@click.option("--unit", required=True, help="The unit running this witness (names its key).")
@click.option("--name", default=None, help="Witness key name (default witness.<unit>.<log host>).")
@click.option(
    "--log-key",
    "log_keys",
    multiple=True,
    required=True,
    help="A log verifier key to trust (repeat during a key rotation).",
)
@click.option(
    "--listen", default="127.0.0.1:8481", callback=address, show_default=True, help="HTTP address."
)
@click.option("--print-key", is_flag=True, help="Print the witness's verifier key and exit.")
@click.pass_context
@async_command
async def witness(
    ctx: click.Context,
    unit: str,
    name: str | None,
    log_keys: tuple[str, ...],
    listen: str,
    print_key: bool,
) -> None:
    """Cosign the log's checkpoints only if they extend the last one this witness cosigned."""
    try:
        verifiers = [Verifier.from_vkey(v) for v in log_keys]
    except KeyFormatError as exc:
        raise ConfigError(f"--log-key: {exc}") from exc
    if any(v.alg != ALG_ED25519 for v in verifiers):
        raise ConfigError("--log-key must be a log's Ed25519 note key (type 0x01)")
    origins: dict[str, list[Verifier]] = {}
    for v in verifiers:
        origins.setdefault(v.name, []).append(v)
    home = settings(ctx).home
    home.ensure()
    host = verifiers[0].name.split("/", 1)[0]
    signer = witness_signer(home, unit, name or f"witness.{unit}.{host}")
    if print_key:
        click.echo(signer.verifier.vkey())
        return
    folder = audit_dir(home) / "witnesses" / unit
    county = Witness(signer, lambda: origins, folder, alarm_folder_sink(folder / "alarms"))
    console.print(f"witness {signer.verifier.vkey()} for {', '.join(origins)} on http://{listen}")
    bind_host, port = parse_address(listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await serve_witness(county, bind_host, port, stop)


COMMANDS: list[click.Command] = []  # `witness` hangs off the `audit` group imported above
