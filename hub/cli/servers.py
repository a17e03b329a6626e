"""`govhub up | down | status`: the embedded servers of a home."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from hub.cli.common import async_command, chosen_suite, emit, json_option, settings, suite_option
from hub.db import redact
from hub.display import console
from hub.embedded import EmbeddedServers
from hub.federation.servers import FederatedServers
from hub.runtime import open_hub


@click.command()
@click.option(
    "--scenario", default=None, help="Scenario to enroll into an empty registry (default kezhou)."
)
@click.option(
    "--federated",
    is_flag=True,
    help="The federated topology: hub node(s), one leaf per county, the region link.",
)
@click.option(
    "--hub-nodes",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="Hub nodes of a federated home (3: a JetStream cluster with R3 streams).",
)
@suite_option
@json_option
@click.pass_context
@async_command
async def up(
    ctx: click.Context,
    scenario: str | None,
    federated: bool,
    hub_nodes: str,
    suite: str | None,
    as_json: bool,
) -> None:
    """Start the embedded servers and keep them running until `govhub down`."""
    conf = chosen_suite(ctx, suite)
    async with open_hub(
        conf, keep_servers=True, scenario=scenario, federated=federated, hub_nodes=int(hub_nodes)
    ) as hub:
        data = {
            "home": str(conf.home.root),
            "nats_url": hub.nats_url,
            "pg_dsn": redact(hub.pg_dsn),
            "participants": len(hub.participants),
            "scenario": hub.scenario.name,
            "suite": conf.suite.name,
        }
        if hub.federation is not None and hub.federation.servers is not None:
            data["nodes"] = [n.to_json() for n in hub.federation.servers.status()]
    emit(
        as_json,
        data,
        lambda: console.print(
            f"govhub is up: NATS {data['nats_url']}, PostgreSQL {data['pg_dsn']}, "
            f"{data['participants']} participants ({data['scenario']}), suite {data['suite']}. "
            "Stop with `govhub down`."
        ),
    )


@click.command()
@json_option
@click.pass_context
def down(ctx: click.Context, as_json: bool) -> None:
    """Stop the embedded servers of this home."""
    home = settings(ctx).home
    federated = FederatedServers.open(home)
    stopped = federated.stop_all() if federated is not None else []
    stopped += EmbeddedServers(home).stop_all()
    emit(
        as_json,
        {"stopped": stopped},
        lambda: console.print(
            f"stopped: {', '.join(stopped)}" if stopped else "nothing was running"
        ),
    )


def status_data(ctx: click.Context) -> dict[str, Any]:
    """What `status --json` prints: URLs and every server process of this home."""
    conf = settings(ctx)
    running = EmbeddedServers(conf.home).running()
    nodes = [
        {
            "name": info.name,
            "role": "hub" if info.name == "nats" else "database",
            "domain": info.domain,
            "client_url": info.url if info.name == "nats" else redact(info.url),
            "pid": info.pid,
            "port": info.port,
            "kept": info.kept,
            "log": info.log,
        }
        for info in running.values()
    ]
    nats = running.get("nats")
    pg = running.get("postgres")
    data = {
        "home": str(conf.home.root),
        "mode": "external" if conf.external else "embedded",
        "running": bool(conf.external or (nats and pg)),
        "nats_url": conf.nats_url or (nats.url if nats else None),
        "pg_dsn": redact(conf.pg_dsn) if conf.pg_dsn else (pg.url if pg else None),
        "nats_monitor_url": nats.monitor_url if nats else None,
        "nodes": nodes,
        "topology": "single",
    }
    federated = FederatedServers.open(conf.home) if conf.nats_url is None else None
    if federated is not None:
        # Every node of the plan, pid 0 when it is not running (an outage drill shows).
        fed_nodes = [n.to_json() for n in federated.status()]
        hub = federated.plan.hub_nodes[0]
        data.update(
            topology="federated",
            running=bool(pg) and all(n["pid"] for n in fed_nodes),
            nats_url=",".join(federated.plan.hub_client_urls()),
            nats_monitor_url=hub.monitor_url,
            nodes=fed_nodes + nodes,
        )
    return data


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show servers, URLs, domains and pids."""
    data = status_data(ctx)

    def human() -> None:
        console.print(f"home: {data['home']} ({data['mode']})")
        if not data["nodes"]:
            console.print("no embedded server is running; `govhub up` starts them")
            return
        table = Table("name", "role", "domain", "client url", "pid")
        for node in data["nodes"]:
            table.add_row(
                node["name"],
                node["role"],
                node["domain"] or "",
                node["client_url"],
                str(node["pid"]),
            )
        console.print(table)

    emit(as_json, data, human)


COMMANDS = [up, down, status]
