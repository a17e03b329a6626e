"""审计 pages: the latest checkpoint and its cosignatures, log search, an event with its proof,
consistency between checkpoints, the evidence bundle.

The server shows what the log holds; it never claims a proof holds. Each proof widget is a
`<section class="verify">` whose `data-*` attributes name what to check (leaf index, tree
sizes, the log's verifier keys); `static/verify.js` fetches the checkpoint and the tiles from
the public tlog-tiles API (`/console/log/`), checks the Ed25519 signatures and the RFC 9162
proofs with WebCrypto, and only then writes "verified in your browser". The verifier keys in
the page are the server's word: the page shows their key ids so an auditor compares them with
the copy they hold (`govhub audit pubkey`), and the widget accepts a pinned key instead.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

from aiohttp import web

from hub.audit import bundle, reader
from hub.audit.note import NoteError, parse_note, verify_signatures
from hub.console.context import audit_of, parts_of
from hub.console.frame import page, t
from hub.console.html import Child, Html, definitions, h, table
from hub.errors import InputError, NotInLog
from hub.userinput import parse_day_or_time as parse_filter_time
from hub.userinput import resolve_type

SEARCH_LIMIT = 200


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def _verify_widget(kind: str, request: web.Request, **data: object) -> Html:
    log = audit_of(request)
    attrs: dict[str, object] = {
        "class": "verify",
        "data-kind": kind,
        "data-log": "/console/log",
        "data-vkeys": json.dumps(sorted({v.vkey() for v in log.ring.verifiers()})),
        "data-witnesses": json.dumps([v.vkey() for v in log.witness_verifiers()]),
    }
    attrs.update({f"data-{k.replace('_', '-')}": v for k, v in data.items()})
    return h(
        "section",
        attrs,
        h("button", {"type": "button", "class": "run"}, t(request, "Verify in this browser")),
        h("p", {"class": "outcome", "aria-live": "polite"}, "未验证 not verified yet"),
        h("ol", {"class": "steps"}),
    )


async def overview(request: web.Request) -> web.Response:
    """The latest checkpoint, its cosignatures and their freshness, the search forms."""
    parts, log = parts_of(request), audit_of(request)
    cp = await reader.latest_checkpoint(parts.pool)
    body: list[Child] = []
    if cp is None:
        body.append(h("p", None, "尚未发布检查点。No checkpoint has been published yet."))
    else:
        rows: list[list[Child]] = []
        try:
            verified, _ = verify_signatures(parse_note(cp.note), log.witness_verifiers())
        except NoteError as exc:
            # A stored note that does not even parse is shown like one whose signatures fail:
            # both are evidence for the auditor, not a reason for the page to fail.
            verified = []
            rows.append([h("span", {"class": "bad"}, str(exc)), "", ""])
        now = time.time()
        for v in verified:
            stamp = v.timestamp or 0
            rows.append([v.verifier.name, time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(stamp)),
                         _age(now - stamp)])  # fmt: skip
        body += [
            h("h2", None, t(request, "Latest checkpoint")),
            definitions(
                [
                    (t(request, "Tree size"), h("span", {"id": "tree-size"}, cp.size)),
                    (t(request, "Root hash"), h("code", None, base64.b64encode(cp.root).decode())),
                    (t(request, "Signed at"), str(cp.signed_at)),
                    (
                        t(request, "Log key"),
                        [h("code", None, v.vkey()) for v in log.ring.verifiers()],
                    ),
                ]
            ),
            h("pre", {"class": "note"}, cp.note),
            h(
                "h3",
                None,
                t(request, "Witness cosignatures"),
                f" ({len(verified)} cosigned, {log.config.witness_k} required)",
            ),
            table([t(request, "Witness"), t(request, "Signed at"), t(request, "Age")], rows),
            _verify_widget("checkpoint", request),
        ]
    body += [
        h("h2", None, t(request, "Search the log")),
        h(
            "form",
            {"method": "get", "action": "/console/audit/search", "class": "grid"},
            [
                h("label", None, t(request, label), h("input", {"name": name, "placeholder": hint}))
                for label, name, hint in (
                    ("Participant", "participant", "akto.civil"),
                    ("Type", "type", "Notice"),
                    ("Since", "since", "2026-11-26"),
                    ("Until", "until", ""),
                    ("Event id", "event_id", ""),
                )
            ],
            h("button", {"type": "submit"}, t(request, "Search")),
        ),
        h("h2", None, t(request, "Consistency")),
        h(
            "form",
            {"method": "get", "action": "/console/audit/consistency", "class": "grid"},
            h(
                "label",
                None,
                t(request, "Old size"),
                h("input", {"name": "old", "inputmode": "numeric"}),
            ),
            h("button", {"type": "submit"}, t(request, "Consistency")),
        ),
        h("h2", None, t(request, "Evidence bundle")),
        h(
            "p",
            None,
            h(
                "a",
                {"href": "/console/audit/bundle", "download": "evidence.json"},
                t(request, "Download evidence bundle"),
            ),
            " — python -m hub.audit.verify evidence.json --trust trust.json"
            " (trust.json: govhub audit trust)",
        ),
    ]
    return page(request, t(request, "Audit"), body)


async def search(request: web.Request) -> web.Response:
    """Log entries by participant, type, event time or event id."""
    parts, log = parts_of(request), audit_of(request)
    q = request.query
    event_id = q.get("event_id", "").strip()
    if event_id:
        raise web.HTTPSeeOther(f"/console/audit/event/{_path_quote(event_id)}")
    given_type = q.get("type", "").strip() or None
    type_name = None
    if given_type is not None:
        type_name = resolve_type(
            given_type, [*await reader.types(parts.pool), *parts.trust.schemas.names()]
        )
    rows = await reader.search(
        parts.pool,
        participant=q.get("participant", "").strip() or None,
        type_name=type_name,
        since=parse_filter_time(q.get("since", "").strip() or None, "since"),
        until=parse_filter_time(q.get("until", "").strip() or None, "until"),
        limit=SEARCH_LIMIT,
    )
    del log
    cells: list[list[Child]] = [
        [
            r.index,
            str(r.event_time)[:19],
            r.source,
            r.type.rsplit(".", 1)[-1],
            r.verdict
            if r.verdict == "accepted"
            else h("span", {"class": "bad"}, r.reason or r.verdict),
            h("a", {"href": f"/console/audit/event/{_path_quote(r.event_id)}"}, r.event_id),
        ]
        for r in rows
    ]
    headers = ["Leaf", "Event time", "Source", "Type", "Verdict", "Event id"]
    return page(
        request,
        t(request, "Search the log"),
        h(
            "p",
            None,
            f"{len(rows)} entries"
            + (f" (first {SEARCH_LIMIT})" if len(rows) == SEARCH_LIMIT else ""),
        ),
        table([t(request, x) for x in headers], cells, id="results"),
    )


def _path_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _decoded(request: web.Request, leaf: dict[str, Any]) -> tuple[str, list[list[Child]]]:
    """The event's schema label and its fields with their label_zh, decoded from the leaf."""
    parts = parts_of(request)
    body = base64.b64decode(leaf.get("body", ""))
    try:
        schema, value = parts.trust.schemas.decode(body)
    except Exception as exc:  # a quarantined leaf may hold anything; show why it does not decode
        return "", [["(body)", h("span", {"class": "bad"}, f"does not decode: {exc}")]]
    source = schema.source if isinstance(schema.source, dict) else {}
    labels = {
        f.get("name"): f.get("label_zh", "")
        for f in source.get("fields", [])
        if isinstance(f, dict)
    }
    rows: list[list[Child]] = []
    for name, field_value in (value or {}).items():
        shown = (
            field_value
            if isinstance(field_value, str)
            else json.dumps(field_value, ensure_ascii=False, default=str)
        )
        rows.append([name, labels.get(name, ""), h("span", {"class": "value"}, shown)])
    return str(source.get("label_zh", schema.name)), rows


async def event(request: web.Request) -> web.Response:
    """One event: the signed headers, the decoded fields, the proof widget."""
    parts = parts_of(request)
    event_id = request.match_info["event_id"]
    row = await reader.find_event(parts.pool, event_id)
    cp = await reader.latest_checkpoint(parts.pool)
    leaf = json.loads(row.leaf)
    label, fields = _decoded(request, leaf)
    headers = leaf.get("headers", {})
    body: list[Child] = [
        definitions(
            [
                (t(request, "Leaf"), row.index),
                (t(request, "Type"), f"{row.type} {label}"),
                (t(request, "Source"), row.source),
                (t(request, "Event time"), str(row.event_time)),
                (
                    t(request, "Verdict"),
                    row.verdict if row.verdict == "accepted" else f"{row.verdict}: {row.reason}",
                ),
                ("subject", row.subject),
            ]
        ),
        h("h2", None, t(request, "Fields")),
        table([t(request, "Field"), "中文", t(request, "Value")], fields, id="fields"),
        h("h2", None, "headers"),
        table(["name", "value"], [[k, v] for k, v in sorted(headers.items())]),
        h("h2", None, t(request, "Inclusion proof")),
    ]
    if cp is None or row.index >= cp.size:
        body.append(
            h("p", None, "尚未被已发布的检查点覆盖。Not yet covered by a published checkpoint.")
        )
    else:
        body.append(_verify_widget("inclusion", request, index=row.index, event_id=event_id))
    return page(request, f"{t(request, 'Event')} {event_id}", body)


async def consistency(request: web.Request) -> web.Response:
    """Consistency of an older signed checkpoint with the latest one, checked in the browser."""
    parts = parts_of(request)
    stored = await reader.checkpoints(parts.pool, published=True)
    if not stored:
        raise NotInLog("no checkpoint has been published yet")
    try:
        old = int(request.query.get("old", "") or stored[0].size)
    except ValueError:
        raise InputError("the old size is a whole number of leaves") from None
    chosen = next((c for c in stored if c.size == old), None)
    if chosen is None:
        sizes = ", ".join(str(c.size) for c in stored[-12:])
        raise NotInLog(f"no published checkpoint has size {old}; recent sizes: {sizes}")
    return page(
        request,
        t(request, "Consistency"),
        h("p", None, f"{t(request, 'Old size')} {old} → latest"),
        h("pre", {"class": "note"}, chosen.note),
        _verify_widget("consistency", request, old_note=chosen.note),
    )


async def evidence(request: web.Request) -> web.Response:
    """The evidence bundle `python -m hub.audit.verify` checks offline (as `audit export`)."""
    parts, log = parts_of(request), audit_of(request)
    out = io.StringIO()
    await bundle.write_bundle(
        parts.pool,
        log.trust(),
        log.config.origin,
        out,
        participant=request.query.get("participant") or None,
    )
    return web.Response(
        body=out.getvalue().encode(),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="evidence.json"'},
    )


def routes() -> list[web.RouteDef]:
    """The auditor's pages."""
    return [
        web.get("/console/audit", overview),
        web.get("/console/audit/search", search),
        web.get("/console/audit/event/{event_id}", event),
        web.get("/console/audit/consistency", consistency),
        web.get("/console/audit/bundle", evidence),
    ]
