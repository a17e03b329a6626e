"""资源目录 pages: search (Chinese or English), an entry, requesting access, granting or denying.

The same calls as `govhub dir search|show|request|requests|grant|deny`: `search` and
`entry_document` read the materialized directory, `Directory` signs and publishes the request
or answer as the signed-in participant and settles it (the materializer's refusal becomes the
page's one-sentence error).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from hub.console.auth import SESSION_KEY
from hub.console.context import participant, parts_of
from hub.console.frame import page, t
from hub.console.html import Child, definitions, h, hidden, table
from hub.directory.store import SearchFilters, entry_document, list_requests, search
from hub.directory.workflow import Directory
from hub.errors import InputError
from hub.userinput import parse_until


def _entry_link(code: str, label: str | None = None) -> Child:
    return h("a", {"href": f"/console/directory/entry/{quote(code, safe='')}"}, label or code)


def _fields(text: str) -> list[str]:
    return [f.strip() for f in text.replace("，", ",").split(",") if f.strip()]


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def search_page(request: web.Request) -> web.Response:
    """The search form and its hits."""
    parts = parts_of(request)
    query = request.query.get("q", "").strip()
    body: list[Child] = [
        h(
            "form",
            {"method": "get", "action": "/console/directory", "class": "grid"},
            h(
                "label",
                None,
                t(request, "Search"),
                h("input", {"name": "q", "value": query, "placeholder": "人口 / population"}),
            ),
            h(
                "label",
                None,
                t(request, "Provider"),
                h("input", {"name": "provider", "value": request.query.get("provider", "")}),
            ),
            h("button", {"type": "submit"}, t(request, "Search")),
        ),
        h("p", None, h("a", {"href": "/console/directory/requests"}, t(request, "Requests"))),
    ]
    if query:
        await Directory(
            parts.pool, parts.pg_dsn, parts.settings, parts.trust, parts.bus, parts.signer
        ).catch_up()
        filters = SearchFilters(provider=request.query.get("provider") or None)
        result = await search(parts.pool, query, filters, limit=50)
        rows = [
            [_entry_link(x["code"]), x["title"], x["provider"], x["sharing_type"], x["score"]]
            for x in result.results
        ]
        body += [
            h("p", None, f"{result.total} match(es) ({result.mode}, {result.took_ms} ms)"),
            table(
                [t(request, x) for x in ("Code", "Title", "Provider", "Sharing", "Score")],
                rows,
                id="hits",
            ),
        ]
    return page(request, t(request, "Resource directory"), body)


async def entry_page(request: web.Request) -> web.Response:
    """One entry: its fields, data items, versions, and the request form."""
    parts = parts_of(request)
    doc = await entry_document(parts.pool, request.match_info["code"])
    entry: dict[str, Any] = doc["entry"]
    items = [
        [i["name"], i.get("label_zh", ""), i.get("type", "")] for i in entry.get("data_items", [])
    ]
    session = request[SESSION_KEY]
    body: list[Child] = [
        definitions(
            [
                (t(request, "Code"), doc["code"]),
                (t(request, "Provider"), doc["provider"]),
                (t(request, "Status"), f"{doc['status']}, v{doc['version']}"),
                (t(request, "Sharing"), entry.get("sharing", {}).get("type", "")),
                (t(request, "Abstract"), entry.get("abstract", "")),
                (t(request, "Keywords"), ", ".join(entry.get("keywords", []))),
            ]
        ),
        h("h2", None, t(request, "Data items")),
        table(["name", "中文", "type"], items, id="items"),
    ]
    if doc["status"] == "active" and doc["provider"] != session.participant:
        body += [
            h("h2", None, t(request, "Request access")),
            h(
                "form",
                {
                    "method": "post",
                    "action": f"/console/directory/entry/{quote(doc['code'], safe='')}/request",
                    "class": "stack",
                    "id": "request",
                },
                hidden("csrf", session.csrf),
                h(
                    "label",
                    None,
                    t(request, "Purpose"),
                    h("input", {"name": "purpose", "required": True}),
                ),
                h(
                    "label",
                    None,
                    t(request, "Data items"),
                    h("input", {"name": "fields", "placeholder": "township, population"}),
                ),
                h(
                    "label",
                    None,
                    t(request, "Until"),
                    h("input", {"name": "until", "placeholder": "2027-06-30"}),
                ),
                h("button", {"type": "submit"}, t(request, "Request access")),
            ),
        ]
    return page(request, f"{entry.get('title', doc['code'])}", body)


async def request_access(request: web.Request) -> web.Response:
    """`dir request` as the signed-in participant."""
    parts, me = parts_of(request), participant(request)
    form = await _form(request)
    await Directory(
        parts.pool, parts.pg_dsn, parts.settings, parts.trust, parts.bus, parts.signer
    ).request(
        me,
        request.match_info["code"],
        form.get("purpose", ""),
        fields=_fields(form.get("fields", "")),
        until=parse_until(form.get("until") or None),
    )
    raise web.HTTPSeeOther("/console/directory/requests")


async def requests_page(request: web.Request) -> web.Response:
    """Requests the participant made or must answer (the operator sees all), with answers."""
    parts, me = parts_of(request), participant(request)
    directory = Directory(
        parts.pool, parts.pg_dsn, parts.settings, parts.trust, parts.bus, parts.signer
    )
    await directory.catch_up()
    role = "operator" if me == parts.trust.scenario.operator else "any"
    rows = await list_requests(parts.pool, me, role=role)
    session = request[SESSION_KEY]
    cells = []
    for r in rows:
        answer: Child = r["reason"] or ""
        if r["provider"] == me and r["state"] == "pending":
            base = f"/console/directory/requests/{quote(r['request_id'], safe='')}"
            answer = [
                h(
                    "form",
                    {"method": "post", "action": base + "/grant", "class": "grid"},
                    hidden("csrf", session.csrf),
                    h("input", {"name": "fields", "placeholder": t(request, "Data items")}),
                    h("input", {"name": "until", "placeholder": t(request, "Grant until")}),
                    h("button", {"type": "submit", "class": "grant"}, t(request, "Grant")),
                ),
                h(
                    "form",
                    {"method": "post", "action": base + "/deny", "class": "grid"},
                    hidden("csrf", session.csrf),
                    h(
                        "input",
                        {"name": "reason", "required": True, "placeholder": t(request, "Reason")},
                    ),
                    h("button", {"type": "submit", "class": "deny"}, t(request, "Deny")),
                ),
            ]
        cells.append(
            [
                r["request_id"],
                _entry_link(r["code"]),
                r["requester"],
                r["provider"],
                r["purpose"],
                h("span", {"class": f"state-{r['state']}"}, r["state"]),
                str(r["valid_until"] or ""),
                answer,
            ]
        )
    headers = ("Request", "Code", "Requester", "Provider", "Purpose", "State", "Grant until", "")
    return page(
        request,
        t(request, "Requests"),
        table([t(request, x) if x else "" for x in headers], cells, id="requests"),
    )


async def decide(request: web.Request) -> web.Response:
    """`dir grant` (with conditions: fewer fields, an end date) or `dir deny` with a reason."""
    parts, me = parts_of(request), participant(request)
    form = await _form(request)
    request_id, action = request.match_info["request_id"], request.match_info["action"]
    directory = Directory(
        parts.pool, parts.pg_dsn, parts.settings, parts.trust, parts.bus, parts.signer
    )
    if action == "grant":
        await directory.grant(
            me,
            request_id,
            fields=_fields(form.get("fields", "")),
            until=parse_until(form.get("until") or None),
        )
    else:
        if not form.get("reason", "").strip():
            raise InputError("a refusal needs a reason")
        await directory.deny(me, request_id, form["reason"])
    raise web.HTTPSeeOther("/console/directory/requests")


def routes() -> list[web.RouteDef]:
    """The directory pages."""
    return [
        web.get("/console/directory", search_page),
        web.get("/console/directory/entry/{code}", entry_page),
        web.post("/console/directory/entry/{code}/request", request_access),
        web.get("/console/directory/requests", requests_page),
        web.post("/console/directory/requests/{request_id}/{action:(grant|deny)}", decide),
    ]
