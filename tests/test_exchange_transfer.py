"""Sending and fetching documents: chunked claim-check storage, end-to-end verification,
constant memory, resumable transfers and every bad input, against real servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import nats.js.errors
import pytest

from hub.bus import Publisher
from hub.errors import (
    ContentCorrupted,
    FileChanged,
    InputError,
    NotRecipient,
    PublishTimeout,
    RegistryError,
    TransferInterrupted,
)
from hub.exchange.fetch import Fetcher, part_path
from hub.exchange.ledger import verified_document
from hub.exchange.model import Classification
from hub.exchange.send import Sender, SendRequest, check_request
from hub.exchange.store import chunk_subject
from hub.exchange.tracker import ExchangeTracker
from hub.runtime import Hub
from tests.servers import NatsServer

CHUNK = 64 * 1024


def make_file(folder: Path, size: int, name: str = "通知.pdf") -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def request(path: Path, *, to: tuple[str, ...] = ("akto.office",), **extra: object) -> SendRequest:
    defaults = {"title": "关于做好冬季安全生产工作的通知", "doc_number": "克政办发〔2026〕12号"}
    return SendRequest(
        sender="pref.office",
        recipients=to,
        path=path,
        **{"chunk_size": CHUNK, **defaults, **extra},  # type: ignore[arg-type]
    )


async def announce(hub: Hub, req: SendRequest) -> str:
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(req)
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    return result.doc_id


async def send_cut_off(hub: Hub, nats_server: NatsServer, source: Path, after_chunks: int) -> None:
    """Send `source` and stop NATS once `after_chunks` chunks are stored: the send fails with
    PublishTimeout (its publisher gives up after two short tries); NATS is started again."""
    impatient = Publisher(hub.nc, max_inflight=4, ack_timeout=2.0, attempts=2)
    stopped: list[bool] = []

    def cut(stage: str, done: int, total: int) -> None:
        if done == after_chunks and not stopped:
            nats_server.stop()
            stopped.append(True)

    sender = Sender(
        hub.settings, hub.trust, hub.bus, hub.signer, window=4, publisher=impatient, on_progress=cut
    )
    try:
        with pytest.raises(PublishTimeout):
            await sender.send(request(source))
    finally:
        await impatient.close()
    await asyncio.to_thread(nats_server.start)


async def test_a_multi_chunk_document_arrives_byte_for_byte_with_a_verified_digest(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 5 * CHUNK + 123)
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))
    assert result.chunk_count == 6 and result.chunks_sent == 6
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    doc = await verified_document(hub.pool, hub.trust, result.doc_id)
    out = tmp_path / "received.pdf"
    fetched = await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, "akto.office", out)
    assert out.read_bytes() == source.read_bytes()
    assert fetched.receipt_event_id is not None
    assert not part_path(out, result.doc_id).exists()


async def test_a_confidential_document_is_ciphertext_in_the_store_and_opens_only_for_recipients(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 3 * CHUNK)
    doc_id = await announce(
        hub,
        request(
            source, to=("akto.office", "akqi.office"), classification=Classification.CONFIDENTIAL
        ),
    )
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    stored = await hub.nc.jetstream().get_msg(
        doc.manifest.store.stream, subject=chunk_subject(doc.manifest.store, 0), direct=True
    )
    assert stored.data != source.read_bytes()[:CHUNK]
    for recipient in ("akto.office", "akqi.office"):
        out = tmp_path / f"{recipient}.pdf"
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, recipient, out)
        assert out.read_bytes() == source.read_bytes()
    with pytest.raises(NotRecipient, match="pref.finance is not a recipient"):
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
            doc, "pref.finance", tmp_path / "nosy.pdf"
        )
    assert not (tmp_path / "nosy.pdf").exists()


async def _stored_messages(hub: Hub, doc_prefix: str, stream: str) -> int:
    info = await hub.nc.jetstream().stream_info(stream, subjects_filter=f"{doc_prefix}.>")
    return sum((info.state.subjects or {}).values())


async def test_a_file_that_changes_while_being_sent_fails_cleanly_and_announces_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 8 * CHUNK)

    def grow(stage: str, done: int, total: int) -> None:
        if done == 2:
            with source.open("ab") as handle:
                handle.write(b"an edit while the upload runs")

    with pytest.raises(FileChanged, match="changed while it was being sent.*nothing was announced"):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer, on_progress=grow).send(
            request(source)
        )
    assert await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up() == 0
    assert await hub.pool.fetchval("SELECT count(*) FROM doc_documents") == 0
    info = await hub.nc.jetstream().stream_info("DOCS_PREF")
    assert info.state.messages == 0  # the orphan chunks were withdrawn


async def test_a_chunk_altered_in_the_store_is_refused_and_nothing_is_left_at_the_recipient(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 4 * CHUNK)
    doc_id = await announce(hub, request(source))
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    # What a compromised relay or operator could do: put other bytes on a chunk's subject.
    await hub.nc.jetstream().publish(chunk_subject(doc.manifest.store, 2), os.urandom(CHUNK))
    out = tmp_path / "received.pdf"
    with pytest.raises(ContentCorrupted, match="chunk 2 .* does not match its signed digest"):
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, "akto.office", out)
    assert not out.exists()
    assert not part_path(out, doc_id).exists()


async def test_a_participant_that_is_not_a_recipient_is_refused_a_plain_document(
    hub: Hub, tmp_path: Path
) -> None:
    doc_id = await announce(hub, request(make_file(tmp_path, 1000)))
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    with pytest.raises(NotRecipient, match="only its 1 recipient"):
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, "wuqia.office", tmp_path / "x")


async def test_unknown_and_revoked_recipients_are_refused_before_anything_is_stored(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 1000)
    with pytest.raises(RegistryError, match="recipient akto.nobody does not exist"):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            request(source, to=("akto.office", "akto.nobody"))
        )
    await hub.enrollment.revoke("akqi.office")
    await _wait_for(lambda: hub.participants.get("akqi.office").status == "revoked")  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="recipient akqi.office is revoked"):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            request(source, to=("akqi.office",))
        )
    with pytest.raises(InputError, match="deadline must be in the future"):
        from datetime import UTC, datetime

        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            request(source, deadline=datetime(2020, 1, 1, tzinfo=UTC))
        )


async def _wait_for(condition: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < give_up, "condition not reached"
        await asyncio.sleep(0.05)


async def test_an_upload_survives_a_nats_crash_and_stores_every_chunk_once(
    hub: Hub, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = make_file(tmp_path, 40 * CHUNK)
    restarted: list[asyncio.Task[None]] = []

    def crash(stage: str, done: int, total: int) -> None:
        if done == 12 and not restarted:
            nats_server.kill()
            restarted.append(asyncio.create_task(asyncio.to_thread(nats_server.start)))

    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer, on_progress=crash).send(
        request(source)
    )
    await asyncio.gather(*restarted)
    assert result.chunk_count == 40
    prefix = f"dstore.docs_pref.office.{result.doc_id}"
    assert await _stored_messages(hub, f"{prefix}.c", "DOCS_PREF") == 40
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
        await verified_document(hub.pool, hub.trust, result.doc_id), "akto.office", out
    )
    assert out.read_bytes() == source.read_bytes()


async def test_running_an_interrupted_send_again_sends_only_the_missing_chunks(
    hub: Hub, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = make_file(tmp_path, 30 * CHUNK)
    await send_cut_off(hub, nats_server, source, after_chunks=10)
    stored_before = (await hub.nc.jetstream().stream_info("DOCS_PREF")).state.messages
    assert stored_before > 0
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))
    assert result.resumed
    # The client may still flush chunks it buffered while disconnected, so a few more can be
    # stored by the time the resumed send lists them; none is sent twice or stored twice.
    assert result.chunks_reused >= stored_before
    assert result.chunks_sent == 30 - result.chunks_reused
    assert (await hub.nc.jetstream().stream_info("DOCS_PREF")).state.messages == 30
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
        await verified_document(hub.pool, hub.trust, result.doc_id), "akto.office", out
    )
    assert out.read_bytes() == source.read_bytes()


async def test_a_download_survives_a_nats_crash(
    hub: Hub, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = make_file(tmp_path, 30 * CHUNK)
    doc_id = await announce(hub, request(source))
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    restarted: list[asyncio.Task[None]] = []

    def crash(stage: str, done: int, total: int) -> None:
        if done == 7 and not restarted:
            nats_server.kill()
            restarted.append(asyncio.create_task(asyncio.to_thread(nats_server.start)))

    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer, window=4, on_progress=crash).fetch(
        doc, "akto.office", out
    )
    await asyncio.gather(*restarted)
    assert out.read_bytes() == source.read_bytes()


async def test_an_interrupted_download_leaves_nothing_at_the_destination_and_resumes(
    hub: Hub, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = make_file(tmp_path, 30 * CHUNK, name="report.bin")
    doc_id = await announce(hub, request(source, classification=Classification.CONFIDENTIAL))
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    stopped: list[bool] = []

    def cut(stage: str, done: int, total: int) -> None:
        if done == 9 and not stopped:
            nats_server.stop()
            stopped.append(True)

    out = tmp_path / "received.bin"
    with pytest.raises(TransferInterrupted, match="did not answer"):
        await Fetcher(hub.trust, hub.bus, hub.signer, window=2, stall_s=1.0, on_progress=cut).fetch(
            doc, "akto.office", out
        )
    assert not out.exists()
    assert part_path(out, doc_id).stat().st_size >= 9 * CHUNK
    await asyncio.to_thread(nats_server.start)
    result = await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, "akto.office", out)
    assert result.chunks_reused >= 9
    assert out.read_bytes() == source.read_bytes()
    assert not part_path(out, doc_id).exists()


async def test_a_file_changed_between_two_attempts_is_not_mixed_into_one_document(
    hub: Hub, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = make_file(tmp_path, 20 * CHUNK)
    await send_cut_off(hub, nats_server, source, after_chunks=8)
    assert (await hub.nc.jetstream().stream_info("DOCS_PREF")).state.messages > 0
    stat = source.stat()
    with source.open("r+b") as handle:  # same size and time: only the bytes differ
        handle.write(os.urandom(CHUNK))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(FileChanged, match="changed since the interrupted send"):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))


async def test_documents_larger_than_the_inline_digest_list_keep_it_in_the_store(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 300 * 4096 + 7)
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
        request(source, chunk_size=4096)
    )
    assert result.manifest.index_parts == 1 and result.manifest.chunk_digests == ()
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
        await verified_document(hub.pool, hub.trust, result.doc_id), "akto.office", out
    )
    assert out.read_bytes() == source.read_bytes()


async def test_an_empty_file_is_a_document_too(hub: Hub, tmp_path: Path) -> None:
    source = make_file(tmp_path, 0)
    doc_id = await announce(hub, request(source))
    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
        await verified_document(hub.pool, hub.trust, doc_id), "akto.office", out
    )
    assert out.read_bytes() == b""


async def test_the_post_quantum_hybrid_suite_seals_a_confidential_document(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 2 * CHUNK)
    doc_id = await announce(
        hub,
        request(source, classification=Classification.CONFIDENTIAL, suite="mlkem768-x25519"),
    )
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    assert doc.manifest.encryption is not None
    assert doc.manifest.encryption.suite == "mlkem768-x25519"
    out = tmp_path / "received.pdf"
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, "akto.office", out)
    assert out.read_bytes() == source.read_bytes()


async def test_a_fetch_refuses_a_manifest_altered_after_signing(hub: Hub, tmp_path: Path) -> None:
    import dataclasses

    from hub.envelope import Envelope
    from hub.exchange.model import Document

    doc_id = await announce(hub, request(make_file(tmp_path, 2 * CHUNK)))
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    # Someone with write access to the tracker's table swaps the recipients in the manifest.
    record = doc.manifest.to_record()
    record["recipients"] = ["pref.finance"]
    body = hub.schemas.by_name("gov.exchange.v1.DocumentSent").encode(record)
    forged = Document(
        Envelope(doc.envelope.subject, doc.envelope.headers, body),
        dataclasses.replace(doc.manifest, recipients=("pref.finance",)),
        doc.sent_at,
    )
    out = tmp_path / "received.pdf"
    with pytest.raises(ContentCorrupted, match="does not verify"):
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(forged, "pref.finance", out)
    assert not out.exists()


async def _stored_chunks(hub: Hub) -> int:
    try:
        return (await hub.nc.jetstream().stream_info("DOCS_PREF")).state.messages
    except nats.js.errors.NotFoundError:  # not even the sender's store was created
        return 0


def _pending_sends(hub: Hub) -> list[Path]:
    folder = hub.settings.home.run / "exchange" / "sending"
    return sorted(folder.glob("*.json")) if folder.exists() else []


async def test_a_title_that_cannot_be_announced_stores_nothing_and_resumes_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    # Regression: the chunks were stored before the manifest failed to encode, and the next,
    # unrelated send of the same file "resumed" under the failed attempt's document id.
    source = make_file(tmp_path, 3 * CHUNK)
    undecodable = os.fsdecode(b"\xb9\xd8\xd3\xda")  # 关于 in GBK, read as if it were UTF-8
    with pytest.raises(InputError, match="^the title is not valid UTF-8 text"):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            request(source, title=undecodable)
        )
    assert await _stored_chunks(hub) == 0
    assert _pending_sends(hub) == []
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))
    assert not result.resumed and result.chunks_sent == 3


async def test_an_interrupted_send_resumes_only_for_the_same_title_and_recipients(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 6 * CHUNK)

    class Interrupted(Exception):
        pass

    def cut(stage: str, done: int, total: int) -> None:
        if done == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer, window=1, on_progress=cut).send(
            request(source)
        )
    (pending,) = _pending_sends(hub)
    interrupted_id = json.loads(pending.read_text())["doc_id"]
    other_title = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
        request(source, title="另一份通知")
    )
    other_people = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
        request(source, to=("akqi.office",))
    )
    for unrelated in (other_title, other_people):
        assert not unrelated.resumed and unrelated.chunks_reused == 0
        assert unrelated.doc_id != interrupted_id
    again = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))
    assert again.resumed and again.doc_id == interrupted_id and again.chunks_reused >= 2
    assert again.chunks_reused + again.chunks_sent == 6
    assert _pending_sends(hub) == []


async def test_a_file_name_that_is_not_utf8_is_refused_in_one_sentence(
    hub: Hub, tmp_path: Path
) -> None:
    # A POSIX file name is bytes; the manifest carries the name as UTF-8 text.
    source = tmp_path / os.fsdecode(b"\xb9\xab\xce\xc4.txt")  # 公文.txt in GBK
    source.write_bytes(b"content")
    with pytest.raises(InputError) as refused:
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(request(source))
    message = str(refused.value)
    assert message.startswith("the file name") and "\\xb9\\xab\\xce\\xc4.txt" in message
    assert "rename" in message and "surrogate" not in message and "\udcb9" not in message
    assert await _stored_chunks(hub) == 0
    assert _pending_sends(hub) == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("title", "通知\x1b[2J", "the title holds the control character U+001B"),
        ("doc_number", "克政办发\x7f", "the document number holds the control character U+007F"),
        ("path", "公文\r.txt", "the file name holds the control character U+000D"),
    ],
)
async def test_a_control_character_every_receiver_would_refuse_is_refused_before_sending(
    hub: Hub, tmp_path: Path, field: str, value: str, named: str
) -> None:
    # Receivers refuse such manifests (Manifest.check); a sender must not believe it delivered.
    source = make_file(tmp_path, 100)
    if field == "path":
        source = source.rename(tmp_path / value)
        req = request(source)
    else:
        req = request(source, **{field: value})
    with pytest.raises(InputError) as refused:
        await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(req)
    assert str(refused.value).startswith(named) and "receivers refuse" in str(refused.value)
    assert await _stored_chunks(hub) == 0
    assert _pending_sends(hub) == []


def test_a_title_may_run_over_lines_as_receivers_allow(tmp_path: Path) -> None:
    check_request(request(make_file(tmp_path, 100), title="关于\r\n冬季\t安全的通知"))


async def test_two_fetches_into_one_destination_take_turns_and_both_succeed(
    hub: Hub, tmp_path: Path
) -> None:
    # Regression: a `govhub serve` agent and the demo's agent delivered one document into one
    # inbox file at once; sharing the part file, one failed on the rename the other had made
    # (and stopped the service), or found the mixed bytes "altered".
    source = make_file(tmp_path, 12 * CHUNK)
    doc = await verified_document(hub.pool, hub.trust, await announce(hub, request(source)))
    out = tmp_path / "inbox" / "通知.pdf"
    out.parent.mkdir()
    results = await asyncio.gather(
        *(
            Fetcher(hub.trust, hub.bus, hub.signer, window=2).fetch(doc, "akto.office", out)
            for _ in range(3)
        )
    )
    assert all(r.path == out for r in results)
    assert out.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["通知.pdf"]
