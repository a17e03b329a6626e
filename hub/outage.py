"""Which failures are an outage to wait out, what to call them, and how long to wait.

A lost PostgreSQL or NATS connection is a pause, not a failure: the hub services back off and
resume by themselves (hub/serve.py). `is_transient` is the one place that decides which
exceptions mean "a server is away", so no service needs its own list; `describe` says it in
one sentence for `/healthz` and the logs; `nats_failure` turns a failure of nats-py into the
govhub error the bus layer raises in its place; `Backoff` spaces the retries, with jitter so that
several `govhub serve` processes do not all knock on a restarted server at the same moment.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import asyncpg
import asyncpg.exceptions
import nats.errors
import nats.js.errors

from hub.errors import GovhubError, Retryable, ServerError, ServerUnavailable

# The server went away, refused a connection, or is starting or shutting down.
_TRANSIENT: tuple[type, ...] = (
    Retryable,  # ServerUnavailable, PublishTimeout, TransferInterrupted
    OSError,  # refused, reset, unreachable (aiohttp's connection errors derive from it)
    TimeoutError,  # asyncio's and nats-py's
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection lost mid-query
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting up or recovering
    asyncpg.AdminShutdownError,  # 57P01: terminated by a shutdown or an administrator
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed, the server restarts
    asyncpg.TooManyConnectionsError,
    # asyncpg's own view of a connection it lost: closed, handed back to the pool under the
    # caller, or left mid-operation ("cannot switch to state"). Misuse of a connection raises
    # these too; it then reads as an outage, and is still retried and reported.
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,  # JetStream not (yet) answering after a server restart
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is an outage of PostgreSQL or NATS, to be waited out and retried.

    A group (a TaskGroup's failure) is transient when every failure in it is.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(inner) for inner in exc.exceptions)
    return isinstance(exc, _TRANSIENT)


def first_failure(exc: BaseException) -> BaseException:
    """The exception a person should hear about: inside a group, its first govhub error,
    else its first failure."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = list(_leaves(exc))
    return next((e for e in leaves if isinstance(e, GovhubError)), leaves[0] if leaves else exc)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for inner in group.exceptions:
        out.extend(_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    return out


def kinds(exc: BaseException) -> str:
    """The class names of a failure (each failure of a group), for the logs only."""
    found = _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return ",".join(type(e).__name__ for e in found)


def server_of(exc: BaseException) -> str | None:
    """ "PostgreSQL" or "NATS" when the failure came from that server's client library."""
    for module in _modules(exc):
        if module.startswith("asyncpg"):
            return "PostgreSQL"
        if module.startswith("nats"):
            return "NATS"
    return None


def _modules(exc: BaseException) -> list[str]:
    # The exception's own class first, then the frames it was raised through, innermost
    # first: asyncpg and nats-py raise plain OSError and TimeoutError from their own code.
    found = [type(exc).__module__]
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return found + frames[::-1]


_PHRASES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (BrokenPipeError, "connection broken"),
    (TimeoutError, "no answer in time"),
    (nats.errors.ConnectionReconnectingError, "reconnecting"),
    (nats.errors.ConnectionClosedError, "connection closed"),
    (nats.errors.NoRespondersError, "JetStream is not answering yet"),
    (nats.errors.OutboundBufferLimitError, "unreachable, outbound buffer full"),
)


def detail(exc: BaseException) -> str:
    """What went wrong in a few words, without Python names (``connection refused``)."""
    exc = first_failure(exc)
    if isinstance(exc, GovhubError):
        return str(exc)
    phrase = next((p for kind, p in _PHRASES if isinstance(exc, kind)), None)
    if phrase is None and isinstance(exc, OSError):
        # The system's words for the error number, not asyncio's "[Errno 98] error while ...".
        errno = exc.errno if isinstance(exc.errno, int) else 0
        phrase = os.strerror(errno).lower() if errno > 0 else exc.strerror
    if phrase is None and isinstance(exc, nats.js.errors.APIError) and exc.description:
        phrase = exc.description  # the server's words, not nats-py's "NotFoundError: code=404"
    if phrase is None:
        phrase = str(exc).removeprefix("nats: ").strip()
    return phrase or "failed without a message"


def describe(exc: BaseException) -> str:
    """One sentence for a person: what failed and on which server (``PostgreSQL: ...``)."""
    exc = first_failure(exc)
    server = None if isinstance(exc, GovhubError) else server_of(exc)
    return detail(exc) if server is None else f"{server}: {detail(exc)}"


def nats_failure(exc: BaseException, doing: str) -> ServerError:
    """The govhub error for a failure of nats-py while ``doing`` something (``"fetch events
    from consumer audit of stream HUB"``): ServerUnavailable (retryable) for an outage,
    ServerError for anything else the server answered.

    The bus layer (hub/bus.py, hub/consumer.py, hub/pull.py) raises these instead of nats-py's
    exceptions and the builtin TimeoutError it uses for "no answer in time", so its callers
    handle one error tree and decide to retry with one isinstance check, as for PostgreSQL.
    """
    sentence = f"NATS could not {doing}: {detail(exc)}"
    if is_transient(exc):
        return ServerUnavailable(sentence)
    return ServerError(sentence)


@dataclass
class Backoff:
    """Exponential delays with jitter, capped: `next()` is the wait before the next attempt.

    Each delay is drawn between half and all of ``initial * 2**attempt`` (at most ``cap``), so
    retries spread out instead of arriving together.
    """

    initial: float = 0.2
    cap: float = 10.0
    attempt: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def next(self) -> float:
        """The next delay in seconds."""
        ceiling = min(self.cap, self.initial * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self._random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the shortest delay (after a success)."""
        self.attempt = 0
