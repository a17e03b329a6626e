"""Choosing free loopback TCP ports for servers this process starts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable


def free_port(preferred: Iterable[int] = ()) -> int:
    """The first of `preferred` that is free on 127.0.0.1, else one the kernel picks."""
    for port in preferred:
        if 0 < port < 65536 and _port_free(port):
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports.

    The sockets are held open together until all are chosen: closing each one before binding
    the next could hand the same port out twice.
    """
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR so a port whose last user is in TIME_WAIT counts as free: the server
        # started on it sets the same option.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
