"""Sending a document: chunks into the sender's store, then the signed DocumentSent manifest.

Order matters for the recipients: content first (every chunk acknowledged), then the digest
list and sealed keys, and only then the manifest that makes the document exist. A send that
fails before the manifest leaves nothing a recipient can see.

Memory is constant: the file is read one chunk at a time, at most `window` chunks are in
flight. A send interrupted by a dropped connection is resumed by running it again: a small
state file under `<home>/run/exchange/sending/`, keyed by the file and by what the manifest
will say, remembers the document id (and, for confidential documents, the content key sealed to
the sender itself), the store is asked which chunks it already holds, and only the others are
sent. Encryption is deterministic per chunk (crypto.chunk_cipher), so a stored chunk is
recognised by its digest, and a stored chunk whose digest differs from the file's means the
file changed between the attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from hub import crypto
from hub.bus import Publisher
from hub.collaborators import Bus, Signer, Trust
from hub.envelope import new_event_id, seal
from hub.errors import FileChanged, InputError, RegistryError
from hub.exchange.access import access_for
from hub.exchange.model import (
    DEFAULT_CHUNK_SIZE,
    INLINE_DIGESTS,
    MAX_CHUNK_SIZE,
    SENT_SCHEMA,
    Classification,
    Encryption,
    Kind,
    Manifest,
    StoreRef,
    Urgency,
    chunk_list_digest,
    control_character,
    doc_subject,
)
from hub.exchange.store import (
    DEFAULT_WINDOW,
    StoreWriter,
    chunk_subject,
    index_subject,
    keys_subject,
    open_sender_store,
    store_ref,
)
from hub.home import Settings
from hub.participants import Participant
from hub.subjects import check_participant_id
from hub.topology import HUB_DOMAIN

log = structlog.get_logger("hub.exchange.send")

DIGESTS_PER_INDEX_PART = 16_384
MAX_TITLE = 500
MAX_RECIPIENTS = 500

Progress = Callable[[str, int, int], None]


def doc_context(doc_id: str) -> bytes:
    """The HPKE context a document's content key is sealed under."""
    return f"govhub-doc-v1\n{doc_id}".encode()


@dataclass(frozen=True)
class SendRequest:
    """What `govhub doc send` asks for."""

    sender: str
    recipients: tuple[str, ...]
    path: Path
    title: str
    doc_number: str = ""
    urgency: Urgency = Urgency.NORMAL
    classification: Classification = Classification.INTERNAL
    deadline: datetime | None = None
    media_type: str | None = None
    suite: str = crypto.SUITE_X25519
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class SendResult:
    """What a finished send reports."""

    doc_id: str
    manifest_event_id: str
    subject: str
    stream_seq: int
    size: int
    sha256: str
    chunk_count: int
    chunks_sent: int
    chunks_reused: int
    resumed: bool
    seconds: float
    manifest: Manifest


class Sender:
    """Sends documents as the participants whose keys this home holds."""

    def __init__(
        self,
        settings: Settings,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        *,
        window: int = DEFAULT_WINDOW,
        publisher: Publisher | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self._window = window
        # The publisher retries each chunk with its own Nats-Msg-Id; the store writer, not
        # the publisher, bounds how many chunks are in flight. By default each sender's own
        # (its link's, in a federation: hub/exchange/access.py).
        self._publisher = publisher
        self._on_progress = on_progress
        self._state_dir = settings.home.run / "exchange" / "sending"
        self._domains: dict[str, str] = {}

    async def send(self, request: SendRequest) -> SendResult:
        """Store the content, then announce it; returns the document id and figures."""
        started = time.monotonic()
        sender, recipients = self._check_parties(request)
        check_request(request)
        with _open_regular(request.path) as handle:
            before = os.fstat(handle.fileno())
            # Everything the manifest will say is checked before the first chunk is stored:
            # a send that cannot be announced must leave nothing behind, not even a resume.
            self._check_announceable(request, recipients, before.st_size)
            state_path, state = self._load_state(request, before)
            doc_id: str = state["doc_id"]
            content_key = self._content_key(request, sender, state)
            _save_state(state_path, state)
            access = await access_for(self._bus, sender.id)
            publisher = self._publisher or access.publisher
            domain = self._domains.get(sender.unit)
            if domain is None:
                domain = await open_sender_store(access.nc, sender.unit, domain=access.store_domain)
                self._domains[sender.unit] = domain
            ref = store_ref(sender.id, domain, doc_id)
            writer = StoreWriter(access.nc, ref, publisher, self._window)
            stored = await writer.stored_chunks() if state["resumed"] else {}
            if stored:
                log.info("exchange.send.resumed", doc_id=doc_id, stored=len(stored))
            count = max(1, -(-before.st_size // request.chunk_size))
            cipher = (
                crypto.chunk_cipher(
                    crypto.CONTENT_CIPHERS[request.suite], content_key, doc_id, count
                )
                if content_key
                else None
            )
            try:
                digests, whole, plain, sent = await self._upload(
                    handle, request, writer, ref, count, stored, cipher
                )
                _check_unchanged(request.path, handle, before)
            except FileChanged:
                await writer.abort()
                await writer.purge()
                state_path.unlink(missing_ok=True)
                raise
            except BaseException:
                await writer.abort()
                raise
        manifest = await self._finish(
            request, sender, recipients, ref, writer, digests, whole, plain, content_key, before
        )
        # The manifest's event id was fixed when the send began, so announcing twice (a crash
        # after the publish, before the state file was removed) is one event, not two.
        schema = self._trust.schemas.by_name(SENT_SCHEMA)
        env = seal(
            self._signer.keystore.current(request.sender),
            doc_subject(request.sender, Kind.SENT, doc_id),
            schema.name,
            schema.encode(manifest.to_record()),
            event_id=state["manifest_event_id"],
        )
        ack = await publisher.publish(env)
        state_path.unlink(missing_ok=True)
        log.info("exchange.send.announced", doc_id=doc_id, sender=request.sender, chunks=count)
        return SendResult(
            doc_id=doc_id,
            manifest_event_id=env.event_id,
            subject=env.subject,
            stream_seq=ack.seq,
            size=manifest.size,
            sha256=manifest.sha256.hex(),
            chunk_count=count,
            chunks_sent=sent,
            chunks_reused=count - sent,
            resumed=bool(state["resumed"]),
            seconds=round(time.monotonic() - started, 3),
            manifest=manifest,
        )

    def _check_parties(self, request: SendRequest) -> tuple[Participant, list[Participant]]:
        """The sender and recipients, each registered and active (checked before any upload)."""
        cache = self._trust.participants
        sender = cache.get(request.sender)
        if sender is None:
            raise RegistryError(f"{request.sender} is not a registered participant")
        if sender.status != "active":
            raise RegistryError(f"{request.sender} is revoked and can no longer send documents")
        self._signer.keystore.current(request.sender)
        if not request.recipients:
            raise InputError("a document needs at least one recipient (--to)")
        if len(set(request.recipients)) != len(request.recipients):
            raise InputError("a recipient is listed twice in --to")
        if len(request.recipients) > MAX_RECIPIENTS:
            raise InputError(f"a document may have at most {MAX_RECIPIENTS} recipients")
        found = []
        for rid in request.recipients:
            check_participant_id(rid)
            if rid == request.sender:
                raise InputError(f"{rid} cannot send a document to itself")
            participant = cache.get(rid)
            if participant is None:
                raise RegistryError(f"recipient {rid} does not exist in the participant registry")
            if participant.status != "active":
                raise RegistryError(f"recipient {rid} is revoked and cannot receive documents")
            if request.classification is Classification.CONFIDENTIAL:
                crypto.recipient_key(participant, request.suite)
            found.append(participant)
        return sender, found

    def _load_state(self, request: SendRequest, st: os.stat_result) -> tuple[Path, dict[str, Any]]:
        """The resume state of this very send: same file (path, size, modification time) and
        same document (everything its manifest says but the deadline, which `--deadline 3d`
        recomputes on every run). Another title or other recipients make another document."""
        identity = {
            "file": [os.fsencode(request.path.resolve()).hex(), st.st_size, st.st_mtime_ns],
            "sender": request.sender,
            "recipients": list(request.recipients),
            "title": request.title,
            "doc_number": request.doc_number,
            "urgency": request.urgency.value,
            "classification": request.classification.value,
            "suite": request.suite,
            "media_type": request.media_type,
            "chunk_size": request.chunk_size,
        }
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        path = self._state_dir / f"{key}.json"
        if path.exists():
            try:
                state: dict[str, Any] = json.loads(path.read_text())
                state["resumed"] = True
                return path, state
            except ValueError:
                path.unlink(missing_ok=True)
        state = {"doc_id": new_event_id(), "manifest_event_id": new_event_id(), "resumed": False}
        return path, state

    def _content_key(
        self, request: SendRequest, sender: Participant, state: dict[str, Any]
    ) -> bytes | None:
        """The content key of a confidential document; a resumed send reopens the same one."""
        if request.classification is not Classification.CONFIDENTIAL:
            return None
        context = doc_context(state["doc_id"])
        if "own_wrap" in state:
            wrap = crypto.KeyWrap.from_json(state["own_wrap"])
            key, _ = crypto.open_as(request.sender, self._signer.keystore, [wrap], context=context)
            return key
        key = crypto.new_content_key()
        # The state file holds the key only sealed to the sender's own encryption key, so a
        # half-finished confidential send leaves no readable key on disk.
        try:
            own = crypto.seal_for(
                [sender], key, context=context, suite=crypto.own_suite(request.suite)
            )[0]
        except RegistryError as exc:
            raise RegistryError(
                f"{sender.id} has no usable encryption key of its own, which a confidential "
                f"send needs to keep its content key ({exc})"
            ) from exc
        state["own_wrap"] = own.to_json()
        return key

    async def _upload(
        self,
        handle: IO[bytes],
        request: SendRequest,
        writer: StoreWriter,
        ref: Any,
        count: int,
        stored: dict[int, str],
        cipher: crypto.AnyChunkCipher | None,
    ) -> tuple[list[bytes], Any, Any, int]:
        whole = hashlib.sha256()
        plain = hashlib.sha256()
        digests: list[bytes] = []
        sent = 0
        size = os.fstat(handle.fileno()).st_size

        def prepare(index: int) -> tuple[bytes, bytes]:
            data = handle.read(request.chunk_size)
            expected = min(request.chunk_size, size - index * request.chunk_size)
            if len(data) != expected:
                raise FileChanged(
                    f"{request.path} changed while it was being sent: chunk {index} has "
                    f"{len(data)} bytes, {expected} expected; nothing was announced"
                )
            if cipher is not None:
                plain.update(data)
                data = cipher.encrypt(index, data)
            whole.update(data)
            return data, hashlib.sha256(data).digest()

        for index in range(count):
            body, digest = await asyncio.to_thread(prepare, index)
            digests.append(digest)
            known = stored.get(index)
            if known is not None:
                if known != digest.hex():
                    raise FileChanged(
                        f"{request.path} changed since the interrupted send of document "
                        f"{ref.prefix.rsplit('.', 1)[1]} began (chunk {index} differs); "
                        "nothing was announced"
                    )
            else:
                await writer.put(
                    chunk_subject(ref, index), body, digest.hex(), f"{ref.prefix}.c.{index}"
                )
                sent += 1
            if self._on_progress is not None:
                self._on_progress("upload", index + 1, count)
        await writer.drain()
        if handle.read(1):
            raise FileChanged(
                f"{request.path} changed while it was being sent (it grew); nothing was announced"
            )
        return digests, whole, plain, sent

    async def _finish(
        self,
        request: SendRequest,
        sender: Participant,
        recipients: Sequence[Participant],
        ref: Any,
        writer: StoreWriter,
        digests: list[bytes],
        whole: Any,
        plain: Any,
        content_key: bytes | None,
        before: os.stat_result,
    ) -> Manifest:
        """Store the digest list and sealed keys, and build the manifest that signs them."""
        doc_id = ref.prefix.rsplit(".", 1)[1]
        parts = 0
        if len(digests) > INLINE_DIGESTS:
            for start in range(0, len(digests), DIGESTS_PER_INDEX_PART):
                body = b"".join(digests[start : start + DIGESTS_PER_INDEX_PART])
                await writer.put(
                    index_subject(ref, parts),
                    body,
                    hashlib.sha256(body).hexdigest(),
                    f"{ref.prefix}.i.{parts}",
                )
                parts += 1
        encryption = None
        if content_key is not None:
            # Recipients get the content key and the plaintext digest, sealed; the sender is
            # sealed in too so it can open its own document later.
            secret = content_key + plain.digest()
            wraps = crypto.seal_for(
                [*recipients, sender], secret, context=doc_context(doc_id), suite=request.suite
            )
            blob = crypto.wraps_to_bytes(wraps)
            digest = hashlib.sha256(blob).digest()
            await writer.put(keys_subject(ref), blob, digest.hex(), f"{ref.prefix}.k")
            encryption = Encryption(
                request.suite, crypto.CONTENT_CIPHERS[request.suite], digest, len(blob)
            )
        await writer.drain()
        return _manifest(
            request, recipients, ref, before.st_size, whole.digest(), digests, parts, encryption
        )

    def _check_announceable(
        self, request: SendRequest, recipients: Sequence[Participant], size: int
    ) -> None:
        """Encode the manifest this send will sign, with stand-ins for what the upload
        computes (digests, store, sealed keys), so whatever the schema refuses is refused now."""
        count = max(1, -(-size // request.chunk_size))
        digests = [bytes(32)] * count
        parts = 0 if count <= INLINE_DIGESTS else -(-count // DIGESTS_PER_INDEX_PART)
        encryption = None
        if request.classification is Classification.CONFIDENTIAL:
            encryption = Encryption(
                request.suite, crypto.CONTENT_CIPHERS[request.suite], bytes(32), 0
            )
        ref = store_ref(request.sender, HUB_DOMAIN, new_event_id())
        trial = _manifest(request, recipients, ref, size, bytes(32), digests, parts, encryption)
        trial.check()  # what every receiver checks first (check_request says it more kindly)
        self._trust.schemas.by_name(SENT_SCHEMA).encode(trial.to_record())


def _manifest(
    request: SendRequest,
    recipients: Sequence[Participant],
    ref: StoreRef,
    size: int,
    sha256: bytes,
    digests: list[bytes],
    parts: int,
    encryption: Encryption | None,
) -> Manifest:
    """The DocumentSent manifest of a send, from its request and what its upload stored."""
    return Manifest(
        doc_id=ref.prefix.rsplit(".", 1)[1],
        title=request.title,
        doc_number=request.doc_number,
        sender=request.sender,
        recipients=tuple(p.id for p in recipients),
        file_name=request.path.name,
        media_type=request.media_type
        or mimetypes.guess_type(request.path.name)[0]
        or "application/octet-stream",
        size=size,
        sha256=sha256,
        chunk_size=request.chunk_size,
        chunk_count=len(digests),
        chunk_digests=tuple(digests) if len(digests) <= INLINE_DIGESTS else (),
        chunk_list_sha256=chunk_list_digest(digests),
        index_parts=parts,
        classification=request.classification,
        urgency=request.urgency,
        deadline=request.deadline,
        store=ref,
        encryption=encryption,
    )


def _check_text(text: str, what: str) -> None:
    """Refuse text that cannot be written as UTF-8: a command line or file name in another
    encoding reaches Python as lone surrogates, and the signed manifest carries UTF-8 only."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{what} is not valid UTF-8 text; the document's manifest carries it as UTF-8, so "
            "give it in UTF-8 (check the terminal's or the script's encoding)"
        ) from None


def _cipher(request: SendRequest) -> str:
    """The content cipher of the request's encryption suite (SM4-GCM for sm2)."""
    return crypto.CONTENT_CIPHERS[request.suite]


def check_request(request: SendRequest) -> None:
    """Refuse a request whose own fields are unusable (needs no server: the CLI checks first)."""
    name = request.path.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        raise InputError(
            f"the file name {shown} is not valid UTF-8, and a document's name travels in its "
            "signed manifest as UTF-8 text; rename the file (for example with `convmv`) and "
            "send it again"
        ) from None
    _check_text(request.title, "the title")
    _check_text(request.doc_number, "the document number")
    _check_text(request.media_type or "", "the media type")
    # Receivers refuse a manifest holding control characters (Manifest.check): refused here,
    # before anything is stored or announced, so no sender believes such a document delivered.
    for text, what, multiline in (
        (request.title, "the title", True),
        (request.doc_number, "the document number", True),
        (name, "the file name", False),
        (request.media_type or "", "the media type", False),
    ):
        if found := control_character(text, multiline=multiline):
            raise InputError(
                f"{what} holds the control character {found}, which receivers refuse; "
                "remove it and send again"
            )
    if not request.title.strip():
        raise InputError("a document needs a title (--title)")
    if len(request.title) > MAX_TITLE or len(request.doc_number) > 100:
        raise InputError(f"the title is limited to {MAX_TITLE} characters, the number to 100")
    if not 4096 <= request.chunk_size <= MAX_CHUNK_SIZE:
        raise InputError(f"the chunk size must be between 4 KiB and {MAX_CHUNK_SIZE // 1024} KiB")
    if request.deadline is not None and request.deadline <= datetime.now(UTC):
        raise InputError("the deadline must be in the future")
    if request.suite not in crypto.SUITES:
        raise InputError(f"unknown suite {request.suite!r}; suites are {', '.join(crypto.SUITES)}")


def _open_regular(path: Path) -> IO[bytes]:
    # Checked before opening: opening a FIFO or device for reading could block or never end.
    if path.exists() and not path.is_file():
        raise InputError(f"{path} is not a regular file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _check_unchanged(path: Path, handle: IO[bytes], before: os.stat_result) -> None:
    """Compare the file now with when the send began: same inode, size and modification time."""
    now_open = os.fstat(handle.fileno())
    try:
        now_path = path.stat()
    except OSError:
        raise FileChanged(
            f"{path} was removed while it was being sent; nothing was announced"
        ) from None
    for now in (now_open, now_path):
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (
            before.st_ino,
            before.st_size,
            before.st_mtime_ns,
        ):
            raise FileChanged(
                f"{path} changed while it was being sent (size {before.st_size} → "
                f"{now.st_size} bytes, or it was modified or replaced); nothing was announced"
            )


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {k: v for k, v in state.items() if k != "resumed"}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
