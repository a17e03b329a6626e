"""`govhub audit ...`: what auditors ask the log, and the proofs that make the answers checkable."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn
from rich.table import Table

from hub import merkle
from hub.audit import bundle, fsck, reader
from hub.audit.logkeys import MAX_OVERLAP
from hub.audit.service import AuditLog
from hub.audit.verify import BundleError, Trust, load_trust
from hub.cli.common import async_command, emit, json_option, settings
from hub.display import console, line, progress, styled
from hub.errors import ConfigError, TamperEvidence
from hub.jsonout import to_jsonable
from hub.runtime import Hub, open_hub
from hub.userfiles import output_file, parse_json, read_text, write_output
from hub.userinput import parse_day_or_time, resolve_type


@contextlib.asynccontextmanager
async def _opened(
    ctx: click.Context, *, create_keys: bool = False
) -> AsyncIterator[tuple[Hub, AuditLog]]:
    async with open_hub(settings(ctx)) as hub:
        yield (
            hub,
            AuditLog(
                hub.settings,
                hub.scenario,
                hub.pool,
                hub.pg_dsn,
                hub.bus,
                create_keys=create_keys,
                announce=False,
            ),
        )


async def _type(hub: Hub, given: str | None) -> str | None:
    if given is None:
        return None
    return resolve_type(given, [*await reader.types(hub.pool), *hub.schemas.names()])


def _checkpoint_json(cp: reader.StoredCheckpoint) -> dict[str, Any]:
    return {
        "size": cp.size,
        "root": base64.b64encode(cp.root).decode(),
        "note": cp.note,
        "cosigners": list(cp.cosigners),
        "signed_at": cp.signed_at,
        "published_at": cp.published_at,
    }


@click.group()
def audit() -> None:
    """The verifiable audit log: checkpoints, search, proofs, verification, export."""


@audit.command()
@json_option
@click.pass_context
@async_command
async def pubkey(ctx: click.Context, as_json: bool) -> None:
    """Print the log's note verifier key(s) (two during a key rotation)."""
    async with _opened(ctx) as (_hub, log):
        current = [s.verifier.vkey() for s in log.ring.signers()]
        data = {"origin": log.ring.origin, "vkeys": current, **log.trust()}
    emit(as_json, data, lambda: click.echo("\n".join(current)))


@audit.command()
@click.option("--fresh", is_flag=True, help="Sign a checkpoint of the log now (operator only).")
@json_option
@click.pass_context
@async_command
async def checkpoint(ctx: click.Context, fresh: bool, as_json: bool) -> None:
    """Print the latest published checkpoint with its witness cosignatures."""
    async with _opened(ctx) as (hub, log):
        cp = await log.checkpointer.sign() if fresh else await bundle.published(hub.pool)
    emit(as_json, _checkpoint_json(cp), lambda: click.echo(cp.note, nl=False))


@audit.command()
@click.option("--participant", default=None, help="Sender participant id (ce-source).")
@click.option(
    "--type", "type_name", default=None, help="Event type: full name, or short name if unique."
)
@click.option("--since", default=None, help="Event time from (RFC 3339 or YYYY-MM-DD, UTC).")
@click.option("--until", default=None, help="Event time before (RFC 3339 or YYYY-MM-DD, UTC).")
@click.option("--limit", default=1000, show_default=True, help="Return at most this many.")
@click.option("--with-proofs", is_flag=True, help="Add leaf bytes and inclusion proofs.")
@json_option
@click.pass_context
@async_command
async def search(
    ctx: click.Context,
    participant: str | None,
    type_name: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    with_proofs: bool,
    as_json: bool,
) -> None:
    """Find log entries by sender, type and event time, with their leaf indexes."""
    async with _opened(ctx) as (hub, _log):
        pool = hub.pool
        cp = await bundle.published(pool) if with_proofs else None
        rows = await reader.search(
            pool,
            participant=participant,
            type_name=await _type(hub, type_name),
            since=parse_day_or_time(since, "--since"),
            until=parse_day_or_time(until, "--until"),
            below=cp.size if cp else None,
            limit=limit,
        )
        tiles = reader.TileReader(pool)
        entries = []
        for row in rows:
            entry: dict[str, Any] = {
                "leaf_index": row.index,
                "event_id": row.event_id,
                "source": row.source,
                "type": row.type,
                "subject": row.subject,
                "event_time": row.event_time,
                "received_at": row.received_at,
                "verdict": row.verdict,
                "reason": row.reason,
            }
            if cp is not None:
                entry["leaf"] = base64.b64encode(row.leaf).decode()
                entry["leaf_hash"] = base64.b64encode(merkle.leaf_hash(row.leaf)).decode()
                entry["inclusion"] = reader.b64list(await tiles.inclusion(row.index, cp.size))
            entries.append(entry)
        data: dict[str, Any] = {"count": len(entries), "entries": entries}
        if cp is not None:
            data.update(tree_size=cp.size, checkpoint=cp.note)

    def human() -> None:
        table = Table("index", "event time", "source", "type", "verdict", "event id")
        for e in entries:
            verdict = (
                styled(e["verdict"]) if e["verdict"] == "accepted" else styled(e["reason"], "red")
            )
            table.add_row(
                str(e["leaf_index"]),
                to_jsonable(e["event_time"])[:19],
                e["source"],
                e["type"].rsplit(".", 1)[-1],
                verdict,
                e["event_id"],
            )
        console.print(table)
        console.print(f"{len(entries)} entries")

    emit(as_json, data, human)


@audit.command()
@click.argument("event_id")
@json_option
@click.pass_context
@async_command
async def proof(ctx: click.Context, event_id: str, as_json: bool) -> None:
    """Inclusion proof of an event against the latest published checkpoint."""
    async with _opened(ctx) as (hub, _log):
        data = await bundle.proof_for_event(hub.pool, event_id)

    def human() -> None:
        console.print(f"event {event_id} is leaf {data['leaf_index']} of {data['tree_size']}")
        console.print(f"leaf hash  {data['leaf_hash']}")
        for i, h in enumerate(data["inclusion"]):
            console.print(f"proof[{i:2d}] {h}")
        click.echo(data["checkpoint"], nl=False)

    emit(as_json, data, human)


@audit.command()
@click.argument("old", type=int)
@click.argument("new", type=int)
@json_option
@click.pass_context
@async_command
async def consistency(ctx: click.Context, old: int, new: int, as_json: bool) -> None:
    """Consistency proof between two tree sizes, with both roots."""
    async with _opened(ctx) as (hub, _log):
        data = await bundle.consistency(hub.pool, old, new)

    def human() -> None:
        console.print(f"size {old} root {data['old_root']}")
        console.print(f"size {new} root {data['new_root']}")
        for i, h in enumerate(data["proof"]):
            console.print(f"proof[{i:2d}] {h}")

    emit(as_json, data, human)


def _trusted_keys(log: AuditLog, trust_path: str | None) -> Trust:
    if trust_path is None:
        return log.verifier_trust()
    text = read_text(trust_path, "the trust file", error=ConfigError)
    data = parse_json(text, f"the trust file {trust_path}", error=ConfigError)
    try:
        return load_trust(data, "trust file")
    except (ValueError, BundleError) as exc:
        raise ConfigError(f"cannot use trust file {trust_path}: {exc}") from exc


@audit.command()
@click.option("--full", is_flag=True, help="Replay every entry: leaves, tiles, sender signatures.")
@click.option("--trust", "trust_path", default=None, help="Trust file with the log/witness keys.")
@json_option
@click.pass_context
@async_command
async def verify(ctx: click.Context, full: bool, trust_path: str | None, as_json: bool) -> None:
    """Check checkpoints and their consistency; --full also recomputes the whole tree."""
    async with _opened(ctx) as (hub, log):
        trust = _trusted_keys(log, trust_path)
        size = await reader.tree_size(hub.pool)
        columns = ("replaying", BarColumn(), MofNCompleteColumn())
        with progress(*columns, transient=True, disable=as_json) as bar:
            task = bar.add_task("leaves", total=size)
            try:
                report = await fsck.verify_log(
                    hub.pool,
                    trust,
                    log.config.origin,
                    full=full,
                    events=hub.verifier,
                    progress=lambda n: bar.update(task, completed=n),
                )
            except TamperEvidence as exc:
                if as_json:
                    click.echo(json.dumps({"ok": False, "error": str(exc), "index": exc.index}))
                raise
    data = report.to_json()

    def human() -> None:
        console.print(
            line(("OK", "green"), f": {report.checkpoints} checkpoints signed and consistent")
        )
        console.print(f"  tree size {report.tree_size}, latest checkpoint {report.latest_size}")
        if full:
            console.print(
                f"  replayed {report.leaves_checked} leaves: {report.accepted_verified} accepted "
                f"events re-verified, {report.quarantined} quarantined; tiles and roots match"
            )
        for gap in report.gaps:
            console.print(
                line(
                    "  ",
                    ("missing", "yellow"),
                    f" {gap['stream']} sequences {gap['first_seq']}.."
                    f"{gap['last_seq']} (detected after leaf {gap['after_leaf']})",
                )
            )

    emit(as_json, data, human)


@audit.command()
@click.option("--out", default=None, help="Write the bundle to FILE (default: stdout).")
@click.option("--start", default=0, show_default=True, help="First leaf index.")
@click.option("--end", default=None, type=int, help="One past the last leaf index.")
@click.option("--participant", default=None, help="Only events from this sender.")
@click.option("--type", "type_name", default=None, help="Only events of this type (as search).")
@click.option("--since", default=None, help="Only events from this time.")
@click.option("--until", default=None, help="Only events before this time.")
@json_option
@click.pass_context
@async_command
async def export(
    ctx: click.Context,
    out: str | None,
    start: int,
    end: int | None,
    participant: str | None,
    type_name: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Write an evidence bundle that `python -m hub.audit.verify` checks offline.

    With --out the bundle appears complete or not at all (written beside it, then renamed);
    a device or pipe named by --out is written in place. A folder that does not exist, a
    folder given as FILE, or a full disk is refused with one sentence.
    """
    # A folder that does not exist is refused before the log is read, not after.
    writing = output_file(out) if out is not None else contextlib.nullcontext(sys.stdout)
    with writing as fp:
        async with _opened(ctx) as (hub, log):
            options: dict[str, Any] = {
                "start": start,
                "end": end,
                "participant": participant,
                "type_name": await _type(hub, type_name),
                "since": parse_day_or_time(since, "--since"),
                "until": parse_day_or_time(until, "--until"),
            }
            counts = await bundle.write_bundle(
                hub.pool, log.trust(), log.config.origin, fp, **options
            )
    if out is None:
        return
    data = {"out": out, **counts}
    emit(
        as_json,
        data,
        lambda: console.print(
            f"wrote {out}: {counts['entries']} entries proven against tree size "
            f"{counts['tree_size']}, {counts['checkpoints']} checkpoints"
        ),
    )


@audit.command()
@click.option("--out", default=None, help="Write the trust file to FILE (default: stdout).")
@json_option
@click.pass_context
@async_command
async def trust(ctx: click.Context, out: str | None, as_json: bool) -> None:
    """Print a trust file: log keys with windows, witness keys and policy, sender keys.

    Without --out the trust file itself is printed (it is JSON, with or without --json); with
    --out it is written there and --json prints what was written.
    """
    async with _opened(ctx) as (hub, log):
        data = {**log.trust(), "participant_keys": await bundle.participant_keys(hub.pool)}
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        click.echo(text)
        return
    write_output(out, text + "\n")
    witnesses = data["witnesses"]
    summary = {
        "out": out,
        "log_keys": len(data["log_keys"]),
        "witness_keys": len(witnesses["keys"]),
        "witness_k": witnesses["k"],
        "participant_keys": len(data["participant_keys"]),
    }
    emit(
        as_json,
        summary,
        lambda: console.print(
            f"wrote {out}: {summary['log_keys']} log key(s), {summary['witness_keys']} witness "
            f"key(s) ({summary['witness_k']} must cosign), {summary['participant_keys']} "
            "participant key(s)"
        ),
    )


@audit.command("rotate-key")
@click.option("--overlap", default=24.0, show_default=True, help="Hours both keys sign.")
@json_option
@click.pass_context
@async_command
async def rotate_key(ctx: click.Context, overlap: float, as_json: bool) -> None:
    """Add a new log key; the current one keeps signing alongside it for the overlap."""
    # Checked before anything opens: a negative overlap would close the old key's window
    # before it began, and every checkpoint it signed would then fail offline verification.
    limit = MAX_OVERLAP / timedelta(hours=1)
    if not (math.isfinite(overlap) and 0 <= overlap <= limit):
        raise ConfigError(
            f"--overlap must be a number of hours from 0 to {limit:g}: both keys sign during "
            "it, so it cannot be negative"
        )
    async with _opened(ctx) as (_hub, log):
        new = log.ring.rotate(timedelta(hours=overlap))
        data = {"new": new.trust_entry(), "log_keys": log.ring.trust_entries()}
    emit(as_json, data, lambda: console.print(f"new log key {new.signer.verifier.vkey()}"))


COMMANDS = [audit]
