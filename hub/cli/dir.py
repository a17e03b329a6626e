"""`govhub dir ...`: the shared resource directory (政务信息资源目录) from the command line.

Every command that reads first catches the directory up with the hub stream (the same code
the `directory` service runs), so it works without `govhub serve`; `search --offline` reads
the KV copy instead (a county's mirror while its uplink is down).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import click
from rich.table import Table

from hub.cli.common import async_command, emit, json_option, settings
from hub.directory import agenttoken
from hub.directory.dcat import default_base, export_catalog
from hub.directory.mirror import kv_documents
from hub.directory.model import template
from hub.directory.sharing import receive, share
from hub.directory.store import (
    REQUEST_STATES,
    SearchFilters,
    entry_document,
    list_requests,
    search,
    search_documents,
)
from hub.directory.workflow import Directory
from hub.display import console, line
from hub.errors import InputError
from hub.jsonout import dumps
from hub.runtime import Hub, open_hub
from hub.topology import HUB_DOMAIN
from hub.userfiles import json_argument, parse_json, read_text, write_output
from hub.userinput import parse_until


def _fields(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


Action = Callable[[Directory, Hub], Coroutine[Any, Any, Any]]


async def _with_directory(ctx: click.Context, action: Action, *, catch_up: bool = True) -> Any:
    async with open_hub(settings(ctx)) as hub:
        directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
        if catch_up:
            await directory.catch_up()
        return await action(directory, hub)


@click.group("dir")
def dir_group() -> None:
    """Shared resource directory: publish, find, request, grant, share and export resources."""


@dir_group.command("template")
def template_cmd() -> None:
    """Print a complete entry file (every key; docs/directory.md explains each)."""
    click.echo(dumps(template()))


def _publish_command(name: str, update: bool, doc: str) -> click.Command:
    @click.option("--as", "as_id", required=True, help="The provider (signs the entry).")
    @click.option("--file", "path", required=True, type=click.Path(dir_okay=False))
    @json_option
    @click.pass_context
    @async_command
    async def command(ctx: click.Context, as_id: str, path: str, as_json: bool) -> None:
        data = parse_json(read_text(path, "the entry file"), f"the entry file {path}")

        async def act(d: Directory, hub: Hub) -> Any:
            return await d.publish(as_id, data, update=update)

        result = await _with_directory(ctx, act)
        emit(
            as_json,
            result,
            lambda: console.print(
                f"{result['action']} {result['code']} version {result['version']} "
                f"(event {result['event_id']}, seq {result['seq']})"
                + (f"; queued: {result['message']}" if result.get("state") == "queued" else "")
            ),
        )

    command.__doc__ = doc
    return click.command(name)(command)


dir_group.add_command(_publish_command("publish", False, "Publish a new entry from a JSON file."))
dir_group.add_command(_publish_command("update", True, "Publish a new version of an entry."))


@dir_group.command("withdraw")
@click.argument("code")
@click.option("--as", "as_id", required=True, help="The provider.")
@click.option("--reason", required=True, help="Why the entry is withdrawn.")
@json_option
@click.pass_context
@async_command
async def withdraw_cmd(
    ctx: click.Context, code: str, as_id: str, reason: str, as_json: bool
) -> None:
    """Withdraw an entry; its pending requests are closed and its grants end."""

    async def act(d: Directory, hub: Hub) -> Any:
        return await d.withdraw(as_id, code, reason)

    result = await _with_directory(ctx, act)
    emit(as_json, result, lambda: console.print(f"withdrew {code}"))


@dir_group.command("search")
@click.argument("query")
@click.option("--provider", default=None, help="Only this provider's resources.")
@click.option("--unit", default=None, help="Only resources of this unit (akto, pref, ...).")
@click.option("--class-code", default=None, help="Only this classification code.")
@click.option("--category", type=click.Choice(["base", "theme", "department"]), default=None)
@click.option(
    "--sharing", type=click.Choice(["unconditional", "conditional", "not_shared"]), default=None
)
@click.option("--open", "open_only", is_flag=True, help="Only resources open to the public.")
@click.option("--limit", default=20, show_default=True)
@click.option("--offline", is_flag=True, help="Search the KV copy (a county's mirror).")
@click.option(
    "--as",
    "as_id",
    default=None,
    help="With --offline: search the copy on this participant's own node (its county's "
    "mirror, readable while the uplink is down).",
)
@json_option
@click.pass_context
@async_command
async def search_cmd(
    ctx: click.Context,
    query: str,
    provider: str | None,
    unit: str | None,
    class_code: str | None,
    category: str | None,
    sharing: str | None,
    open_only: bool,
    limit: int,
    offline: bool,
    as_id: str | None,
    as_json: bool,
) -> None:
    """Search titles, abstracts, keywords and data items, in Chinese or English."""
    if as_id is not None and not offline:
        raise InputError("--as chooses whose node's copy --offline reads; add --offline")
    filters = SearchFilters(
        provider=provider,
        unit=unit,
        class_code=class_code,
        category=category,
        sharing_type=sharing,
        open_only=open_only,
    )
    async with open_hub(settings(ctx)) as hub:
        if offline:
            nc, domain = hub.nc, None
            link = await hub.link(as_id) if as_id is not None else None
            if link is not None:
                # A county node holds its own mirror; the hub's and the region's nodes read
                # the hub's bucket.
                nc, domain = link.nc, (None if link.node.domain else HUB_DOMAIN)
            docs = await kv_documents(nc, domain=domain)
            result = search_documents(docs, query, filters, limit=limit)
        else:
            await Directory(
                hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer
            ).catch_up()
            result = await search(hub.pool, query, filters, limit=limit)

    def human() -> None:
        table = Table("code", "title", "provider", "sharing", "score")
        for hit in result.results:
            table.add_row(
                hit["code"], hit["title"], hit["provider"], hit["sharing_type"], str(hit["score"])
            )
        console.print(table)
        console.print(
            f"{result.total} match(es) for {query!r} ({result.mode}, {result.source}, "
            f"{result.took_ms} ms)"
        )
        for facet, counts in result.facets.items():
            if counts:
                shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
                console.print(f"  {facet}: {shown}")

    emit(as_json, result.to_json(), human)


@dir_group.command("show")
@click.argument("code")
@json_option
@click.pass_context
@async_command
async def show_cmd(ctx: click.Context, code: str, as_json: bool) -> None:
    """Show one entry: every field, its status, versions and request counts."""

    async def act(d: Directory, hub: Hub) -> Any:
        return await entry_document(hub.pool, code)

    doc = await _with_directory(ctx, act)

    def human() -> None:
        entry = doc["entry"]
        console.print(
            line((code, "bold"), f" {entry['title']} ({doc['status']}, v{doc['version']})")
        )
        console.print(f"provider {doc['provider']}; sharing {entry['sharing']['type']}")
        console.print(entry["abstract"])
        items = ", ".join(f"{i['name']} ({i['label_zh']})" for i in entry["data_items"])
        console.print(f"data items: {items}")

    emit(as_json, doc, human)


@dir_group.command("request")
@click.argument("code")
@click.option("--as", "as_id", required=True, help="The requesting department.")
@click.option("--purpose", required=True, help="What the data is for (用途, recorded).")
@click.option("--fields", default=None, help="Comma-separated data items (default: all).")
@click.option("--until", default=None, help="Access wanted until (date or RFC 3339 time).")
@json_option
@click.pass_context
@async_command
async def request_cmd(
    ctx: click.Context,
    code: str,
    as_id: str,
    purpose: str,
    fields: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Request a resource (a not-shared one opens a coordination case with the operator)."""
    wanted, limit = _fields(fields), parse_until(until)

    async def act(d: Directory, hub: Hub) -> Any:
        return await d.request(as_id, code, purpose, fields=wanted, until=limit)

    result = await _with_directory(ctx, act)

    def human() -> None:
        if result["kind"] == "coordination":
            console.print(result["message"] + f" (case {result['case_id']})")
        else:
            console.print(f"request {result['request_id']} for {code}: {result['state']}")

    emit(as_json, result, human)


@dir_group.command("requests")
@click.option("--as", "as_id", required=True, help="Participant whose requests to list.")
@click.option(
    "--role", type=click.Choice(["any", "requester", "provider"]), default="any", show_default=True
)
@click.option("--state", type=click.Choice(REQUEST_STATES), default=None)
@click.option("--code", default=None, help="Only requests for this resource.")
@json_option
@click.pass_context
@async_command
async def requests_cmd(
    ctx: click.Context, as_id: str, role: str, state: str | None, code: str | None, as_json: bool
) -> None:
    """List requests made or answered by a participant, with their states."""

    async def act(d: Directory, hub: Hub) -> Any:
        # The hub operator (共享主管部门) oversees every request, not only its own.
        who = "operator" if as_id == hub.scenario.operator and role == "any" else role
        return await list_requests(hub.pool, as_id, role=who, state=state, code=code)

    rows = await _with_directory(ctx, act)

    def human() -> None:
        table = Table("request", "code", "requester", "provider", "state", "deadline")
        for r in rows:
            deadline = r["deadline"].date().isoformat() if r["deadline"] else ""
            table.add_row(
                r["request_id"],
                r["code"],
                r["requester"],
                r["provider"],
                r["state"],
                deadline,
            )
        console.print(table)

    emit(as_json, {"participant": as_id, "requests": rows}, human)


def _answer_command(name: str, doc: str, action: str) -> click.Command:
    @click.argument("request_id")
    @click.option("--as", "as_id", required=True, help="The provider.")
    @json_option
    @click.pass_context
    @async_command
    async def command(
        ctx: click.Context, request_id: str, as_id: str, as_json: bool, **opts: Any
    ) -> None:
        async def act(d: Directory, hub: Hub) -> Any:
            if action == "grant":
                return await d.grant(
                    as_id,
                    request_id,
                    fields=_fields(opts["fields"]),
                    until=parse_until(opts["until"]),
                )
            if action == "deny":
                return await d.deny(as_id, request_id, opts["reason"])
            return await d.revoke(as_id, request_id, opts["reason"])

        result = await _with_directory(ctx, act)
        emit(as_json, result, lambda: console.print(f"request {request_id}: {result['state']}"))

    command.__doc__ = doc
    if action == "grant":
        command = click.option("--fields", default=None, help="Narrow to these items.")(command)
        command = click.option("--until", default=None, help="Grant ends (date or time).")(command)
    else:
        command = click.option("--reason", required=True, help="Why (required).")(command)
    return click.command(name)(command)


dir_group.add_command(_answer_command("grant", "Grant a pending request (provider).", "grant"))
dir_group.add_command(_answer_command("deny", "Refuse a pending request, with a reason.", "deny"))
dir_group.add_command(
    _answer_command("revoke", "End a grant before its term (provider).", "revoke")
)


@dir_group.command("deadlines")
@json_option
@click.pass_context
@async_command
async def deadlines_cmd(ctx: click.Context, as_json: bool) -> None:
    """As the hub operator: remind answers due soon, escalate overdue ones (once each)."""
    result = await _with_directory(ctx, lambda d, _hub: d.sweep())
    emit(
        as_json,
        result,
        lambda: console.print(
            f"reminded {len(result['reminded'])}, escalated {len(result['escalated'])}"
        ),
    )


@dir_group.command("agent-token")
@click.option("--as", "as_id", required=True, help="The provider whose system may share.")
@click.option("--rotate", is_flag=True, help="Replace the token; the old one stops working.")
@json_option
@click.pass_context
def agent_token_cmd(ctx: click.Context, as_id: str, rotate: bool, as_json: bool) -> None:
    """Create the token the provider's system sends to `POST /directory/share/{code}`.

    The token is written to a file only this home's owner can read; it is never printed.
    """
    path, written = agenttoken.issue(settings(ctx).home, as_id, rotate=rotate)
    result = {"participant": as_id, "path": str(path), "written": written}
    if written:
        said = "rotated; the old token no longer works" if rotate else "created"
    else:
        said = "already exists (--rotate replaces it)"

    def human() -> None:
        console.print(line(f"the sharing-agent token of {as_id} {said}: ", str(path)))
        console.print("its system sends the file's contents as `Authorization: Bearer <token>`")

    emit(as_json, result, human)


@dir_group.command("share")
@click.argument("code")
@click.option("--as", "as_id", required=True, help="The provider.")
@click.option("--data", required=True, help="A record or a list of records (JSON or @file).")
@json_option
@click.pass_context
@async_command
async def share_cmd(ctx: click.Context, code: str, as_id: str, data: str, as_json: bool) -> None:
    """Seal records to every valid grantee (the provider's sharing agent)."""
    value = json_argument(data, "--data")
    records = value if isinstance(value, list) else [value]
    if not all(isinstance(r, dict) for r in records):
        raise InputError("--data must be a JSON object or a list of objects")

    async def act(d: Directory, hub: Hub) -> Any:
        return await share(hub.pool, hub.trust, hub.signer, as_id, code, records)

    result = await _with_directory(ctx, act)
    emit(
        as_json,
        result,
        lambda: console.print(
            f"sealed {result['records']} record(s) to {len(result['grantees'])} grantee(s): "
            f"{', '.join(result['grantees']) or 'none holds a valid grant'}"
        ),
    )


@dir_group.command("receive")
@click.argument("code")
@click.option("--as", "as_id", required=True, help="The grantee.")
@json_option
@click.pass_context
@async_command
async def receive_cmd(ctx: click.Context, code: str, as_id: str, as_json: bool) -> None:
    """Decrypt the records of a resource sealed to you (refused without a valid grant)."""

    async def act(d: Directory, hub: Hub) -> Any:
        return await receive(hub.pool, hub.bus, hub.signer, as_id, code)

    result = await _with_directory(ctx, act)

    def human() -> None:
        for rec in result["records"]:
            console.print(dumps(rec["data"], indent=None))
        console.print(f"{len(result['records'])} record(s) under grant {result['request_id']}")

    emit(as_json, result, human)


@dir_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["dcat"]), default="dcat", show_default=True)
@click.option("--out", default=None, help="Write the catalog to FILE (default: stdout).")
# The option's first name, kept working for scripts written before it matched `--out` elsewhere.
@click.option("--output", "output_alias", default=None, hidden=True)
@click.option("--base-url", default=None, help="IRI base of the catalog's resources.")
@click.pass_context
@async_command
async def export_cmd(
    ctx: click.Context, fmt: str, out: str | None, output_alias: str | None, base_url: str | None
) -> None:
    """Write the DCAT 3 JSON-LD catalog of entries open to the public."""
    if out is not None and output_alias is not None:
        raise click.UsageError("give --out once (--output is its old name)")
    output = out or output_alias

    async def act(d: Directory, hub: Hub) -> Any:
        return await export_catalog(
            hub.pool,
            hub.participants,
            base=(base_url or default_base(hub.scenario.name)).rstrip("/"),
            title=f"{hub.scenario.hub_name} 开放数据目录",
            publisher=hub.scenario.operator,
        )

    catalog = await _with_directory(ctx, act)
    text = json.dumps(catalog, ensure_ascii=False, indent=2)
    if output is None:
        click.echo(text)
        return
    write_output(output, text + "\n")
    click.echo(dumps({"output": output, "format": fmt, "datasets": len(catalog["dcat:dataset"])}))


COMMANDS = [dir_group]
