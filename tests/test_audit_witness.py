"""Checkpoints and witnesses: consistency before cosigning, k-of-n publication, alarms, rotation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hub import merkle
from hub.audit import note
from hub.audit.checkpoints import ALARM_SUBJECT, CHECKPOINT_SUBJECT, Checkpointer
from hub.audit.note import ALG_COSIGNATURE_V1, Checkpoint, Signer
from hub.audit.reader import TileReader, latest_checkpoint
from hub.audit.service import AuditLog, AuditService
from hub.audit.witness import HttpWitnessClient, Witness, format_request, witness_routes
from hub.errors import TamperEvidence
from hub.ports import free_port
from hub.runtime import Hub
from hub.topology import SYSTEM_STREAM

NOTICE = "gov.common.v1.Notice"
ORIGIN = "test.govhub.example/audit"


async def publish(hub: Hub, count: int, sender: str = "akto.civil") -> None:
    envs = [hub.seal(sender, NOTICE, {"title": f"t{i}", "body": "b"}) for i in range(count)]
    await hub.publisher.publish_many(envs)


class Tree:
    """An in-memory log signed by a log key, for driving a witness directly."""

    def __init__(self, log_key: Signer, leaves: list[bytes]) -> None:
        self.log_key, self.nodes, self.leaves = log_key, {}, leaves
        frontier = merkle.CompactRange()
        for leaf in leaves:
            for level, index, h in frontier.append(merkle.leaf_hash(leaf)):
                self.nodes[level, index] = h

    def hash_at(self, level: int, index: int) -> bytes:
        return self.nodes[level, index]

    def checkpoint(self, size: int) -> str:
        root = merkle.root_at(size, self.hash_at)
        return note.sign_note(Checkpoint(ORIGIN, size, root).body(), self.log_key)

    def request(self, old: int, size: int) -> bytes:
        proof = merkle.consistency_proof(old, size, self.hash_at) if old else []
        return format_request(old, proof, self.checkpoint(size))


@pytest.fixture
def log_key() -> Signer:
    return Signer.generate(ORIGIN)


def make_witness(folder: Path, log_key: Signer, alarms: list[dict] | None = None) -> Witness:
    async def on_alarm(alarm: dict) -> None:
        if alarms is not None:
            alarms.append(alarm)

    signer = Signer.generate("witness.akto.test", ALG_COSIGNATURE_V1)
    return Witness(signer, lambda: {ORIGIN: [log_key.verifier]}, folder, on_alarm)


async def test_a_witness_cosigns_only_checkpoints_that_extend_what_it_cosigned(
    tmp_path: Path, log_key: Signer
) -> None:
    tree = Tree(log_key, [b"leaf %d" % i for i in range(40)])
    witness = make_witness(tmp_path, log_key)
    first = await witness.add_checkpoint(tree.request(0, 10))
    assert first.ok and first.body.startswith(f"— {witness.name} ")
    cosigned = note.parse_note(tree.checkpoint(10) + first.body)
    verified, _ = note.verify_signatures(cosigned, [witness.verifier])
    assert verified and verified[0].timestamp is not None
    assert (await witness.add_checkpoint(tree.request(10, 40))).ok
    assert witness.state()[ORIGIN]["size"] == 40


async def test_a_witness_answers_a_stale_old_size_with_409_and_its_size(
    tmp_path: Path, log_key: Signer
) -> None:
    tree = Tree(log_key, [b"x%d" % i for i in range(20)])
    witness = make_witness(tmp_path, log_key)
    await witness.add_checkpoint(tree.request(0, 12))
    answer = await witness.add_checkpoint(tree.request(5, 20))
    assert (answer.status, answer.body, answer.content_type) == (409, "12\n", "text/x.tlog.size")


async def test_a_witness_remembers_its_size_across_restarts(
    tmp_path: Path, log_key: Signer
) -> None:
    tree = Tree(log_key, [b"x%d" % i for i in range(20)])
    await make_witness(tmp_path, log_key).add_checkpoint(tree.request(0, 12))
    restarted = make_witness(tmp_path, log_key)
    assert (await restarted.add_checkpoint(tree.request(0, 20))).status == 409
    assert (await restarted.add_checkpoint(tree.request(12, 20))).ok
    assert json.loads((tmp_path / "state.json").read_text())[ORIGIN]["size"] == 20


async def test_a_forked_history_is_refused_and_raises_a_signed_alarm(
    tmp_path: Path, log_key: Signer
) -> None:
    honest = Tree(log_key, [b"x%d" % i for i in range(20)])
    fork = Tree(log_key, [b"x%d" % i for i in range(10)] + [b"other"] * 10)
    alarms: list[dict] = []
    witness = make_witness(tmp_path, log_key, alarms)
    await witness.add_checkpoint(honest.request(0, 12))
    answer = await witness.add_checkpoint(fork.request(12, 20))
    assert answer.status == 422
    assert witness.state()[ORIGIN]["size"] == 12  # nothing cosigned, nothing moved
    assert len(alarms) == 1
    alarm = alarms[0]
    signed, _ = note.open_note(alarm["alarm"], [witness.verifier])
    assert signed.text.startswith(f"govhub-audit-alarm/v1\n{witness.name}\n{ORIGIN}\ncosigned 12 ")
    assert alarm["offered"] == fork.checkpoint(20) and alarm["cosigned"].startswith(ORIGIN)


async def test_two_roots_for_one_size_are_a_conflict_and_an_alarm(
    tmp_path: Path, log_key: Signer
) -> None:
    honest = Tree(log_key, [b"x%d" % i for i in range(12)])
    fork = Tree(log_key, [b"y%d" % i for i in range(12)])
    alarms: list[dict] = []
    witness = make_witness(tmp_path, log_key, alarms)
    await witness.add_checkpoint(honest.request(0, 12))
    answer = await witness.add_checkpoint(format_request(12, [], fork.checkpoint(12)))
    assert answer.status == 409 and "two different root hashes" in answer.body
    assert len(alarms) == 1


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda req, other: req.replace(b"old 0\n", b"old 01\n"), 400),
        (lambda req, other: b"hello", 400),
        (lambda req, other: req.replace(ORIGIN.encode(), b"elsewhere.example/log"), 404),
        (lambda req, other: other, 403),
        (lambda req, other: req.replace(b"old 0\n", b"old 99\n"), 400),
    ],
)
async def test_malformed_forged_or_unknown_checkpoints_are_refused(
    tmp_path: Path, log_key: Signer, mutate: object, status: int
) -> None:
    tree = Tree(log_key, [b"x%d" % i for i in range(12)])
    forged = Tree(Signer.generate(ORIGIN), [b"x%d" % i for i in range(12)]).request(0, 12)
    witness = make_witness(tmp_path, log_key)
    answer = await witness.add_checkpoint(mutate(tree.request(0, 12), forged))  # type: ignore[operator]
    assert answer.status == status
    assert witness.state() == {}


async def test_the_log_reaches_a_county_witness_over_http_and_resyncs_its_size(
    hub: Hub, tmp_path: Path
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    county = Witness(
        Signer.generate("witness.county.example", ALG_COSIGNATURE_V1),
        lambda: {audit.config.origin: audit.ring.verifiers()},
        tmp_path / "county-witness",
    )
    app = web.Application()
    app.add_routes(witness_routes(county))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        remote = HttpWitnessClient(county.verifier, f"http://127.0.0.1:{port}/")
        await audit.appender().catch_up()
        first = await Checkpointer(hub.pool, audit.ring, [remote], k=1).sign()
        assert first.published_at is not None and county.name in first.cosigners
        await publish(hub, 5)
        await audit.appender().catch_up()
        # A new checkpointer knows nothing of the witness: 409, then it resends from 409's size.
        second = await Checkpointer(hub.pool, audit.ring, [remote], k=1).sign()
        assert second.size == first.size + 5 and second.published_at is not None
    finally:
        await runner.cleanup()


async def test_a_checkpoint_without_k_cosignatures_is_stored_but_not_published(
    hub: Hub,
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    first = await audit.catch_up()
    await publish(hub, 3)
    await audit.appender().catch_up()
    dead = [
        HttpWitnessClient(Signer.generate(f"w{i}", ALG_COSIGNATURE_V1).verifier,
                          f"http://127.0.0.1:{free_port()}/", timeout=1.0)
        for i in range(2)
    ]  # fmt: skip
    signed = await Checkpointer(hub.pool, audit.ring, dead, k=1).sign()
    assert signed.size == first.size + 3 and signed.published_at is None
    latest = await latest_checkpoint(hub.pool)
    assert latest is not None and latest.size == first.size


async def test_the_log_refuses_to_sign_a_tree_that_does_not_extend_its_last_checkpoint(
    hub: Hub,
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    first = await audit.catch_up()
    await hub.pool.execute(
        "UPDATE audit_checkpoints SET root = sha256('another history'::bytea) WHERE size = $1",
        first.size,
    )
    await publish(hub, 2)
    await audit.appender().catch_up()
    with pytest.raises(TamperEvidence, match=f"does not extend checkpoint {first.size}"):
        await audit.checkpointer.sign()


async def test_the_log_refuses_to_sign_when_tiles_and_state_disagree(hub: Hub) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    await audit.catch_up()
    await publish(hub, 2)
    await audit.appender().catch_up()
    await hub.pool.execute("UPDATE audit_state SET root = sha256('forged'::bytea)")
    with pytest.raises(TamperEvidence, match="do not give the stored root"):
        await audit.checkpointer.sign()


async def test_during_a_key_rotation_both_keys_sign_and_old_trust_still_verifies(
    hub: Hub,
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    before = await audit.catch_up()
    old_vkey = audit.ring.signers()[0].verifier
    audit.ring.rotate(timedelta(hours=1))
    await publish(hub, 2)
    during = await audit.catch_up()
    origin = audit.config.origin
    log_sigs = [s for s in note.parse_note(during.note).signatures if s.name == origin]
    assert len(log_sigs) == 2
    for keys in ([old_vkey], [audit.ring.keys[1].signer.verifier]):
        note.open_checkpoint(during.note, keys, audit.config.origin)
    entries = audit.ring.trust_entries()
    assert entries[0]["not_after"] is not None and entries[1]["not_after"] is None
    later = datetime.now(UTC) + timedelta(hours=2)
    assert [s.key_id for s in audit.ring.signers(later)] == [audit.ring.keys[1].signer.key_id]
    assert before.size < during.size


def ORIGIN_OF(audit: AuditLog) -> str:
    return audit.config.origin


async def test_the_service_keeps_publishing_consistent_checkpoints_while_the_log_grows(
    hub: Hub,
) -> None:
    js = hub.nc.jetstream()
    sub = await js.subscribe(CHECKPOINT_SUBJECT, stream=SYSTEM_STREAM)
    service = AuditService(AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus))
    task = asyncio.create_task(service.run())
    try:
        total = await hub.pool.fetchval("SELECT count(*) FROM participants")
        for _ in range(3):
            await publish(hub, 50)
            await asyncio.sleep(0.7)
        info = await js.stream_info("GOVHUB")
        target = info.state.messages
        seen: list[Checkpoint] = []
        while not seen or seen[-1].size < target:
            msg = await sub.next_msg(timeout=30)
            cp, _ = note.open_checkpoint(msg.data, service.log.ring.verifiers())
            seen.append(cp)
        assert total and len(seen) >= 2
        tiles = TileReader(hub.pool)
        for old, new in itertools.pairwise(seen):
            proof = await tiles.consistency(old.size, new.size)
            merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sub.unsubscribe()


async def test_a_witness_in_serve_publishes_its_alarm_on_the_bus(hub: Hub) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    await audit.catch_up()
    witness = audit.witnesses[0]
    fork = Tree(audit.ring.signers()[0], [b"fork"] * 3)
    state = witness.state()[audit.config.origin]
    offered = note.sign_note(
        Checkpoint(audit.config.origin, state["size"] + 3, fork.nodes[0, 0]).body(),
        *audit.ring.signers(),
    )
    answer = await witness.add_checkpoint(
        format_request(state["size"], [fork.nodes[0, 0]], offered)
    )
    assert answer.status == 422
    sub = await hub.nc.jetstream().subscribe(ALARM_SUBJECT, stream=SYSTEM_STREAM)
    msg = await sub.next_msg(timeout=10)
    alarm = json.loads(msg.data)
    assert alarm["witness"] == witness.name and alarm["offered"] == offered
    note.open_note(alarm["alarm"], [witness.verifier])
    assert base64.b64decode(state["root"])  # the witness kept its cosigned state
    await sub.unsubscribe()


async def _witness_process(
    command: list[str], env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, int]:
    """`govhub audit witness` on a free port, once it answers as the witness.

    Another worker's server can take a free port between its choice and the witness's bind
    (a nats-server's monitor once did, and the log then talked to it): a port that answers as
    something else, or a witness that exits, is given up for another port.
    """
    for _ in range(5):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *command, "--listen", f"127.0.0.1:{port}", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/add-checkpoint"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if proc.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as r:
                        if r.status == 405:  # the witness's POST-only route: it is ours
                            return proc, port
                await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    pytest.fail("the witness process never answered on a port of its own")


async def test_a_county_runs_its_own_witness_process_that_the_log_reaches_over_http(
    hub: Hub, tmp_path: Path
) -> None:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    await audit.catch_up()
    log_vkey = audit.ring.signers()[0].verifier.vkey()
    govhub = str(Path(sys.executable).parent / "govhub")
    env = {**os.environ, "GOVHUB_HOME": str(tmp_path / "county"),
           "GOVHUB_KEY_PASSPHRASE": "the county's own secret"}  # fmt: skip
    command = [govhub, "audit", "witness", "--unit", "akto", "--log-key", log_vkey]
    printer = await asyncio.create_subprocess_exec(
        *command, "--print-key", env=env, stdout=asyncio.subprocess.PIPE
    )
    county_key = note.Verifier.from_vkey((await printer.communicate())[0].decode().strip())
    proc, port = await _witness_process(command, env)
    try:
        await publish(hub, 1)
        await audit.appender().catch_up()
        remote = HttpWitnessClient(county_key, f"http://127.0.0.1:{port}")
        cp = await Checkpointer(hub.pool, audit.ring, [remote], k=1).sign()
        assert cp.published_at is not None and county_key.name in cp.cosigners
        state = json.loads((tmp_path / "county/audit/witnesses/akto/state.json").read_text())
        assert state[audit.config.origin]["size"] == cp.size
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
