"""`govhub doc ...`: signed document exchange (电子公文交换) from the command line.

Every sub-command except `send` first lets the exchange tracker catch up with the bus, so
states are current even when no `govhub serve` runs. Without a recipient agent, `doc fetch`
(or `doc inbox --deliver`) by the recipient is what stores the document and signs the
delivery receipt (docs/exchange.md, "Who signs the delivery receipt").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn
from rich.table import Table
from rich.text import Text

from hub.cli.common import async_command, emit, json_option, settings
from hub.crypto import SUITES, default_suite
from hub.display import console, line, progress
from hub.errors import InputError
from hub.exchange import receipts
from hub.exchange.agent import RecipientAgent
from hub.exchange.fetch import Fetcher, resolve_out
from hub.exchange.ledger import document_status, inbox, ledger, verified_document
from hub.exchange.model import Classification, Urgency
from hub.exchange.send import Sender, SendRequest, check_request
from hub.exchange.tracker import ExchangeTracker
from hub.runtime import Hub, open_hub
from hub.userinput import parse_deadline

STATE_STYLE = {
    "sent": "yellow",
    "delivered": "cyan",
    "accepted": "green",
    "rejected": "red",
    "expired": "magenta",
    "recalled": "dim",
}


def state_text(state: str, reason: str | None = None) -> Text:
    """A recipient's state in its colour, with the reason it was rejected or recalled."""
    return line((state, STATE_STYLE.get(state, "")), f": {reason}" if reason else "")


def _progress(as_json: bool) -> Progress | None:
    if as_json:
        return None
    return progress("{task.description}", BarColumn(), TaskProgressColumn(), transient=True)


async def _caught_up(hub: Hub) -> None:
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    try:
        await tracker.catch_up()
    finally:
        await tracker.stop()


@click.group("doc")
def doc() -> None:
    """Signed document exchange: send, inbox, fetch, status, receipt, recall, ledger."""


@doc.command("send")
@click.option("--as", "as_id", required=True, help="Sending participant (signs with its key).")
@click.option("--to", "to", required=True, help="Recipient ids, comma-separated.")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The document to send.",
)
@click.option("--title", required=True, help="The document's title (标题).")
@click.option("--doc-number", default="", help="Official document number (发文字号).")
@click.option(
    "--urgency",
    type=click.Choice([u.value for u in Urgency]),
    default="normal",
    show_default=True,
)
@click.option(
    "--classification",
    type=click.Choice([c.value for c in Classification]),
    default="internal",
    show_default=True,
    help="confidential encrypts end to end to the recipients.",
)
@click.option("--deadline", default=None, help="Answer deadline: RFC 3339 time or 3d / 36h.")
@click.option(
    "--suite",
    type=click.Choice(SUITES),
    default=None,
    help="Encryption suite for confidential documents: x25519 or mlkem768-x25519 (HPKE; the "
    "hybrid is post-quantum), sm2 (SM2 key wrap, SM4-GCM). Default: sm2 on a gm hub, else x25519.",
)
@click.option("--media-type", default=None, help="Media type (guessed from the name).")
@json_option
@click.pass_context
@async_command
async def send_cmd(
    ctx: click.Context,
    as_id: str,
    to: str,
    file: Path,
    title: str,
    doc_number: str,
    urgency: str,
    classification: str,
    deadline: str | None,
    suite: str | None,
    media_type: str | None,
    as_json: bool,
) -> None:
    """Store a document in the sender's store and announce it with a signed manifest."""
    recipients = tuple(r.strip() for r in to.split(",") if r.strip())
    request = SendRequest(
        sender=as_id,
        recipients=recipients,
        path=file,
        title=title,
        doc_number=doc_number,
        urgency=Urgency(urgency),
        classification=Classification(classification),
        deadline=parse_deadline(deadline),
        media_type=media_type,
        suite=suite or default_suite(settings(ctx).suite),
    )
    check_request(request)  # before any server starts or the file name is shown
    bar = _progress(as_json)
    async with open_hub(settings(ctx)) as hub:
        if bar is None:
            result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request)
        else:
            with bar:
                task = bar.add_task(f"sending {file.name}", total=None)
                result = await Sender(
                    hub.settings,
                    hub.trust,
                    hub.bus,
                    hub.signer,
                    on_progress=lambda _s, done, total: bar.update(
                        task, completed=done, total=total
                    ),
                ).send(request)
    data = {
        "doc_id": result.doc_id,
        "manifest_event_id": result.manifest_event_id,
        "subject": result.subject,
        "seq": result.stream_seq,
        "size": result.size,
        "sha256": result.sha256,
        "chunks": result.chunk_count,
        "chunks_sent": result.chunks_sent,
        "chunks_reused": result.chunks_reused,
        "resumed": result.resumed,
        "seconds": result.seconds,
        "recipients": list(recipients),
        "classification": classification,
    }
    emit(
        as_json,
        data,
        lambda: console.print(
            f"sent {result.doc_id} to {len(recipients)} recipient(s): {result.size:,} bytes in "
            f"{result.chunk_count} chunk(s)"
            + (f", resumed ({result.chunks_reused} already stored)" if result.resumed else "")
        ),
    )


@doc.command("inbox")
@click.option("--as", "as_id", required=True, help="Recipient whose inbox to list.")
@click.option(
    "--deliver",
    is_flag=True,
    help="Also fetch every undelivered document into the home's inbox folder and sign "
    "delivery receipts (what the recipient agent does in `serve`).",
)
@click.option("--limit", default=200, show_default=True)
@json_option
@click.pass_context
@async_command
async def inbox_cmd(
    ctx: click.Context, as_id: str, deliver: bool, limit: int, as_json: bool
) -> None:
    """Documents addressed to a participant, with its state for each."""
    async with open_hub(settings(ctx)) as hub:
        delivered = []
        if deliver:
            delivered = await RecipientAgent(
                hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, [as_id]
            ).deliver_pending()
        await _caught_up(hub)
        rows = await inbox(hub.pool, hub.trust, as_id, limit=limit)
    data = {
        "participant": as_id,
        "documents": rows,
        "count": len(rows),
        "delivered_now": [{"doc_id": d.doc_id, "path": str(d.path)} for d in delivered],
    }

    def human() -> None:
        table = Table(
            "doc id", "number", "title", "from", "class", "state", title=f"inbox of {as_id}"
        )
        for row in rows:
            table.add_row(
                row["doc_id"],
                row["doc_number"],
                row["title"],
                row["sender"],
                row["classification"],
                state_text(row["state"], row["reason"]),
            )
        console.print(table)
        if delivered:
            console.print(f"delivered now: {len(delivered)} document(s) into the inbox folder")

    emit(as_json, data, human)


@doc.command("fetch")
@click.argument("doc_id")
@click.option("--as", "as_id", required=True, help="Recipient (or sender) fetching it.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Destination file, or a folder for the original name.",
)
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
@json_option
@click.pass_context
@async_command
async def fetch_cmd(
    ctx: click.Context, doc_id: str, as_id: str, out: Path, force: bool, as_json: bool
) -> None:
    """Download, verify and store a document; then sign the delivery receipt."""
    bar = _progress(as_json)
    async with open_hub(settings(ctx)) as hub:
        await _caught_up(hub)
        document = await verified_document(hub.pool, hub.trust, doc_id)
        target = resolve_out(out, document.manifest, force=force)
        already = await hub.pool.fetchval(
            "SELECT delivered_at IS NOT NULL FROM doc_recipients"
            " WHERE doc_id = $1 AND recipient = $2",
            doc_id,
            as_id,
        )
        if bar is None:
            result = await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
                document, as_id, target, receipt=not already
            )
        else:
            with bar:
                task = bar.add_task(f"fetching {target.name}", total=None)
                fetcher = Fetcher(
                    hub.trust,
                    hub.bus,
                    hub.signer,
                    on_progress=lambda _s, done, total: bar.update(
                        task, completed=done, total=total
                    ),
                )
                result = await fetcher.fetch(document, as_id, target, receipt=not already)
    data = {
        "doc_id": doc_id,
        "path": str(result.path),
        "size": result.size,
        "sha256": result.sha256,
        "verified": True,
        "chunks_fetched": result.chunks_fetched,
        "chunks_reused": result.chunks_reused,
        "delivery_receipt": result.receipt_event_id,
        "seconds": result.seconds,
    }
    emit(
        as_json,
        data,
        lambda: console.print(
            f"stored {result.path} ({result.size:,} bytes, sha256 {result.sha256[:16]}…, "
            "verified)" + (", delivery receipt signed" if result.receipt_event_id else "")
        ),
    )


@doc.command("status")
@click.argument("doc_id")
@json_option
@click.pass_context
@async_command
async def status_cmd(ctx: click.Context, doc_id: str, as_json: bool) -> None:
    """Every recipient's state with its signed receipts."""
    async with open_hub(settings(ctx)) as hub:
        await _caught_up(hub)
        data = await document_status(hub.pool, hub.trust, doc_id)

    def human() -> None:
        console.print(
            line(
                (data["title"], "bold"),
                f" {data['doc_number']}  from {data['sender']}, "
                f"{data['classification']}, {data['urgency']}, sent {data['sent_at']}"
                + (f", deadline {data['deadline']} (sender's clock)" if data["deadline"] else ""),
            )
        )
        table = Table("recipient", "state", "since", "receipts")
        for r in data["recipients"]:
            kinds = ", ".join(f"{x['kind']}({x['outcome']})" for x in r["receipts"]) or "-"
            table.add_row(
                r["recipient"], state_text(r["state"], r["reason"]), r["state_at"] or "", kinds
            )
        console.print(table)
        if data["recall_reason"]:
            console.print(f"recalled: {data['recall_reason']}")
        for n in data["notices"]:
            console.print(f"{n['kind']} at {n['stored_at']}: {', '.join(n.get('recipients', []))}")

    emit(as_json, data, human)


@doc.command("receipt")
@click.argument("doc_id")
@click.option("--as", "as_id", required=True, help="Recipient signing the processing receipt.")
@click.option("--accept", is_flag=True, help="Accept the document (签收).")
@click.option("--reject", "reject", default=None, help="Reject it (退回), with this reason.")
@json_option
@click.pass_context
@async_command
async def receipt_cmd(
    ctx: click.Context, doc_id: str, as_id: str, accept: bool, reject: str | None, as_json: bool
) -> None:
    """Sign a processing receipt: --accept, or --reject REASON."""
    if accept == (reject is not None):
        raise InputError("give exactly one of --accept or --reject REASON")
    async with open_hub(settings(ctx)) as hub:
        await _caught_up(hub)
        env, late = await receipts.answer(
            hub.pool, hub.trust, hub.signer, doc_id, as_id, accept=accept, reason=reject or ""
        )
        await _caught_up(hub)
    decision = "accepted" if accept else "rejected"
    data = {
        "doc_id": doc_id,
        "recipient": as_id,
        "decision": decision,
        "event_id": env.event_id,
        "subject": env.subject,
        "late": late,
    }
    emit(
        as_json,
        data,
        lambda: console.print(
            f"{as_id} {decision} {doc_id}"
            + (" (late: the deadline had passed on the sender's clock)" if late else "")
        ),
    )


@doc.command("recall")
@click.argument("doc_id")
@click.option("--as", "as_id", required=True, help="The document's sender.")
@click.option("--reason", default="", help="Why the document is withdrawn.")
@json_option
@click.pass_context
@async_command
async def recall_cmd(
    ctx: click.Context, doc_id: str, as_id: str, reason: str, as_json: bool
) -> None:
    """Withdraw a document from every recipient that has not accepted or rejected it."""
    async with open_hub(settings(ctx)) as hub:
        await _caught_up(hub)
        env, withdrawn = await receipts.recall(
            hub.pool, hub.trust, hub.signer, doc_id, as_id, reason
        )
        await _caught_up(hub)
    data = {"doc_id": doc_id, "event_id": env.event_id, "recalled_from": withdrawn}
    emit(as_json, data, lambda: console.print(f"recalled {doc_id} from {', '.join(withdrawn)}"))


@doc.command("ledger")
@click.option("--as", "as_id", required=True, help="Whose register (an office sees its unit).")
@click.option("--limit", default=500, show_default=True)
@json_option
@click.pass_context
@async_command
async def ledger_cmd(ctx: click.Context, as_id: str, limit: int, as_json: bool) -> None:
    """The 收发文 register: documents out, in, and (for offices) across their scope."""
    async with open_hub(settings(ctx)) as hub:
        await _caught_up(hub)
        data = await ledger(hub.pool, hub.trust, as_id, limit=limit)
    emit(as_json, data, lambda: console.print(ledger_table(data)))


def ledger_table(data: dict[str, Any]) -> Table:
    """The register as a table for people."""
    label = {"out": "发文 out", "in": "收文 in", "register": "登记"}
    table = Table(
        "",
        "number",
        "title",
        "from",
        "to",
        "class",
        "states",
        title=f"收发文登记 of {data['participant']} (scope: {data['scope']})",
        title_justify="left",
    )
    for e in data["entries"]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(e["states"].items()))
        to = ", ".join(e["recipients"][:3]) + (" …" if len(e["recipients"]) > 3 else "")
        table.add_row(
            label[e["direction"]],
            e["doc_number"],
            e["title"],
            e["sender"],
            to,
            e["classification"],
            states,
        )
    return table


COMMANDS = [doc]
