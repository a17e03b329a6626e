"""Nothing is acknowledged that a receiver will refuse: every publishing path makes the
receivers' own checks first (size, subject, key window, schema) and refuses with one sentence.

Each test reads the hub stream afterwards: a refused event must not be in it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.folder import CONNECTOR as FOLDER
from connectors.folder import DropOptions
from hub.bus import Publisher
from hub.codec import SchemaCache, schema_from_json
from hub.envelope import Envelope, SigningKey, seal
from hub.errors import Reason, Unpublishable
from hub.home import Settings
from hub.integration.bridge import EventSink
from hub.integration.connector import ConnectorContext, Record, Verdict
from hub.integration.deadletter import QuarantineDeadLetters
from hub.integration.pipeline import Pipeline
from hub.participants import PARTICIPANTS_BUCKET, Participant, ParticipantCache, ParticipantKey
from hub.runtime import Hub
from hub.sender import BatchSender, Item
from hub.topology import HUB_STREAM
from hub.verifier import Verifier
from schemas import SCHEMA_DIR
from tests.connector_contract import eventually
from tests.test_connector_folder import drop_file

NOTICE = "gov.common.v1.Notice"
LIMIT_SENTENCE = "events are limited to 40,960 bytes (40 KiB): send large content as a document"


async def stored(hub: Hub) -> int:
    """Messages in the hub stream."""
    info = await hub.nc.jetstream().stream_info(HUB_STREAM)
    return int(info.state.messages)


def run_main(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`govhub ARGS` as a person runs it; returns the exit code."""
    from hub.cli import main

    monkeypatch.setenv("GOVHUB_NATS_URL", settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", settings.pg_dsn or "")
    monkeypatch.setattr(sys, "argv", ["govhub", "--home", str(settings.home.root), *args])
    # main() points structlog at the sys.stderr of the moment, here pytest's capture, which
    # is closed once the test ends: later tests of the session would fail to log.
    monkeypatch.setattr("hub.cli.configure", lambda *_args, **_kwargs: None)
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


async def close_keys(hub: Hub, participant: str) -> None:
    """The registry closes the participant's keys (a rotation done on another machine, say)
    while this machine still holds the key as current: receivers refuse with key_not_valid."""
    sender = hub.participants.get(participant)
    assert sender is not None
    closed = tuple(
        replace(k, not_after=k.not_before + timedelta(microseconds=1)) for k in sender.keys
    )
    kv = await hub.nc.jetstream().key_value(PARTICIPANTS_BUCKET)
    await kv.put(sender.id, json.dumps(sender.with_keys(closed).to_json()).encode())
    await hub.participants.wait_until(
        lambda cache: all(k.not_after for k in cache.get(participant).keys)  # type: ignore[union-attr]
    )


async def test_govhub_publish_of_a_50_kb_body_exits_nonzero_naming_the_limit_and_stores_nothing(
    hub: Hub,
    hub_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = await stored(hub)
    data = json.dumps({"title": "月报", "body": "x" * 50_000})
    code = await asyncio.to_thread(
        run_main, hub_settings, monkeypatch,
        "publish", "--as", "akto.civil", "--schema", NOTICE, "--data", data,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("govhub: the event body is 50,0")
    assert LIMIT_SENTENCE in err and "govhub doc send" in err
    assert "internal error" not in err
    assert await stored(hub) == before


async def test_a_10_mb_data_file_is_the_same_refusal_not_an_internal_error(
    hub: Hub,
    hub_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    before = await stored(hub)
    data = tmp_path / "big.json"
    data.write_text(json.dumps({"title": "t", "body": "x" * 10_000_000}))
    code = await asyncio.to_thread(
        run_main, hub_settings, monkeypatch,
        "publish", "--as", "akto.civil", "--schema", NOTICE, "--data", f"@{data}",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert "MaxPayloadError" not in err and "internal error" not in err
    assert LIMIT_SENTENCE in err
    assert await stored(hub) == before


async def test_hub_publish_of_an_oversized_record_raises_unpublishable_before_publishing(
    hub: Hub,
) -> None:
    before = await stored(hub)
    with pytest.raises(Unpublishable, match=re.escape(LIMIT_SENTENCE)) as caught:
        await hub.publish("akto.civil", NOTICE, {"title": "t", "body": "字" * 20_000})
    assert caught.value.reason is Reason.OVERSIZED
    assert await stored(hub) == before


async def test_hub_publish_with_a_key_whose_window_has_closed_is_refused_before_publishing(
    hub: Hub,
) -> None:
    await close_keys(hub, "akto.civil")
    before = await stored(hub)
    with pytest.raises(Unpublishable, match="was not valid at") as caught:
        await hub.publish("akto.civil", NOTICE, {"title": "t", "body": "b"})
    assert caught.value.reason is Reason.KEY_NOT_VALID
    assert await stored(hub) == before


async def test_a_revoked_participants_batch_sender_is_refused_before_publishing(hub: Hub) -> None:
    key = hub.keystore.current("akqi.health")
    await hub.enrollment.revoke("akqi.health")
    await hub.participants.wait_until(
        lambda cache: cache.get("akqi.health").status == "revoked"  # type: ignore[union-attr]
    )
    before = await stored(hub)
    body = hub.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    sender = BatchSender(hub.publisher, key, linger=0.01)
    with pytest.raises(Unpublishable, match="was revoked") as caught:
        await asyncio.wait_for(sender.send(Item("evt.akqi.health.notice", NOTICE, body)), 30)
    assert caught.value.reason is Reason.PARTICIPANT_REVOKED
    assert await stored(hub) == before


async def test_an_event_sealed_for_another_participants_subject_is_refused_before_publishing(
    hub: Hub,
) -> None:
    body = hub.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    env = seal(hub.keystore.current("akto.civil"), "evt.artux.stats.notice", NOTICE, body)
    before = await stored(hub)
    with pytest.raises(
        Unpublishable, match="akto.civil may not publish on evt.artux.stats"
    ) as caught:
        await hub.publisher.publish(env)
    assert caught.value.reason is Reason.SUBJECT_NOT_ALLOWED
    assert await stored(hub) == before


async def test_a_batch_with_one_unregistered_schema_refuses_that_event_and_stores_the_others(
    hub: Hub,
) -> None:
    unregistered = schema_from_json(
        {"type": "record", "name": "Draft", "namespace": "akto.civil.v1",
         "fields": [{"name": "text", "type": "string"}]}
    )  # fmt: skip
    sender = BatchSender(hub.publisher, hub.keystore.current("akto.civil"), linger=0.05)
    notice = hub.schemas.by_name(NOTICE)
    before = await stored(hub)
    good = [sender.submit_record("evt.akto.civil.notice", notice, {"title": f"{i}", "body": "b"})
            for i in range(3)]  # fmt: skip
    bad = sender.submit_record("evt.akto.civil.draft", unregistered, {"text": "x"})
    acks = await asyncio.wait_for(asyncio.gather(*good), 30)
    with pytest.raises(Unpublishable, match="is not registered") as caught:
        await asyncio.wait_for(bad, 30)
    assert caught.value.reason is Reason.UNKNOWN_SCHEMA
    assert len({a.seq for a in acks}) == 3
    assert await stored(hub) == before + 3


async def test_a_ce_type_that_is_not_the_bodys_schema_is_refused_before_publishing(
    hub: Hub,
) -> None:
    body = hub.schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    env = seal(
        hub.keystore.current("akto.civil"),
        "evt.akto.civil.notice",
        "gov.stats.v1.MonthlyFigures",
        body,
    )
    with pytest.raises(Unpublishable) as caught:
        await hub.publisher.publish_many([env])
    assert caught.value.reason is Reason.TYPE_MISMATCH


async def test_a_message_larger_than_the_server_takes_is_a_typed_error_not_max_payload_error(
    hub: Hub,
) -> None:
    # Not a participant event (no receiver checks apply), but still more than NATS takes.
    raw = Publisher(hub.nc, attempts=1)
    try:
        with pytest.raises(Unpublishable, match="the NATS server takes at most") as caught:
            await raw.publish(Envelope("sys.probe", {}, b"x" * (hub.nc.max_payload + 1)))
    finally:
        await raw.close()
    assert caught.value.reason is Reason.OVERSIZED


async def test_an_adapter_sink_rejects_a_record_too_large_and_retries_one_its_key_cannot_sign(
    hub: Hub,
) -> None:
    sink = EventSink(hub.trust, hub.bus, hub.signer, "akto.civil")
    await sink.start()
    try:
        big = Record(key="big", kind=NOTICE, value={"title": "t", "body": "x" * 50_000})
        small = Record(key="small", kind=NOTICE, value={"title": "t", "body": "b"})
        refused, done = await sink.send([big, small])
        assert (refused.verdict, refused.reason) == (Verdict.REJECT, Reason.OVERSIZED)
        assert LIMIT_SENTENCE in refused.detail and done.verdict is Verdict.DONE
        await close_keys(hub, "akto.civil")
        before = await stored(hub)
        (waiting,) = await sink.send([Record(key="later", kind=NOTICE, value=small.value)])
        # The record is fine; the signer's key is not: it waits rather than being dead-lettered.
        assert waiting.verdict is Verdict.RETRY and "was not valid at" in waiting.detail
        assert await stored(hub) == before
    finally:
        await sink.stop()


async def test_a_sender_waits_a_moment_for_its_registry_copy_to_learn_a_key_it_just_rotated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No servers: the lag of a watched registry copy, made deterministic.
    schemas = SchemaCache.from_directory(SCHEMA_DIR)
    cache = ParticipantCache()
    verifier = Verifier(cache, schemas)
    key = SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate())
    body = schemas.by_name(NOTICE).encode({"title": "t", "body": "b"})
    env = seal(key, "evt.akto.civil.notice", NOTICE, body)
    registered = Participant(
        id="akto.civil",
        unit="akto",
        name="akto.civil",
        keys=(ParticipantKey(key.key_id, key.public_bytes, datetime.now(UTC) - timedelta(1)),),
    )
    asyncio.get_running_loop().call_later(0.2, cache.put, registered)
    await verifier.check_outgoing(env)  # the copy learns the key while the sender waits

    monkeypatch.setattr("hub.verifier.REGISTRY_LAG", 0.2)
    stranger = seal(
        SigningKey.from_private("akto.civil", Ed25519PrivateKey.generate()),
        "evt.akto.civil.notice",
        NOTICE,
        body,
    )
    with pytest.raises(Unpublishable, match="has no registered key") as caught:
        await verifier.check_outgoing(stranger)
    assert caught.value.reason is Reason.UNKNOWN_KEY


async def test_a_dropped_file_too_large_for_an_event_goes_to_failed_with_the_reason(
    hub: Hub, tmp_path: Path
) -> None:
    root = tmp_path / "notices"
    source = FOLDER.source(
        DropOptions(path=root, settle_seconds=0, scan_interval=0.1),
        ConnectorContext(adapter="notices", participant="akto.civil"),
    )

    def notice(record: Record) -> Record:
        assert record.content is not None
        text = record.content.read_text(encoding="utf-8")
        return Record(
            key=record.key, kind=NOTICE, value={"title": record.value["name"], "body": text}
        )

    letters = QuarantineDeadLetters(hub.publisher, adapter="notices", participant="akto.civil")
    pipeline = Pipeline(
        "notices",
        source,
        EventSink(hub.trust, hub.bus, hub.signer, "akto.civil"),
        notice,
        dead_letters=letters,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    before = await stored(hub)
    try:
        drop_file(root, "short.txt", "本周停水通知".encode())
        drop_file(root, "long.txt", ("停水通知。" * 5_000).encode())
        await eventually(lambda: pipeline.stats.delivered == 1, "the short notice published")
        await eventually(lambda: pipeline.stats.dead_lettered == 1, "the long one refused")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert (root / "sent" / "short.txt").exists()
    reason = (root / "failed" / "long.txt.reason.txt").read_text(encoding="utf-8")
    assert LIMIT_SENTENCE in reason
    assert (root / "failed" / "long.txt").exists()  # the file itself is kept, not lost
    assert await stored(hub) == before + 1
