"""办公室 pages: inbox and the 收发文 register, sending a document, its status and receipts.

Each action is what the CLI does, through the same functions: `Sender.send` (`doc send`),
`RecipientAgent.deliver_pending` (`doc inbox --deliver`: fetch, verify, sign the delivery
receipt), `receipts.answer` (`doc receipt --accept/--reject`), `receipts.recall`
(`doc recall`, the sender withdrawing what is not yet answered), read back with `inbox`,
`ledger` and `document_status`. The person acts as the participant they signed in as, with
that participant's key in this home; nothing here signs as anyone else. A confidential
document is decrypted only where the recipient's key is: by the agent on this machine when it
holds the recipient's key, never in the browser.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from hub.collaborators import Parts
from hub.console import auth
from hub.console.auth import SESSION_KEY
from hub.console.context import participant, parts_of
from hub.console.frame import page, t
from hub.console.html import Child, h, hidden, table
from hub.errors import InputError
from hub.exchange import receipts
from hub.exchange.agent import RecipientAgent
from hub.exchange.ledger import document_status, inbox, ledger
from hub.exchange.model import Classification, Urgency
from hub.exchange.send import Sender, SendRequest, check_request
from hub.exchange.tracker import ExchangeTracker
from hub.userinput import parse_deadline

MAX_FIELD = 64 << 10
OPEN_STATES = ("sent", "delivered")


async def caught_up(parts: Parts) -> None:
    """Let the exchange tracker catch up with the bus first, as every `doc` command does."""
    tracker = ExchangeTracker(parts.pool, parts.trust, parts.bus, parts.signer)
    try:
        await tracker.catch_up()
    finally:
        await tracker.stop()


def _overdue(deadline: str | None, state: str) -> bool:
    if state == "expired":
        return True
    if not deadline or state not in OPEN_STATES:
        return False
    return datetime.fromisoformat(deadline.replace("Z", "+00:00")) < datetime.now(UTC)


def _doc_link(doc_id: str, label: str) -> Child:
    return h("a", {"href": f"/console/office/doc/{quote(doc_id, safe='')}"}, label or doc_id)


def _state(request: web.Request, state: str, reason: str | None, overdue: bool) -> Child:
    label = state + (f": {reason}" if reason else "")
    if overdue:
        return h("span", {"class": "overdue"}, label, " (", t(request, "Overdue"), ")")
    return h("span", {"class": f"state-{state}"}, label)


def choices(values: list[str], chosen: str) -> list[Child]:
    """The options of a `<select>`."""
    return [h("option", {"value": v, "selected": v == chosen}, v) for v in values]


async def office(request: web.Request) -> web.Response:
    """Inbox, register and the send form of the signed-in participant."""
    parts, me = parts_of(request), participant(request)
    await caught_up(parts)
    rows = await inbox(parts.pool, parts.trust, me)
    register = await ledger(parts.pool, parts.trust, me)
    session = request[SESSION_KEY]
    inbox_rows = []
    for r in rows:
        late = _overdue(r.get("deadline"), r["state"])
        inbox_rows.append(
            [
                _doc_link(r["doc_id"], r["title"]),
                r["doc_number"],
                r["sender"],
                r["classification"],
                r.get("deadline") or "",
                _state(request, r["state"], r["reason"], late),
            ]
        )
    register_rows = [
        [
            {"out": "发文 out", "in": "收文 in", "register": "登记"}[e["direction"]],
            _doc_link(e["doc_id"], e["title"]),
            e["doc_number"],
            e["sender"],
            ", ".join(e["recipients"]),
            ", ".join(f"{k} {v}" for k, v in sorted(e["states"].items())),
        ]
        for e in register["entries"]
    ]
    body: list[Child] = [
        h("h2", None, t(request, "Inbox"), f" ({len(rows)})"),
        h(
            "form",
            {"method": "post", "action": "/console/office/deliver", "class": "inline"},
            hidden("csrf", session.csrf),
            h(
                "button",
                {"type": "submit", "id": "deliver"},
                "接收待收文件 Receive waiting documents",
            ),
        ),
        table(
            [
                t(request, x)
                for x in ("Title", "Document number", "From", "Classification", "Deadline", "State")
            ],
            inbox_rows,
            id="inbox",
        ),
        h("h2", None, t(request, "Register"), f" (scope: {register['scope']})"),
        table(
            [
                t(request, x)
                for x in ("Direction", "Title", "Document number", "From", "Recipients", "State")
            ],
            register_rows,
            id="register",
        ),
        h("h2", None, t(request, "Send a document")),
        h(
            "form",
            {
                "method": "post",
                "action": "/console/office/send",
                "enctype": "multipart/form-data",
                "class": "stack",
                "id": "send",
            },
            hidden("csrf", session.csrf),  # first part: checked before the file is read
            h(
                "label",
                None,
                t(request, "Title"),
                h("input", {"name": "title", "required": True, "maxlength": 500}),
            ),
            h("label", None, t(request, "Document number"), h("input", {"name": "doc_number"})),
            h(
                "label",
                None,
                t(request, "Recipients"),
                h(
                    "input",
                    {"name": "to", "required": True, "placeholder": "akto.office, wuqia.office"},
                ),
            ),
            h(
                "label",
                None,
                t(request, "Deadline"),
                h(
                    "input",
                    {"name": "deadline", "placeholder": "3d, 36h, 2026-12-31T18:00:00+08:00"},
                ),
            ),
            h(
                "label",
                None,
                t(request, "Urgency"),
                h("select", {"name": "urgency"}, choices([u.value for u in Urgency], "normal")),
            ),
            h(
                "label",
                None,
                t(request, "Classification"),
                h(
                    "select",
                    {"name": "classification"},
                    choices([c.value for c in Classification], "internal"),
                ),
            ),
            h(
                "label",
                None,
                t(request, "File"),
                h("input", {"name": "file", "type": "file", "required": True}),
            ),
            h("button", {"type": "submit"}, t(request, "Send")),
        ),
    ]
    return page(request, f"{t(request, 'Office')} · {me}", body)


async def _read_send_form(request: web.Request, folder: Path) -> tuple[dict[str, str], Path, str]:
    """The multipart send form: `csrf` must come first and match, then fields and one file."""
    if request.content_type != "multipart/form-data":
        raise InputError("send the document with the form (multipart/form-data)")
    reader = await request.multipart()
    first = await reader.next()
    if not isinstance(first, BodyPartReader) or first.name != "csrf":
        raise web.HTTPForbidden(text="refused: missing or wrong CSRF token\n")
    if not auth.csrf_ok(
        request[SESSION_KEY], (await first.read(decode=True)).decode(errors="replace")
    ):
        raise web.HTTPForbidden(text="refused: missing or wrong CSRF token\n")
    fields: dict[str, str] = {}
    path, file_name = folder / "upload", ""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            file_name = Path(part.filename or "document").name
            # A local temporary file, written a chunk at a time as the upload arrives.
            with open(path, "wb") as out:  # noqa: ASYNC230
                while chunk := await part.read_chunk():
                    out.write(chunk)
        elif part.name:
            data = await part.read(decode=True)
            if len(data) > MAX_FIELD:
                raise InputError(f"the form field {part.name} is longer than {MAX_FIELD} bytes")
            fields[part.name] = data.decode("utf-8", errors="strict")
    if not file_name:
        raise InputError("choose the document's file")
    named = folder / file_name
    path.rename(named)
    return fields, named, file_name


async def send(request: web.Request) -> web.Response:
    """`doc send` from the form, signed by the signed-in participant."""
    parts, me = parts_of(request), participant(request)
    with tempfile.TemporaryDirectory(prefix="govhub-console-") as tmp:
        fields, path, _name = await _read_send_form(request, Path(tmp))
        try:
            urgency = Urgency(fields.get("urgency", "normal"))
            classification = Classification(fields.get("classification", "internal"))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        send_request = SendRequest(
            sender=me,
            recipients=tuple(
                r.strip() for r in fields.get("to", "").replace("，", ",").split(",") if r.strip()
            ),
            path=path,
            title=fields.get("title", ""),
            doc_number=fields.get("doc_number", ""),
            urgency=urgency,
            classification=classification,
            deadline=parse_deadline(fields.get("deadline") or None),
        )
        check_request(send_request)
        result = await Sender(parts.settings, parts.trust, parts.bus, parts.signer).send(
            send_request
        )
    await caught_up(parts)
    raise web.HTTPSeeOther(f"/console/office/doc/{quote(result.doc_id, safe='')}")


async def deliver(request: web.Request) -> web.Response:
    """`doc inbox --deliver`: fetch, verify and sign delivery receipts for what is waiting."""
    parts, me = parts_of(request), participant(request)
    await RecipientAgent(
        parts.pool, parts.settings, parts.trust, parts.bus, parts.signer, [me]
    ).deliver_pending()
    await caught_up(parts)
    raise web.HTTPSeeOther("/console/office")


async def status(request: web.Request) -> web.Response:
    """One document: every recipient's state and signed receipts; the answer form."""
    parts, me = parts_of(request), participant(request)
    await caught_up(parts)
    data = await document_status(parts.pool, parts.trust, request.match_info["doc_id"])
    if me != data["sender"] and me not in [r["recipient"] for r in data["recipients"]]:
        # The register's scope rule: an office sees its unit, others their own documents.
        scoped = {e["doc_id"] for e in (await ledger(parts.pool, parts.trust, me))["entries"]}
        if data["doc_id"] not in scoped:
            raise web.HTTPForbidden(text="this document is neither to nor from you\n")
    rows = []
    mine = None
    for r in data["recipients"]:
        if r["recipient"] == me:
            mine = r
        receipts_cell = [
            h("div", {"class": "receipt"}, f"{x['kind']} ({x['outcome']}) {x.get('decision', '')} "
              f"{x.get('reason', '')} — {x['signed_by']} {x['time']}")
            for x in r["receipts"]
        ]  # fmt: skip
        rows.append(
            [
                r["recipient"],
                _state(request, r["state"], r["reason"], _overdue(data["deadline"], r["state"])),
                r["state_at"] or "",
                receipts_cell or "-",
            ]
        )
    body: list[Child] = [
        h(
            "dl",
            None,
            [
                [h("dt", None, t(request, k)), h("dd", None, v)]
                for k, v in (
                    ("Title", data["title"]),
                    ("Document number", data["doc_number"]),
                    ("From", data["sender"]),
                    ("Classification", data["classification"]),
                    ("Urgency", data["urgency"]),
                    ("Deadline", data["deadline"] or "-"),
                    *(
                        [("Recalled", f"{data['recalled_at']} {data['recall_reason'] or ''}")]
                        if data["recalled_at"]
                        else []
                    ),
                    (
                        "File",
                        f"{data['file_name']} ({data['size']:,} bytes, sha256 {data['sha256']})",
                    ),
                )
            ],
        ),
        h("h2", None, t(request, "Status")),
        table(
            [t(request, x) for x in ("Recipient", "State", "Since when", "Receipts")],
            rows,
            id="recipients",
        ),
    ]
    session = request[SESSION_KEY]
    pending = [r for r in data["recipients"] if r["state"] in OPEN_STATES]
    if me == data["sender"] and not data["recalled_at"] and pending:
        body += [
            h("h2", None, t(request, "Recall")),
            h(
                "form",
                {
                    "method": "post",
                    "action": f"/console/office/doc/{quote(data['doc_id'], safe='')}/recall",
                    "class": "grid",
                },
                hidden("csrf", session.csrf),
                h("label", None, t(request, "Reason"), h("input", {"name": "reason"})),
                h(
                    "button",
                    {"type": "submit", "id": "recall"},
                    f"{t(request, 'Recall')} ({', '.join(r['recipient'] for r in pending)})",
                ),
            ),
        ]
    if mine is not None and mine["state"] == "sent":
        body.append(
            h(
                "form",
                {"method": "post", "action": "/console/office/deliver"},
                hidden("csrf", session.csrf),
                h(
                    "button",
                    {"type": "submit", "id": "deliver"},
                    "接收 Receive (fetch, verify, sign the delivery receipt)",
                ),
            )
        )
    if mine is not None and mine["state"] in ("delivered", "expired"):
        action = f"/console/office/doc/{quote(data['doc_id'], safe='')}/answer"
        body += [
            h("h2", None, t(request, "Receipts")),
            h(
                "form",
                {"method": "post", "action": action, "class": "grid"},
                hidden("csrf", session.csrf),
                hidden("decision", "accept"),
                h("button", {"type": "submit", "id": "accept"}, t(request, "Accept")),
            ),
            h(
                "form",
                {"method": "post", "action": action, "class": "grid"},
                hidden("csrf", session.csrf),
                hidden("decision", "reject"),
                h(
                    "label",
                    None,
                    t(request, "Reason"),
                    h("input", {"name": "reason", "required": True}),
                ),
                h("button", {"type": "submit", "id": "reject"}, t(request, "Reject")),
            ),
        ]
    return page(request, data["title"], body)


async def answer(request: web.Request) -> web.Response:
    """`doc receipt --accept` or `--reject REASON`, signed by the signed-in recipient."""
    parts, me = parts_of(request), participant(request)
    form = await request.post()
    decision, reason = form.get("decision"), form.get("reason", "")
    if decision not in ("accept", "reject") or not isinstance(reason, str):
        raise InputError("answer with accept, or reject and a reason")
    if decision == "reject" and not reason.strip():
        raise InputError("a rejection needs a reason")
    doc_id = request.match_info["doc_id"]
    await caught_up(parts)
    await receipts.answer(
        parts.pool,
        parts.trust,
        parts.signer,
        doc_id,
        me,
        accept=decision == "accept",
        reason=reason,
    )
    await caught_up(parts)
    raise web.HTTPSeeOther(f"/console/office/doc/{quote(doc_id, safe='')}")


async def recall(request: web.Request) -> web.Response:
    """`doc recall`: the signed-in sender withdraws the document from every recipient that has
    not answered it yet (`receipts.recall` refuses anyone else, and a closed document)."""
    parts, me = parts_of(request), participant(request)
    form = await request.post()
    reason = form.get("reason", "")
    if not isinstance(reason, str):
        raise InputError("the reason must be text")
    doc_id = request.match_info["doc_id"]
    await caught_up(parts)
    await receipts.recall(parts.pool, parts.trust, parts.signer, doc_id, me, reason.strip())
    await caught_up(parts)
    raise web.HTTPSeeOther(f"/console/office/doc/{quote(doc_id, safe='')}")


def routes() -> list[web.RouteDef]:
    """The office pages."""
    return [
        web.get("/console/office", office),
        web.post("/console/office/send", send),
        web.post("/console/office/deliver", deliver),
        web.get("/console/office/doc/{doc_id}", status),
        web.post("/console/office/doc/{doc_id}/answer", answer),
        web.post("/console/office/doc/{doc_id}/recall", recall),
    ]
