"""`govhub participant list|show|add|revoke|rotate`: the registry, its keys and certificates."""

from __future__ import annotations

import base64
from typing import Any

import click
from rich.table import Table

from hub.cli.common import async_command, emit, json_option, settings
from hub.display import console, styled
from hub.enrollment import NewParticipant, load_participants
from hub.errors import InputError, RegistryError
from hub.runtime import open_hub
from hub.suites import for_public_key


@click.group()
def participant() -> None:
    """The participant registry: ids, keys, certificates, status."""


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "role", "status", "key id")
    for row in rows:
        status = styled(row["status"], "" if row["status"] == "active" else "red")
        table.add_row(row["id"], row["name"], row["role"], status, row["key_id"] or "")
    return table


@participant.command("list")
@json_option
@click.pass_context
@async_command
async def list_(ctx: click.Context, as_json: bool) -> None:
    """List every participant."""
    async with open_hub(settings(ctx)) as hub:
        rows = [p.to_json() for p in await load_participants(hub.pool)]
    emit(as_json, {"participants": rows, "count": len(rows)}, lambda: console.print(_table(rows)))


@participant.command()
@click.argument("participant_id")
@json_option
@click.pass_context
@async_command
async def show(ctx: click.Context, participant_id: str, as_json: bool) -> None:
    """Show one participant with its keys and certificate."""
    async with open_hub(settings(ctx)) as hub:
        found = await load_participants(hub.pool, participant_id)
    if not found:
        raise RegistryError(f"{participant_id} is not a registered participant")
    data = found[0].to_json()

    def human() -> None:
        console.print(_table([data]))
        keys = Table("key id", "not before", "not after", title="keys", title_justify="left")
        for key in data["keys"]:
            keys.add_row(key["key_id"], key["not_before"], key["not_after"] or "")
        console.print(keys)
        console.print(data["certificate_pem"] or "")

    emit(as_json, data, human)


@participant.command()
@click.argument("participant_id")
@click.option("--name", default="", help="Official name of the department (Chinese welcome).")
@click.option(
    "--role",
    default="department",
    type=click.Choice(["department", "office", "auditor", "operator"]),
)
@click.option(
    "--public-key",
    default=None,
    help="Base64 public key generated on the department's own machine: raw 32-byte Ed25519 "
    "(suite intl) or the 65-byte uncompressed SM2 point (suite gm); without it a key is "
    "generated in this home, in the hub's suite.",
)
@json_option
@click.pass_context
@async_command
async def add(
    ctx: click.Context,
    participant_id: str,
    name: str,
    role: str,
    public_key: str | None,
    as_json: bool,
) -> None:
    """Register a participant and certify its key (hub operator only)."""
    raw = None
    if public_key is not None:
        try:
            raw = base64.b64decode(public_key, validate=True)
        except ValueError:  # binascii.Error, or plain ValueError for non-ASCII text
            raise InputError("--public-key must be standard base64") from None
        try:
            for_public_key(raw).load_public(raw)
        except ValueError:
            raise InputError(
                "--public-key must be a raw 32-byte Ed25519 key or a 65-byte uncompressed SM2 "
                "point (04 || x || y)"
            ) from None
    async with open_hub(settings(ctx)) as hub:
        added = await hub.enrollment.add([NewParticipant(participant_id, name, role, raw)])
        if hub.federation is not None:  # the new participant's server user, by reload
            await hub.federation.sync_permissions(hub.pool)
    data = added[0].to_json()
    emit(as_json, data, lambda: console.print(f"registered {data['id']} with key {data['key_id']}"))


@participant.command()
@click.argument("participant_id")
@json_option
@click.pass_context
@async_command
async def revoke(ctx: click.Context, participant_id: str, as_json: bool) -> None:
    """Revoke a participant: its events stamped from now on are refused."""
    async with open_hub(settings(ctx)) as hub:
        data = (await hub.enrollment.revoke(participant_id)).to_json()
        if hub.federation is not None:  # the servers drop its user: access ends now
            await hub.federation.sync_permissions(hub.pool)
    emit(as_json, data, lambda: console.print(f"revoked {data['id']} at {data['revoked_at']}"))


@participant.command()
@click.argument("participant_id")
@json_option
@click.pass_context
@async_command
async def rotate(ctx: click.Context, participant_id: str, as_json: bool) -> None:
    """Give a participant a new key; the old one still verifies older events."""
    async with open_hub(settings(ctx)) as hub:
        data = (await hub.enrollment.rotate(participant_id)).to_json()
    emit(as_json, data, lambda: console.print(f"{data['id']} now signs with key {data['key_id']}"))


COMMANDS = [participant]
