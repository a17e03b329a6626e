"""`govhub publish` and `govhub tail`: sign and send one event; read and verify events."""

from __future__ import annotations

import hashlib
from typing import Any

import click
from rich.table import Table

from hub import quarantine
from hub.cli.common import async_command, emit, json_option, settings
from hub.consumer import Delivery
from hub.display import clip, console, line
from hub.errors import InputError
from hub.jsonout import dumps, to_jsonable
from hub.runtime import Hub, open_hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from hub.userfiles import json_argument


def parse_data(text: str) -> dict[str, Any]:
    """`--data` as a JSON object, given inline or as `@path`."""
    value = json_argument(text, "--data")
    if not isinstance(value, dict):
        raise InputError("--data must be a JSON object with the schema's fields")
    return value


@click.command()
@click.option(
    "--as", "as_id", required=True, help="Participant id to act as (signs with its own key)."
)
@click.option("--schema", "schema_name", required=True, help="Full name of the payload schema.")
@click.option("--data", required=True, help="The payload as a JSON object, or @file.json.")
@click.option("--subject", default=None, help="Subject (default evt.<unit>.<dept>.<event name>).")
@json_option
@click.pass_context
@async_command
async def publish(
    ctx: click.Context, as_id: str, schema_name: str, data: str, subject: str | None, as_json: bool
) -> None:
    """Sign and publish one event."""
    record = parse_data(data)
    async with open_hub(settings(ctx)) as hub:
        env, ack = await hub.publish(as_id, schema_name, record, subject=subject)
        schema = hub.schemas.by_name(schema_name)
    result = {
        "event_id": env.event_id,
        "subject": env.subject,
        "stream": ack.stream,
        "seq": ack.seq,
        "duplicate": ack.duplicate,
        "type": schema.name,
        "fingerprint": schema.fingerprint_hex,
        "source": as_id,
    }
    emit(
        as_json,
        result,
        lambda: console.print(
            f"published {result['event_id']} on {result['subject']} "
            f"({result['stream']} #{result['seq']})"
        ),
    )


def describe(delivery: Delivery) -> dict[str, Any]:
    """One delivery as tail shows it (the payload only when it verified)."""
    env = delivery.envelope
    row: dict[str, Any] = {
        "stream": delivery.stream,
        "seq": delivery.seq,
        "subject": env.subject,
        "event_id": env.event_id,
        "source": env.source,
        "type": env.type_name,
        "time": env.time_text,
        "verified": delivery.event is not None,
    }
    if delivery.event is not None:
        row["data"] = to_jsonable(delivery.event.record)
    elif delivery.rejection is not None:
        row["reason"] = delivery.rejection.reason.value
        row["detail"] = str(delivery.rejection)
    return row


def _durable_name(as_id: str, subject: str | None) -> str:
    digest = hashlib.sha256((subject or ">").encode()).hexdigest()[:8]
    return f"tail_{as_id.replace('.', '_')}_{digest}"


async def read_events(
    hub: Hub,
    *,
    subject: str | None,
    limit: int,
    as_id: str | None,
    quarantine: bool,
    follow: bool = False,
) -> list[dict[str, Any]]:
    """Read up to `limit` events, verifying each; rejected ones are quarantined and reported."""
    stream = QUARANTINE_STREAM if quarantine else HUB_STREAM
    durable = _durable_name(as_id, subject) if as_id and not quarantine else None
    # In a federation `--as` reads over the participant's own link, under its permissions.
    via = await hub.link(as_id) if as_id else None
    consumer = hub.consumer(
        stream, durable, [subject] if subject else [], quarantine=not quarantine, via=via
    )
    rows: list[dict[str, Any]] = []
    try:
        while len(rows) < limit:
            batch = await consumer.fetch(
                min(256, limit - len(rows)), timeout=1.0 if follow else 0.5
            )
            for delivery in batch:
                if quarantine:
                    rows.append(_quarantine_row(delivery))
                    await delivery.ack()
                    continue
                if delivery.rejection is not None:
                    await consumer.quarantine(
                        delivery, delivery.rejection.reason, str(delivery.rejection)
                    )
                else:
                    await delivery.ack()
                rows.append(describe(delivery))
                if follow:
                    click.echo(dumps(rows[-1], indent=None))
            if not batch and not follow:
                break
    finally:
        await consumer.stop()
    return rows


def _quarantine_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "stream": delivery.stream,
        "seq": delivery.seq,
        **quarantine.fields(delivery.envelope.headers),
        "verified": False,
    }


def events_table(rows: list[dict[str, Any]], title: str) -> Table:
    """A table of tail rows: verified payload summary or the rejection reason."""
    table = Table("#", "source", "type", "subject", "verdict", title=title, title_justify="left")
    for row in rows:
        if row.get("verified"):
            summary = ", ".join(
                f"{k}={v}" for k, v in (row.get("data") or {}).items() if v not in (None, [], "")
            )
            verdict = line(("verified", "green"), " ", clip(summary, 60))
        else:
            verdict = line((row.get("reason") or "rejected", "red"), " ", row.get("detail", ""))
        table.add_row(
            str(row["seq"]),
            row["source"] or "?",
            (row["type"] or "?").rsplit(".", 1)[-1],
            row["subject"],
            verdict,
        )
    return table


@click.command()
@click.option("--subject", default=None, help="Only events on this subject (wildcards allowed).")
@click.option("--limit", default=50, show_default=True, help="Stop after this many events.")
@click.option(
    "--as",
    "as_id",
    default=None,
    help="Read as this participant with a durable cursor that resumes.",
)
@click.option(
    "--quarantine", is_flag=True, help="Read the quarantine stream with each rejection reason."
)
@click.option(
    "--follow", is_flag=True, help="Keep waiting for new events (JSON lines with --json)."
)
@json_option
@click.pass_context
@async_command
async def tail(
    ctx: click.Context,
    subject: str | None,
    limit: int,
    as_id: str | None,
    quarantine: bool,
    follow: bool,
    as_json: bool,
) -> None:
    """Read and verify events."""
    async with open_hub(settings(ctx)) as hub:
        rows = await read_events(
            hub,
            subject=subject,
            limit=limit,
            as_id=as_id,
            quarantine=quarantine,
            follow=follow and as_json,
        )
    if follow and as_json:
        return
    title = "quarantine" if quarantine else f"events{' on ' + subject if subject else ''}"
    emit(
        as_json,
        {"events": rows, "count": len(rows)},
        lambda: console.print(events_table(rows, title)),
    )


COMMANDS = [publish, tail]
