"""`govhub audit verify --full` (online, over PostgreSQL) and `python -m hub.audit.verify` (offline,
over an exported bundle) reach the same verdict on every log: honest ones, rotated keys, and each
kind of tampering with the rows or the key ring that either of them can see."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.audit import bundle, fsck, note
from hub.audit.config import audit_dir
from hub.audit.note import Checkpoint, Signer, sign_note
from hub.audit.service import AuditLog
from hub.audit.verify import BundleError, VerificationError, load_trust, verify_bundle
from hub.errors import GovhubError, TamperEvidence
from hub.runtime import Hub

NOTICE = "gov.common.v1.Notice"
SENDERS = ("akto.civil", "artux.stats", "wuqia.edu")
# Rewrites the stream sequence inside a leaf's JSON: a change no signature covers.
ALTER = (
    "convert_to(replace(convert_from(leaf, 'UTF8'), '\"stream_seq\":', '\"stream_seq\":9'), 'UTF8')"
)


async def _batch(hub: Hub, tag: str) -> None:
    envs = [
        hub.seal(sender, NOTICE, {"title": f"通知 {tag} {i}", "body": "正文"})
        for i in range(5)
        for sender in SENDERS
    ]
    await hub.publisher.publish_many(envs)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()


async def _log(hub: Hub) -> None:
    """Two batches, each logged and checkpointed; the second received a second later."""
    AuditLog(
        hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus
    )  # the log key exists before the first event, as under `govhub serve`
    await _batch(hub, "a")
    await asyncio.sleep(1.1)
    await _batch(hub, "b")


# -- what each fixture does to an honest log ---------------------------------------------


async def honest(hub: Hub) -> None:
    """Nothing."""


async def rotated_with_overlap(hub: Hub) -> None:
    AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).ring.rotate(
        timedelta(hours=2)
    )
    await _batch(hub, "c")


async def rotated_without_overlap(hub: Hub) -> None:
    # Right after a checkpoint: the old key's last checkpoint and the rotation share a second.
    AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).ring.rotate(timedelta(0))
    await _batch(hub, "c")


async def tampered_leaf(hub: Hub) -> None:
    await hub.pool.execute(f"UPDATE audit_leaves SET leaf = {ALTER} WHERE idx = 7")


async def removed_leaf(hub: Hub) -> None:
    await hub.pool.execute("DELETE FROM audit_leaves WHERE idx = 11")


async def _rewrite_latest(hub: Hub, edit: Callable[[str], str]) -> None:
    row = await hub.pool.fetchrow(
        "SELECT size, note FROM audit_checkpoints WHERE published_at IS NOT NULL"
        " ORDER BY size DESC LIMIT 1"
    )
    await hub.pool.execute(
        "UPDATE audit_checkpoints SET note = $1 WHERE size = $2", edit(row["note"]), row["size"]
    )


def _without_cosignatures(text: str, *names: str) -> str:
    """The note without these witnesses' cosignature lines (without every one if none named)."""
    body, _, signatures = text.partition("\n\n")
    origin = body.split("\n", 1)[0]
    kept = [
        line
        for line in signatures.splitlines()
        if line.split(" ")[1] == origin or (names and line.split(" ")[1] not in names)
    ]
    return body + "\n\n" + "\n".join(kept) + "\n"


async def bad_cosignature(hub: Hub) -> None:
    def flip(text: str) -> str:
        line = text.splitlines()[-1]
        name, sig = line.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(sig))
        raw[-1] ^= 1
        return text.replace(line, f"{name} {base64.b64encode(bytes(raw)).decode()}")

    await _rewrite_latest(hub, flip)


async def missing_cosignatures(hub: Hub) -> None:
    await _rewrite_latest(hub, lambda text: _without_cosignatures(text))


async def an_earlier_checkpoint_short_of_cosignatures(hub: Hub) -> None:
    row = await hub.pool.fetchrow(
        "SELECT size, note FROM audit_checkpoints WHERE published_at IS NOT NULL"
        " ORDER BY size LIMIT 1"
    )
    await hub.pool.execute(
        "UPDATE audit_checkpoints SET note = $1 WHERE size = $2",
        _without_cosignatures(row["note"]),
        row["size"],
    )


async def forged_checkpoint(hub: Hub) -> None:
    origin = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).config.origin

    def forge(text: str) -> str:
        cp = Checkpoint.parse(note.parse_note(text).text)
        return sign_note(cp.body(), Signer.generate(origin))

    await _rewrite_latest(hub, forge)


async def future_cosignature(hub: Hub) -> None:
    witness = (
        AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).witnesses[0].signer
    )

    def postdate(text: str) -> str:
        # The other witnesses' cosignatures stay: the policy alone would still be met.
        bare = _without_cosignatures(text, witness.name)
        return note.cosign(bare, witness, timestamp=int(time.time()) + 3600)

    await _rewrite_latest(hub, postdate)


def _edit_ring(hub: Hub, edit: Callable[[dict[str, Any]], None]) -> None:
    path = audit_dir(hub.settings.home) / "log" / "ring.json"
    ring = json.loads(path.read_text())
    edit(ring["keys"][0])
    path.write_text(json.dumps(ring))


async def inverted_window_in_the_ring(hub: Hub) -> None:
    # What `audit rotate-key --overlap -5` used to store for the old key.
    def invert(key: dict[str, Any]) -> None:
        key["not_after"] = (
            datetime.fromisoformat(key["not_before"]) - timedelta(hours=5)
        ).isoformat()

    _edit_ring(hub, invert)


async def retired_key_in_the_ring(hub: Hub) -> None:
    # The only key retired before the second batch arrived: its checkpoints vouch for leaves
    # received after it stopped being valid.
    received = await hub.pool.fetchval("SELECT max(received_at) FROM audit_leaves")

    def retire(key: dict[str, Any]) -> None:
        key["not_after"] = received.replace(microsecond=0).astimezone(UTC).isoformat()

    _edit_ring(hub, retire)


async def not_yet_valid_key_in_the_ring(hub: Hub) -> None:
    def postpone(key: dict[str, Any]) -> None:
        key["not_before"] = (
            (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()
        )

    _edit_ring(hub, postpone)


FIXTURES: dict[str, tuple[Callable[[Hub], Awaitable[None]], bool]] = {
    f.__name__: (f, ok)
    for f, ok in [
        (honest, True),
        (rotated_with_overlap, True),
        (rotated_without_overlap, True),
        (tampered_leaf, False),
        (removed_leaf, False),
        (bad_cosignature, False),
        (missing_cosignatures, False),
        (an_earlier_checkpoint_short_of_cosignatures, False),
        (forged_checkpoint, False),
        (future_cosignature, False),
        (inverted_window_in_the_ring, False),
        (retired_key_in_the_ring, False),
        (not_yet_valid_key_in_the_ring, False),
    ]
}


# -- the two verifiers, as `audit verify --full` and `audit export` + `audit trust` run them --


async def online(hub: Hub) -> str:
    try:
        log = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus, create_keys=False)
        await fsck.verify_log(
            hub.pool, log.verifier_trust(), log.config.origin, full=True, events=hub.verifier
        )
    except TamperEvidence as exc:
        return f"rejected: {exc}"
    except GovhubError as exc:  # the home's keys themselves are unusable
        return f"refused: {exc}"
    return "ok"


async def offline(hub: Hub) -> str:
    try:
        log = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus, create_keys=False)
        out = io.StringIO()
        await bundle.write_bundle(hub.pool, log.trust(), log.config.origin, out)
        trust = {**log.trust(), "participant_keys": await bundle.participant_keys(hub.pool)}
    except GovhubError as exc:
        return f"refused: {exc}"
    try:
        verify_bundle(json.loads(out.getvalue()), load_trust(trust, "trust file"))
    except VerificationError as exc:
        return f"rejected: {exc}"
    except BundleError as exc:
        return f"refused: {exc}"
    return "ok"


@pytest.mark.parametrize("name", list(FIXTURES))
async def test_online_and_offline_verification_agree(hub: Hub, name: str) -> None:
    fixture, honest_log = FIXTURES[name]
    await _log(hub)
    await fixture(hub)
    online_verdict, offline_verdict = await online(hub), await offline(hub)
    assert (online_verdict == "ok", offline_verdict == "ok") == (honest_log, honest_log), (
        f"online: {online_verdict}; offline: {offline_verdict}"
    )
