"""One error tree: every exception class of hub/ is a GovhubError, and the bus layer's public
calls raise govhub errors, never nats-py's, asyncio's or the operating system's.

The second half runs against a real nats-server that is stopped under the client, as an
outage or a restart does, and against a connection that has closed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

import hub
from hub import bus
from hub.bus import Publisher, connect, provision
from hub.codec import SchemaCache
from hub.consumer import Consumer, Delivery
from hub.envelope import Envelope
from hub.errors import GovhubError, PublishError, PublishTimeout, Retryable, ServerUnavailable
from hub.participants import ParticipantCache
from hub.topology import StreamSpec
from hub.verifier import Verifier
from tests.servers import NatsServer

_AUDITOR_COPY = (
    "the offline verifier runs from hub/audit/verify.py, hub/merkle.py and hub/audit/note.py "
    "alone on an auditor's machine (docs/audit.md), so these modules import nothing else of "
    "govhub; the hub's own callers turn their errors into AuditError, TamperEvidence or "
    "ConfigError"
)
STANDALONE: dict[str, str] = {
    "hub.audit.verify.BundleError": _AUDITOR_COPY,
    "hub.audit.verify.VerificationError": _AUDITOR_COPY,
    "hub.merkle.ProofError": _AUDITOR_COPY,
    "hub.audit.note.NoteError": _AUDITOR_COPY,
    "hub.audit.note.KeyFormatError": _AUDITOR_COPY,
    "hub.audit.note.MalformedNoteError": _AUDITOR_COPY,
    "hub.audit.note.SignatureError": _AUDITOR_COPY,
}
"""Exception classes of hub/ that are deliberately not GovhubErrors, each with its reason."""


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(hub.__path__, "hub."):
        if info.name.endswith(".__main__"):
            continue  # running it is the CLI
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_of_the_hub_is_a_govhub_error_except_the_auditors_verifier() -> None:
    classes = _exception_classes()
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, GovhubError))
    assert outside == sorted(STANDALONE)


def test_each_module_defines_its_errors_once_so_no_name_shadows_one_of_hub_errors() -> None:
    from hub import errors

    tree = {name for name, value in vars(errors).items() if inspect.isclass(value)}
    shadows = sorted(
        qualified
        for qualified, cls in _exception_classes().items()
        if cls.__module__ != "hub.errors" and cls.__name__ in tree
    )
    assert shadows == []


# ---- the bus layer with NATS away ---------------------------------------------------------

STREAM = StreamSpec("TREE", ("tree.>",), "error tree test stream")


def _envelope(n: int) -> Envelope:
    return Envelope(f"tree.{n}", {"ce-id": f"tree-{n}", "Nats-Msg-Id": f"tree-{n}"}, b"body")


def _consumer(nc: NatsClient, publisher: Publisher, durable: str | None = "reader") -> Consumer:
    verifier = Verifier(ParticipantCache(), SchemaCache())
    return Consumer(nc, verifier, publisher, stream=STREAM.name, durable=durable, quarantine=False)


async def _raises_govhub_error(call: Callable[[], Awaitable[Any]]) -> GovhubError:
    try:
        await call()
    except GovhubError as exc:
        return exc
    except BaseException as exc:  # the failure this test is about: report its class
        pytest.fail(f"raised {type(exc).__module__}.{type(exc).__name__}: {exc}")
    pytest.fail("raised nothing")


@pytest.fixture
async def delivered(nats_server: NatsServer) -> AsyncIterator[tuple[NatsClient, Delivery]]:
    """A connection with a stream, a durable consumer and one event fetched, not yet acked."""
    nc = await connect(nats_server.url)
    await provision(nc, [STREAM])
    publisher = Publisher(nc)
    await publisher.publish(_envelope(0))
    consumer = _consumer(nc, publisher)
    fetched = await consumer.fetch(1, timeout=5.0)
    assert len(fetched) == 1
    yield nc, fetched[0]
    await bus.close(nc)


async def test_connecting_to_a_nats_server_that_is_not_running_is_server_unavailable(
    nats_server: NatsServer,
) -> None:
    nats_server.stop()
    error = await _raises_govhub_error(lambda: connect(nats_server.url, connect_timeout=0.5))
    assert isinstance(error, ServerUnavailable)


async def test_with_nats_stopped_every_bus_call_raises_a_retryable_govhub_error(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JetStream API calls wait JS_API_TIMEOUT (20 s) for an answer; a short one keeps the
    # test quick and still takes the path a timed-out consumer create takes.
    monkeypatch.setattr(bus, "JS_API_TIMEOUT", 0.5)
    nc = await connect(nats_server.url)
    await provision(nc, [STREAM])
    publisher = Publisher(nc, ack_timeout=0.2, attempts=2)
    await publisher.publish(_envelope(0))
    consumer = _consumer(nc, publisher)
    await consumer.start()
    nats_server.stop()  # the client keeps trying to reconnect, as after any outage
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "provision": lambda: provision(nc, [STREAM]),
        "Publisher.publish": lambda: publisher.publish(_envelope(1)),
        "Publisher.publish_many": lambda: publisher.publish_many(
            [_envelope(n) for n in range(2, 5)], atomic=False
        ),
        "Consumer.start": lambda: _consumer(nc, publisher, "another").start(),
        "Consumer.pending": consumer.pending,
        "Consumer.rewind": lambda: consumer.rewind(0),
    }
    try:
        errors = {name: await _raises_govhub_error(call) for name, call in calls.items()}
    finally:
        await bus.close(nc)
    assert {name: isinstance(e, Retryable) for name, e in errors.items()} == dict.fromkeys(
        calls, True
    )
    assert isinstance(errors["Publisher.publish_many"], PublishTimeout)
    assert str(errors["Consumer.start"]) == (
        "NATS could not create consumer another on stream TREE: no answer in time"
    )


async def test_on_a_closed_connection_every_bus_call_raises_server_unavailable(
    nats_server: NatsServer, delivered: tuple[NatsClient, Delivery]
) -> None:
    nc, delivery = delivered
    publisher = Publisher(nc)
    consumer = _consumer(nc, publisher)
    await consumer.start()
    nats_server.stop()
    await nc.close()
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "Delivery.ack": delivery.ack,
        "Delivery.nak": delivery.nak,
        "Consumer.fetch": lambda: consumer.fetch(1, timeout=0.5),
        "Consumer.start": lambda: _consumer(nc, publisher, "another").start(),
        "Consumer.stop": lambda: consumer.stop(delete=True),
        "Publisher.publish": lambda: publisher.publish(_envelope(1)),
        "provision": lambda: provision(nc, [STREAM]),
    }
    errors = {name: await _raises_govhub_error(call) for name, call in calls.items()}
    assert {name: type(e) for name, e in errors.items()} == dict.fromkeys(calls, ServerUnavailable)
    assert str(errors["Delivery.ack"]) == (
        "NATS could not acknowledge message 1 of TREE: connection closed"
    )


async def test_an_atomic_batch_over_the_limit_is_refused_before_anything_is_sent(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url)
    try:
        await provision(nc, [STREAM])
        publisher = Publisher(nc)
        too_many = [_envelope(n) for n in range(bus.MAX_BATCH + 1)]
        error = await _raises_govhub_error(lambda: publisher.publish_batch(too_many))
        assert isinstance(error, PublishError)
        assert str(error) == (
            f"a batch holds at most {bus.MAX_BATCH} events, not {bus.MAX_BATCH + 1}: "
            "publish_many splits longer runs"
        )
        assert (await nc.jetstream().stream_info(STREAM.name)).state.messages == 0
    finally:
        await bus.close(nc)
