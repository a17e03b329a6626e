"""A witness (c2sp.org/tlog-witness): cosigns a log's checkpoint only if it extends the last one.

A county runs a witness with its own key, so the prefecture cannot show one history to some
parties and another to others: every checkpoint the witness cosigns is proven consistent with
the previous one it cosigned, and its latest size and root are persisted (check and update
under one file lock, written atomically) before it answers. A checkpoint that contradicts what
the witness already cosigned is refused, and the witness raises an alarm: a note signed with its
own key, published on ``sys.audit.alarm`` with the two conflicting checkpoints as evidence.

Witness state lives in its own folder (for witnesses inside ``govhub serve``:
``<home>/audit/witnesses/<unit>/state.json``), never in the hub's database, which the operator
controls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog
from aiohttp import web

from hub import merkle
from hub.audit import note
from hub.audit.note import Checkpoint, NoteError, Signer, Verifier
from hub.errors import AuditError
from hub.listen import start_site
from hub.userfiles import write_private

log = structlog.get_logger("hub.audit.witness")

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
ALARM_HEADER = "govhub-audit-alarm/v1"

LogKeys = Callable[[], Mapping[str, Sequence[Verifier]]]
"""Returns, per origin, the log keys the witness trusts (read at each request: rotation)."""

AlarmSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class WitnessResponse:
    """An add-checkpoint answer: HTTP status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain"

    @property
    def ok(self) -> bool:
        """True for 200 (the body holds cosignature lines)."""
        return self.status == 200


class _Refused(AuditError):
    """The witness refuses a checkpoint; `status` is the HTTP status its answer carries."""

    def __init__(self, status: int, message: str, alarm: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.alarm = status, alarm


def format_request(old_size: int, proof: Sequence[bytes], signed_note: str) -> bytes:
    """The add-checkpoint request body: ``old N``, proof lines, a blank line, the checkpoint."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + signed_note).encode()


def _parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "request is not UTF-8") from None
    head, sep, signed = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise _Refused(400, "request does not start with an old size line and a proof")
    size = note.plain_size(lines[0][4:])
    if size is None:
        raise _Refused(400, "old size is not a plain decimal")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _Refused(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (binascii.Error, ValueError):
        raise _Refused(400, "a consistency proof line is not base64") from None
    return size, proof, signed


class Witness:
    """One witness identity: its cosignature key, trusted log keys and persisted state."""

    def __init__(
        self, signer: Signer, log_keys: LogKeys, folder: Path, on_alarm: AlarmSink | None = None
    ) -> None:
        """``signer`` must be a cosignature key (type 0x04); state is kept in ``folder``."""
        if signer.verifier.alg != note.ALG_COSIGNATURE_V1:
            raise ValueError("a witness signs with a cosignature key (alg 0x04)")
        self.signer, self._log_keys, self.folder, self._on_alarm = (
            signer,
            log_keys,
            folder,
            on_alarm,
        )
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """The witness key name."""
        return self.signer.name

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature verifier key."""
        return self.signer.verifier

    def state(self) -> dict[str, Any]:
        """The latest cosigned checkpoint per origin: ``{origin: {size, root, note}}``."""
        path = self.folder / "state.json"
        if not path.exists():
            return {}
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    async def add_checkpoint(self, body: bytes) -> WitnessResponse:
        """Handle one add-checkpoint request (the HTTP route and local clients call this)."""
        async with self._lock:
            try:
                lines = await asyncio.to_thread(self._add_locked, body)
            except _Refused as refused:
                resync = refused.status == 409 and str(refused).isdigit()
                (log.info if resync else log.warning)(
                    "audit.witness.refused",
                    witness=self.name,
                    status=refused.status,
                    error=str(refused),
                )
                if refused.alarm is not None:
                    await self._raise_alarm(refused.alarm)
                if resync:
                    return WitnessResponse(409, f"{refused}\n", SIZE_CONTENT_TYPE)
                return WitnessResponse(refused.status, f"{refused}\n")
        return WitnessResponse(200, lines)

    def _add_locked(self, body: bytes) -> str:
        """Check and cosign under an exclusive file lock, so two processes cannot interleave."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / "state.lock", "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                return self._add(body)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _add(self, body: bytes) -> str:
        old_size, proof, signed = _parse_request(body)
        try:
            parsed = note.parse_note(signed)
            checkpoint = Checkpoint.parse(parsed.text)
        except NoteError as exc:
            raise _Refused(400, f"checkpoint is malformed: {exc}") from None
        keys = self._log_keys().get(checkpoint.origin)
        if not keys:
            raise _Refused(404, f"unknown log origin {checkpoint.origin}")
        try:
            # Only the log's own keys count: anyone can post, the signature is the authority.
            note.open_checkpoint(signed, list(keys), checkpoint.origin)
        except NoteError as exc:
            raise _Refused(403, f"checkpoint signature: {exc}") from None
        if old_size > checkpoint.size:
            raise _Refused(400, "old size is larger than the checkpoint size")
        states = self.state()
        mine = states.get(checkpoint.origin, {"size": 0, "root": "", "note": ""})
        if old_size != mine["size"]:
            raise _Refused(409, str(mine["size"]))
        if old_size == 0:
            if proof:
                raise _Refused(422, "a consistency proof from size 0 must be empty")
        else:
            old_root = base64.b64decode(mine["root"])
            try:
                merkle.verify_consistency(
                    old_size, checkpoint.size, old_root, checkpoint.root_hash, proof
                )
            except merkle.ProofError as exc:
                # Signed by the log yet contradicting what we cosigned: a fork. Say so loudly.
                status = 409 if old_size == checkpoint.size else 422
                raise _Refused(status, str(exc), self._alarm(mine, signed, proof, exc)) from None
        states[checkpoint.origin] = {
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root_hash).decode(),
            "note": signed,
        }
        self._persist(states)
        return self.signer.sign(parsed.text).line()

    def _persist(self, states: dict[str, Any]) -> None:
        write_private(self.folder / "state.json", json.dumps(states, indent=2).encode())
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power cut
        finally:
            os.close(dir_fd)

    def _alarm(
        self, mine: dict[str, Any], offered: str, proof: list[bytes], error: Exception
    ) -> dict[str, Any]:
        checkpoint = Checkpoint.parse(note.parse_note(offered).text)
        root = base64.b64encode(checkpoint.root_hash).decode()
        text = (
            f"{ALARM_HEADER}\n{self.name}\n{checkpoint.origin}\n"
            f"cosigned {mine['size']} {mine['root']}\noffered {checkpoint.size} {root}\n"
            f"{' '.join(str(error).split())}\n"
        )
        return {
            "alarm": note.sign_note(text, self.signer),
            "witness": self.name,
            "origin": checkpoint.origin,
            "reason": str(error),
            "cosigned": mine["note"],
            "offered": offered,
            "proof": [base64.b64encode(h).decode() for h in proof],
        }

    async def _raise_alarm(self, alarm: dict[str, Any]) -> None:
        log.error("audit.witness.alarm", witness=self.name, origin=alarm["origin"])
        if self._on_alarm is not None:
            await self._on_alarm(alarm)


def witness_routes(witness: Witness, prefix: str = "") -> list[web.RouteDef]:
    """The witness's HTTP interface: ``POST <prefix>/add-checkpoint``."""

    async def add_checkpoint(request: web.Request) -> web.Response:
        body = await request.content.read(1 << 20)
        answer = await witness.add_checkpoint(body)
        return web.Response(
            status=answer.status, text=answer.body, content_type=answer.content_type
        )

    return [web.post(f"{prefix}/add-checkpoint", add_checkpoint)]


class WitnessClient(Protocol):
    """How the log reaches one witness."""

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""

    async def add_checkpoint(self, body: bytes) -> WitnessResponse:
        """Send an add-checkpoint request."""


class LocalWitnessClient:
    """A witness in this process (the single-machine setup): same request bytes, no socket."""

    def __init__(self, witness: Witness) -> None:
        """Wrap a witness."""
        self._witness = witness

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""
        return self._witness.verifier

    async def add_checkpoint(self, body: bytes) -> WitnessResponse:
        """Call the witness directly."""
        return await self._witness.add_checkpoint(body)


class HttpWitnessClient:
    """A witness another party runs, reached at ``<url>/add-checkpoint``."""

    def __init__(self, verifier: Verifier, url: str, timeout: float = 5.0) -> None:
        """The witness's key and submission prefix URL."""
        self._verifier, self._url, self._timeout = verifier, url.rstrip("/"), timeout

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""
        return self._verifier

    async def add_checkpoint(self, body: bytes) -> WitnessResponse:
        """POST the request; a network failure is a 503 answer, not an exception."""
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{self._url}/add-checkpoint", data=body) as response,
            ):
                # A witness is another party: its answer is read, not trusted to be UTF-8.
                text = await response.text(errors="replace")
                return WitnessResponse(response.status, text, response.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return WitnessResponse(503, f"witness unreachable: {exc or type(exc).__name__}\n")


async def serve_witness(witness: Witness, host: str, port: int, stop: asyncio.Event) -> None:
    """Run a standalone witness (what a county runs) until ``stop`` is set."""
    app = web.Application()
    app.add_routes(witness_routes(witness))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await start_site(web.TCPSite(runner, host, port), host, port, "the witness")
        log.info("audit.witness.serving", witness=witness.name, http=f"http://{host}:{port}")
        await stop.wait()
    finally:
        await runner.cleanup()


def alarm_folder_sink(folder: Path) -> AlarmSink:
    """An alarm sink for a standalone witness: each alarm as a JSON file in ``folder``."""

    def save(alarm: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"alarm-{len(list(folder.glob('alarm-*.json'))) + 1:06d}.json"
        (folder / name).write_text(json.dumps(alarm, indent=2, ensure_ascii=False))

    async def write(alarm: dict[str, Any]) -> None:
        await asyncio.to_thread(save, alarm)

    return write
