"""What the console's handlers share through the application: the hub, sign-in, the audit log."""

from __future__ import annotations

from aiohttp import web

from hub.audit.service import AuditLog
from hub.console.auth import SESSION_KEY, Auth
from hub.runtime import Hub

AUTH_KEY = web.AppKey("auth", Auth)
HUB_KEY = web.AppKey("hub", Hub)


class AuditHolder:
    """The audit log's parts, opened on first use (its keys exist once the audit service ran)."""

    def __init__(self, log: AuditLog | None = None) -> None:
        self.log = log


AUDIT_KEY = web.AppKey("audit", AuditHolder)


def hub_of(request: web.Request) -> Hub:
    """The connected hub."""
    return request.app[HUB_KEY]


def audit_of(request: web.Request) -> AuditLog:
    """The audit log's parts."""
    holder = request.app[AUDIT_KEY]
    if holder.log is None:
        holder.log = AuditLog(hub_of(request), create_keys=False, announce=False)
    return holder.log


def participant(request: web.Request) -> str:
    """Whom the signed-in person acts as."""
    return str(request[SESSION_KEY].participant)
