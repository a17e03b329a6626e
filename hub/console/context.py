"""What the console's handlers share through the application: the hub's collaborators, sign-in,
the audit log."""

from __future__ import annotations

from aiohttp import web

from hub.audit.service import AuditLog
from hub.collaborators import Parts
from hub.console.auth import SESSION_KEY, Auth

AUTH_KEY = web.AppKey("auth", Auth)
PARTS_KEY = web.AppKey("parts", Parts)


class AuditHolder:
    """The audit log's parts, opened on first use (its keys exist once the audit service ran)."""

    def __init__(self, log: AuditLog | None = None) -> None:
        self.log = log


AUDIT_KEY = web.AppKey("audit", AuditHolder)


def parts_of(request: web.Request) -> Parts:
    """The connected hub's collaborators."""
    return request.app[PARTS_KEY]


def audit_of(request: web.Request) -> AuditLog:
    """The audit log's parts."""
    holder = request.app[AUDIT_KEY]
    if holder.log is None:
        parts = parts_of(request)
        holder.log = AuditLog(
            parts.settings,
            parts.trust.scenario,
            parts.pool,
            parts.pg_dsn,
            parts.bus,
            create_keys=False,
            announce=False,
        )
    return holder.log


def participant(request: web.Request) -> str:
    """Whom the signed-in person acts as."""
    return str(request[SESSION_KEY].participant)
