"""`govhub ops gen-config|nkey|resync`: running a real prefecture."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hub.cli.common import async_command, emit, json_option, run, settings
from hub.display import console
from hub.embedded import nats_server_binary
from hub.enrollment import load_participants
from hub.errors import ConfigError
from hub.federation.credentials import import_public, participant_nkey, participant_public
from hub.federation.opsgen import dev_certificates, generate
from hub.federation.plan import production_plan
from hub.home import Settings
from hub.runtime import open_hub
from hub.scenario import Scenario


@click.group()
def ops() -> None:
    """Operations: deployment configs for the hub cluster and the county leaf nodes."""


@ops.command("gen-config")
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write."
)
@click.option(
    "--hub-nodes",
    type=click.Choice(["1", "3"]),
    default="3",
    show_default=True,
    help="Hub nodes (3: a JetStream cluster with R3 streams).",
)
@click.option(
    "--dns-suffix",
    default="gov.example",
    show_default=True,
    help="Node host names are <node>.<suffix> (hub-1, cty-akto, region-xj, ...).",
)
@click.option(
    "--county-budget-gib",
    type=int,
    default=200,
    show_default=True,
    help="Byte budget of each county's outbound stream (the longest outage it absorbs).",
)
@click.option(
    "--tls-dir",
    default=None,
    help="Where nodes find ca.crt and <node>.crt/.key (default /etc/nats/tls).",
)
@click.option(
    "--dev-certs",
    is_flag=True,
    help="Also write a throwaway CA and node certificates to OUT/tls (a lab, never production).",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Check every generated config with `nats-server -t`.",
)
@json_option
@click.pass_context
def gen_config(
    ctx: click.Context,
    out: str,
    hub_nodes: str,
    dns_suffix: str,
    county_budget_gib: int,
    tls_dir: str | None,
    dev_certs: bool,
    check: bool,
    as_json: bool,
) -> None:
    """Write nats-server configs, users, systemd units and a Prometheus scrape config."""
    conf = settings(ctx)
    target = Path(out).resolve()
    scenario, users = run(_registry(conf))
    plan = production_plan(
        scenario,
        hub_nodes=int(hub_nodes),
        dns_suffix=dns_suffix,
        county_max_bytes=county_budget_gib * 1024**3,
    )
    if dev_certs:
        dev_certificates(target / "tls", plan.nodes)
        tls_dir = tls_dir or str(target / "tls")
    configs = generate(conf.home, plan, target, users, tls_dir=tls_dir or "/etc/nats/tls")
    checks = {}
    if check:
        if tls_dir is None or not Path(tls_dir).exists():
            raise ConfigError(
                "cannot check configs whose TLS files do not exist here; "
                "pass --dev-certs or --tls-dir, or --no-check"
            )
        for path in configs:
            checks[path.parent.name] = _check(path)
    nodes: list[dict[str, Any]] = [
        {
            "name": n.name,
            "role": n.role,
            "domain": n.domain,
            "host": n.host,
            "config": str(target / n.name / "nats.conf"),
            "check": checks.get(n.name),
        }
        for n in plan.nodes
    ]
    data = {"out": str(target), "nodes": nodes, "participants_with_credentials": len(users)}

    def human() -> None:
        table = Table("node", "role", "domain", "host", "nats-server -t")
        for node in nodes:
            table.add_row(
                node["name"],
                node["role"],
                node["domain"] or "",
                node["host"],
                node["check"] or "not checked",
            )
        console.print(table)
        console.print(f"wrote {target} ({len(users)} participants with NATS credentials)")

    emit(as_json, data, human)
    failed = [n for n, verdict in checks.items() if verdict != "valid"]
    if failed:
        raise ConfigError(f"nats-server -t refused the config of {', '.join(failed)}")


@ops.command("nkey")
@click.argument("participant_id")
@click.option(
    "--import-public",
    "public",
    default=None,
    help="Record a department's public nkey (it made the seed on its own machine).",
)
@json_option
@click.pass_context
def nkey(ctx: click.Context, participant_id: str, public: str | None, as_json: bool) -> None:
    """A participant's NATS credential: made here (the seed stays, 0600), or its public key."""
    home = settings(ctx).home
    if public is not None:
        import_public(home, participant_id, public)
        made = participant_public(home, participant_id)
    else:
        key = participant_nkey(home, participant_id)
        made = key.public if key is not None else None
    data = {"participant": participant_id, "public_nkey": made}
    emit(as_json, data, lambda: console.print(f"{participant_id}: {made}"))


@ops.command("resync")
@json_option
@click.pass_context
@async_command
async def resync(ctx: click.Context, as_json: bool) -> None:
    """Rewrite the registry's KV copy from PostgreSQL (after a restore) and the servers' users."""
    async with open_hub(settings(ctx)) as hub:
        count = await hub.enrollment.sync()
        nodes = await hub.federation.sync_permissions(hub.pool) if hub.federation else []
    data = {"participants": count, "nodes_reloaded": nodes}
    emit(
        as_json,
        data,
        lambda: console.print(f"registry rewritten: {count} participants; reloaded: {nodes}"),
    )


async def _registry(conf: Settings) -> tuple[Scenario, list[tuple[str, str]]]:
    """The scenario and the (id, public nkey) of every active participant with one."""
    async with open_hub(conf) as hub:
        users = []
        for p in await load_participants(hub.pool):
            public = participant_public(conf.home, p.id) if p.status == "active" else None
            if public is not None:
                users.append((p.id, public))
        return hub.scenario, users


def _check(config: Path) -> str:
    """`nats-server -t`: "valid", or the server's one-line complaint."""
    binary = nats_server_binary() or shutil.which("nats-server") or "nats-server"
    result = subprocess.run(
        [binary, "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(config.parent),
        check=False,
    )
    if result.returncode == 0:
        return "valid"
    return (result.stderr or result.stdout).strip().splitlines()[-1]


COMMANDS = [ops]
