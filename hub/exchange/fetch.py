"""Fetching a document: verified chunks streamed to a hidden part file, renamed when whole.

Nothing appears at the destination until every check passed: the sender's signature on the
manifest (re-verified here, whoever supplied it), the signed chunk digest
list, every chunk's digest, decryption of every chunk (confidential documents), the whole
content's SHA-256 and, for confidential documents, the plaintext digest sealed with the key.
Then the file is fsynced and renamed into place, and only then is the delivery receipt signed.

The part file (`.<name>.<doc_id>.part` next to the destination) is what makes a fetch
resumable: an interrupted fetch keeps it, the next attempt re-verifies its complete chunks
against the signed digests and downloads only the rest. A fetch that finds corrupted content
removes it, so a bad copy never lingers at the recipient. Two fetches into one destination (a
service's agent and a command delivering the same document to the same inbox) take turns on
a lock file beside the part file, which is removed when the fetch ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from hub import crypto
from hub.collaborators import Bus, Signer, Trust
from hub.errors import (
    ContentCorrupted,
    DocumentClosed,
    ExchangeError,
    InputError,
    NotRecipient,
    RejectedEvent,
)
from hub.exchange.access import Access, access_for
from hub.exchange.model import SENT_SCHEMA, Document, Manifest, chunk_list_digest, safe_file_name
from hub.exchange.receipts import delivery_receipt
from hub.exchange.send import doc_context
from hub.exchange.store import (
    DEFAULT_STALL_S,
    DEFAULT_WINDOW,
    StoreReader,
    chunk_subject,
    index_subject,
    keys_subject,
)

log = structlog.get_logger("hub.exchange.fetch")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FetchResult:
    """What a finished fetch reports."""

    doc_id: str
    path: Path
    size: int
    sha256: str
    chunks_fetched: int
    chunks_reused: int
    seconds: float
    receipt_event_id: str | None
    encryption_key_id: str | None


def check_party(doc: Document, as_id: str) -> None:
    """Refuse anyone but the recipients and the sender, and recalled documents."""
    if as_id not in doc.parties():
        raise NotRecipient(
            f"{as_id} is not a recipient of document {doc.doc_id} "
            f"({doc.manifest.title!r}); only its {len(doc.manifest.recipients)} recipient(s) "
            "and its sender may fetch it"
        )
    if doc.recalled_at is not None and as_id != doc.manifest.sender:
        raise DocumentClosed(
            f"document {doc.doc_id} was recalled by {doc.manifest.sender}; "
            "it can no longer be fetched"
        )


def part_path(out: Path, doc_id: str) -> Path:
    """The hidden file a fetch writes to before the rename."""
    return out.with_name(f".{out.name}.{doc_id}.part")


@contextlib.asynccontextmanager
async def _one_fetch_at_a_time(part: Path) -> AsyncIterator[None]:
    """Hold the lock of a part file for the whole fetch into its destination.

    Two fetches of one document into one place happen: a `govhub serve` agent and the demo's
    (or `doc inbox --deliver`) deliver to the same inbox file. Sharing the part file, one would
    cut or mix the other's bytes, report the content as altered, and fail on the rename the
    other already made. With the lock the second one waits, then fetches and renames anew.
    """
    lock = part.with_name(part.name + ".lock")
    abandoned = threading.Event()
    try:
        fd = await asyncio.to_thread(_lock_file, lock, abandoned)
    except BaseException:
        abandoned.set()  # a cancelled wait: the thread lets go of the lock once it gets it
        raise
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before unlocking: a waiter then sees a stale lock file
        os.close(fd)


def _lock_file(path: Path, abandoned: threading.Event) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current and not abandoned.is_set():
            return fd
        os.close(fd)
        if abandoned.is_set():
            raise asyncio.CancelledError


def resolve_out(out: Path, manifest: Manifest, *, force: bool) -> Path:
    """The destination file: `out`, or the sanitised original name inside `out` if a folder."""
    if out.is_dir():
        out = out / safe_file_name(manifest.file_name)
    if not out.parent.is_dir():
        raise InputError(f"the folder {out.parent} does not exist")
    if out.exists() and not force:
        raise InputError(f"{out} already exists; choose another --out or pass --force")
    return out


class Fetcher:
    """Fetches documents as participants whose keys this home holds."""

    def __init__(
        self,
        trust: Trust,
        bus: Bus,
        signer: Signer,
        *,
        window: int = DEFAULT_WINDOW,
        stall_s: float = DEFAULT_STALL_S,
        on_progress: Progress | None = None,
    ) -> None:
        self._trust = trust
        self._bus = bus
        self._signer = signer
        self._window = window
        self._stall_s = stall_s
        self._on_progress = on_progress
        self._verified: OrderedDict[tuple[str, bytes], Manifest] = OrderedDict()

    async def fetch(
        self,
        doc: Document,
        as_id: str,
        out: Path,
        *,
        receipt: bool = True,
        stored_by: str = "fetch",
    ) -> FetchResult:
        """Download, verify and store the document at `out`; then sign the delivery receipt."""
        started = time.monotonic()
        check_party(doc, as_id)
        manifest = doc.manifest
        self._check_signed(doc)
        try:
            manifest.check()
        except InputError as exc:
            raise ContentCorrupted(f"the manifest of {doc.doc_id} is inconsistent: {exc}") from exc
        if not self._signer.keystore.has(as_id):
            # Checked before downloading anything: without its key the recipient could store
            # the document but never sign for it.
            self._signer.keystore.current(as_id)
        access = await access_for(self._bus, as_id)
        where = access.read_location(manifest.store)
        reader = StoreReader(
            access.nc,
            where,
            stall_s=self._stall_s,
            copy_of=manifest.store if where != manifest.store else None,
        )
        try:
            return await self._fetch(doc, access, out, reader, started, receipt, stored_by)
        finally:
            await reader.close()

    def _check_signed(self, doc: Document) -> None:
        """The sender's signature, checked here whoever handed us the document: every digest
        the fetch relies on is trusted only because the sender signed it."""
        key = (doc.envelope.event_id, hashlib.sha256(doc.envelope.body).digest())
        known = self._verified.get(key)
        if known is not None:
            self._verified.move_to_end(key)
            if known != doc.manifest:
                raise ContentCorrupted(
                    f"the manifest of document {doc.doc_id} is not the signed one"
                )
            return
        try:
            signed = self._trust.verifier.verify(doc.envelope)
        except RejectedEvent as exc:
            raise ContentCorrupted(
                f"the manifest of document {doc.doc_id} does not verify: {exc}"
            ) from exc
        if signed.schema.name != SENT_SCHEMA or Manifest.from_record(signed.record) != doc.manifest:
            raise ContentCorrupted(f"the manifest of document {doc.doc_id} is not the signed one")
        # One manifest is fetched for many recipients (the agent, the benchmark): verify once.
        self._verified[key] = doc.manifest
        if len(self._verified) > 1024:
            self._verified.popitem(last=False)

    async def _fetch(
        self,
        doc: Document,
        access: Access,
        out: Path,
        reader: StoreReader,
        started: float,
        receipt: bool,
        stored_by: str,
    ) -> FetchResult:
        as_id = access.participant
        manifest = doc.manifest
        digests = await self._digests(reader, manifest)
        cipher, plain_digest, wrap_key = await self._open_key(reader, doc, as_id)
        part = part_path(out, doc.doc_id)
        whole, plain = hashlib.sha256(), hashlib.sha256()
        reused = 0
        async with _one_fetch_at_a_time(part):
            if part.exists():
                reused = await asyncio.to_thread(
                    _resume_part, part, manifest, digests, cipher, whole, plain
                )
            try:
                if manifest.chunk_count == 1 and reused == 0:
                    # Most official documents are one chunk: one worker-thread hop does it all.
                    stored = await reader.get(chunk_subject(manifest.store, 0))
                    await asyncio.to_thread(
                        _store_single, part, out, manifest, stored, digests, cipher, plain_digest
                    )
                else:
                    await self._download(
                        reader, manifest, digests, cipher, part, reused, whole, plain
                    )
                    await asyncio.to_thread(
                        _finish, part, out, manifest, whole, plain, plain_digest, reused
                    )
            except ContentCorrupted:
                part.unlink(missing_ok=True)
                raise
            except OSError as exc:  # a full disk, a name too long, a folder that went away
                raise ExchangeError(
                    f"cannot store document {doc.doc_id} at {out}: {exc.strerror or exc}"
                ) from exc
        log.debug("exchange.fetch.stored", doc_id=doc.doc_id, participant=as_id)
        event_id = None
        if receipt and as_id in manifest.recipients:
            env = delivery_receipt(
                self._trust,
                self._signer,
                doc,
                as_id,
                encryption_key_id=wrap_key,
                stored_at=datetime.now(UTC),
                stored_by=stored_by,
            )
            # Through the recipient's own link in a federation: its county's stream
            # acknowledges the receipt, uplink or not, and the hub sources it.
            await access.publisher.publish(env)
            event_id = env.event_id
            log.debug("exchange.receipt.sent", doc_id=doc.doc_id, recipient=as_id, kind="delivered")
        return FetchResult(
            doc_id=doc.doc_id,
            path=out,
            size=manifest.size,
            sha256=manifest.sha256.hex(),
            chunks_fetched=manifest.chunk_count - reused,
            chunks_reused=reused,
            seconds=round(time.monotonic() - started, 3),
            receipt_event_id=event_id,
            encryption_key_id=wrap_key,
        )

    async def _digests(self, reader: StoreReader, manifest: Manifest) -> list[bytes]:
        """The chunk digests, inline or from the store, checked against the signed digest."""
        if manifest.index_parts == 0:
            digests = list(manifest.chunk_digests)
        else:
            blob = b"".join(
                [
                    await reader.get(index_subject(manifest.store, part))
                    for part in range(manifest.index_parts)
                ]
            )
            digests = [blob[i : i + 32] for i in range(0, len(blob), 32)]
        if len(digests) != manifest.chunk_count or (
            chunk_list_digest(digests) != manifest.chunk_list_sha256
        ):
            raise ContentCorrupted(
                f"the chunk list of document {manifest.doc_id} does not match the signed manifest"
            )
        return digests

    async def _open_key(
        self, reader: StoreReader, doc: Document, as_id: str
    ) -> tuple[crypto.AnyChunkCipher | None, bytes | None, str | None]:
        """For a confidential document: the chunk cipher, sealed plaintext digest and key id."""
        enc = doc.manifest.encryption
        if enc is None:
            return None, None, None
        blob = await reader.get(keys_subject(doc.manifest.store))
        if hashlib.sha256(blob).digest() != enc.wraps_sha256:
            raise ContentCorrupted(
                f"the sealed keys of document {doc.doc_id} do not match the signed manifest"
            )
        wraps = crypto.wraps_from_bytes(blob)
        secret, wrap = crypto.open_as(
            as_id, self._signer.keystore, wraps, context=doc_context(doc.doc_id)
        )
        if len(secret) != 64:
            raise ContentCorrupted(f"the sealed key of document {doc.doc_id} is malformed")
        cipher = crypto.chunk_cipher(enc.cipher, secret[:32], doc.doc_id, doc.manifest.chunk_count)
        return cipher, secret[32:], wrap.key_id

    async def _download(
        self,
        reader: StoreReader,
        manifest: Manifest,
        digests: list[bytes],
        cipher: crypto.AnyChunkCipher | None,
        part: Path,
        start: int,
        whole: Any,
        plain: Any,
    ) -> None:
        """Fetch chunks `start..` in batches of `window` (two batches in flight), in order."""
        count = manifest.chunk_count
        groups = [
            list(range(first, min(first + self._window, count)))
            for first in range(start, count, self._window)
        ]
        ahead: deque[asyncio.Task[dict[str, bytes]]] = deque()
        scheduled = 0
        handle = await asyncio.to_thread(part.open, "ab")
        with handle:
            try:
                for group in groups:
                    while scheduled < len(groups) and len(ahead) < 2:
                        subjects = [chunk_subject(manifest.store, i) for i in groups[scheduled]]
                        ahead.append(asyncio.create_task(reader.get_many(subjects)))
                        scheduled += 1
                    found = await ahead.popleft()
                    await asyncio.to_thread(
                        _write_chunks, handle, manifest, group, found, digests, cipher, whole, plain
                    )
                    if self._on_progress is not None:
                        for index in group:
                            self._on_progress("download", index + 1, count)
            finally:
                for task in ahead:
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.gather(*ahead, return_exceptions=True)
                # Flushed but not fsynced: an unfinished part is re-verified before reuse,
                # and _finish makes the finished file durable before it gets its name.
                handle.flush()


def _write_chunks(
    handle: IO[bytes],
    manifest: Manifest,
    group: list[int],
    found: dict[str, bytes],
    digests: list[bytes],
    cipher: crypto.AnyChunkCipher | None,
    whole: Any,
    plain: Any,
) -> None:
    for index in group:
        stored = found.get(chunk_subject(manifest.store, index))
        if stored is None:
            raise ContentCorrupted(
                f"chunk {index} of document {manifest.doc_id} is missing from the sender's store"
            )
        _write_chunk(handle, manifest, index, stored, digests, cipher, whole, plain)


def _write_chunk(
    handle: IO[bytes],
    manifest: Manifest,
    index: int,
    stored: bytes,
    digests: list[bytes],
    cipher: crypto.AnyChunkCipher | None,
    whole: Any,
    plain: Any,
) -> None:
    if hashlib.sha256(stored).digest() != digests[index]:
        raise ContentCorrupted(
            f"chunk {index} of document {manifest.doc_id} does not match its signed digest; "
            "the copy in the sender's store is damaged or was altered"
        )
    data = cipher.decrypt(index, stored) if cipher is not None else stored
    if len(data) != manifest.chunk_length(index):
        raise ContentCorrupted(f"chunk {index} of document {manifest.doc_id} has a wrong length")
    whole.update(stored)
    plain.update(data)
    handle.write(data)
    if index == manifest.chunk_count - 1:
        handle.flush()
        os.fsync(handle.fileno())


def _resume_part(
    part: Path,
    manifest: Manifest,
    digests: list[bytes],
    cipher: crypto.AnyChunkCipher | None,
    whole: Any,
    plain: Any,
) -> int:
    """Re-verify the complete chunks of an earlier part file; keep them, cut the rest."""
    if not part.exists():
        return 0
    good = 0
    length = 0
    with part.open("rb") as handle:
        for index in range(manifest.chunk_count):
            want = manifest.chunk_length(index)
            data = handle.read(want)
            if len(data) != want:
                break
            # Deterministic chunk encryption lets the recipient recompute the stored form of a
            # chunk it already decrypted and check it against the signed digest.
            stored = cipher.encrypt(index, data) if cipher is not None else data
            if hashlib.sha256(stored).digest() != digests[index]:
                break
            whole.update(stored)
            plain.update(data)
            good += 1
            length += want
    with part.open("r+b") as handle:
        handle.truncate(length)
    log.info("exchange.fetch.resumed", doc_id=manifest.doc_id, chunks=good)
    return good


def _store_single(
    part: Path,
    out: Path,
    manifest: Manifest,
    stored: bytes,
    digests: list[bytes],
    cipher: crypto.AnyChunkCipher | None,
    plain_digest: bytes | None,
) -> None:
    whole, plain = hashlib.sha256(), hashlib.sha256()
    with part.open("wb") as handle:
        _write_chunk(handle, manifest, 0, stored, digests, cipher, whole, plain)
    _finish(part, out, manifest, whole, plain, plain_digest, 0)


def _finish(
    part: Path,
    out: Path,
    manifest: Manifest,
    whole: Any,
    plain: Any,
    plain_digest: bytes | None,
    reused: int,
) -> None:
    """Check the whole content, then make it durable and give it its name in one atomic step."""
    if whole.digest() != manifest.sha256:
        raise ContentCorrupted(
            f"document {manifest.doc_id} does not match the SHA-256 its sender signed"
        )
    if plain_digest is not None and plain.digest() != plain_digest:
        raise ContentCorrupted(
            f"document {manifest.doc_id} decrypts to content its sender did not sign"
        )
    if reused == manifest.chunk_count:
        # Every chunk came from an earlier part file, which was never fsynced.
        with part.open("rb") as handle:
            os.fsync(handle.fileno())
    os.replace(part, out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
