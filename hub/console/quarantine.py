"""隔离区 page: the newest refused events and adapters' dead letters, each with its reason.

It reads what `govhub tail --quarantine` reads (hub/quarantine.py). The hub operator sees every
entry; anyone else sees the entries that claim to come from them, which is how department IT
finds out why its system's events were refused. A quarantined message failed a check, so
every field is shown as the literal text it holds, evidence and never markup.
"""

from __future__ import annotations

from aiohttp import web

from hub import quarantine
from hub.console.context import participant, parts_of
from hub.console.frame import page, t
from hub.console.html import h, table

LIMIT = 200


async def quarantine_page(request: web.Request) -> web.Response:
    """The newest entries, newest first."""
    parts, me = parts_of(request), participant(request)
    everyone = me == parts.trust.scenario.operator
    entries = await quarantine.recent(parts.bus.nc, limit=LIMIT, source=None if everyone else me)
    scope = (
        "全部条目（运维方）All entries (you run the hub)"
        if everyone
        else f"声称来自 {me} 的条目 Entries that claim to come from {me}"
    )
    rows = [
        [
            str(e.seq),
            e.to_json()["stored_at"] or "",
            e.fields["source"],
            e.fields["type"],
            e.fields["subject"],
            h("span", {"class": "reason"}, e.fields["reason"]),
            e.fields["detail"],
            e.fields["adapter"],
            e.fields["record_key"],
        ]
        for e in entries
    ]
    headers = [
        t(request, x)
        for x in ("#", "Stored at", "Source", "Type", "Subject", "Reason", "Detail", "Adapter")
    ] + [t(request, "Record")]
    body = [
        h("p", None, scope),
        table(headers, rows, id="quarantine")
        if rows
        else h("p", {"id": "quarantine-empty"}, t(request, "Nothing is quarantined.")),
    ]
    return page(request, t(request, "Quarantine"), body)


def routes() -> list[web.RouteDef]:
    """The quarantine page."""
    return [web.get("/console/quarantine", quarantine_page)]
