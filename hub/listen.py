"""HOST:PORT addresses govhub's HTTP servers listen on, checked where they are configured.

`govhub serve --http`, `govhub adapter run --http` and an adapter file's `http`, a webhook's
`listen` and a witness's `--listen` all go through `parse_address` (so a mistake is refused by
`adapter check` and at the command line, not found when the server starts) and `start_site`
(so a port already in use is one sentence naming the address, not an OSError).
"""

from __future__ import annotations

import errno
import socket

from aiohttp import web

from hub.errors import CannotListen
from hub.userfiles import why


def parse_address(value: str) -> tuple[str, int]:
    """(host, port) of `value`; ValueError with a sentence when it is not HOST:PORT.

    An IPv6 host is written in brackets (`[::1]:8490`). Port 0 asks the system for a free
    port (tests use it).
    """
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"{value!r} is not HOST:PORT with a port up to 65535, for example 127.0.0.1:8490"
        )
    return host, int(port)


def _reason(host: str, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"the host name {host} does not resolve to an address"
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another program, or another govhub, listens there)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (ports below 1024 need privileges)"
    return why(exc)


async def start_site(site: web.TCPSite, host: str, port: int, what: str) -> None:
    """Start listening; a bind failure is CannotListen naming `what` and the address."""
    try:
        await site.start()
    except OSError as exc:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise CannotListen(f"cannot listen on {shown} for {what}: {_reason(host, exc)}") from exc
