"""`govhub audit ...` as auditors run it, checked with an independent RFC 9162 implementation;
tampering with PostgreSQL rows caught by `verify --full`; bundles verified offline."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cryptography
import pytest

from hub.audit import fsck
from hub.audit.service import AuditLog
from hub.errors import ConfigError, TamperEvidence
from hub.home import Settings
from hub.runtime import Hub
from tests import rfc9162

NOTICE = "gov.common.v1.Notice"
GOVHUB = str(Path(sys.executable).parent / "govhub")
# Rewrites the stream sequence inside a leaf's JSON: a change no signature covers.
ALTER = (
    "convert_to(replace(convert_from(leaf, 'UTF8'), '\"stream_seq\":', '\"stream_seq\":9'), 'UTF8')"
)


async def govhub(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "GOVHUB_HOME": str(settings.home.root),
        "GOVHUB_NATS_URL": settings.nats_url or "",
        "GOVHUB_PG_DSN": settings.pg_dsn or "",
        "GOVHUB_LOG_LEVEL": "ERROR",
    }
    proc = await asyncio.create_subprocess_exec(
        GOVHUB, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def govhub_json(settings: Settings, *args: str) -> Any:
    code, out, err = await govhub(settings, *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
async def logged(hub: Hub) -> list[str]:
    """A log with notices from three senders, fully checkpointed; returns their event ids."""
    envs = [
        hub.seal(sender, NOTICE, {"title": f"通知 {i}", "body": "正文"})
        for i in range(30)
        for sender in ("akto.civil", "artux.stats", "wuqia.edu")
    ]
    await hub.publisher.publish_many(envs)
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    return [e.event_id for e in envs]


def names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


def b64(text: str) -> bytes:
    return base64.b64decode(text)


async def test_audit_proof_json_holds_exactly_the_documented_fields_and_verifies_independently(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    vkey = (await govhub(hub_settings, "audit", "pubkey"))[1].strip()
    proof = await govhub_json(hub_settings, "audit", "proof", logged[10])
    assert set(proof) == {
        "event_id", "leaf_index", "tree_size", "leaf", "leaf_hash", "inclusion", "checkpoint",
    }  # fmt: skip
    origin, size, root, cosigners = rfc9162.open_checkpoint(proof["checkpoint"], vkey)
    assert (
        origin == AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).config.origin
        and size == proof["tree_size"]
    )
    assert len(cosigners) >= 3
    leaf = b64(proof["leaf"])
    assert rfc9162.leaf(leaf) == b64(proof["leaf_hash"])
    assert json.loads(leaf)["headers"]["ce-id"] == logged[10]
    hashes = [b64(h) for h in proof["inclusion"]]
    assert rfc9162.verify_inclusion(rfc9162.leaf(leaf), proof["leaf_index"], size, hashes, root)
    assert not rfc9162.verify_inclusion(rfc9162.leaf(leaf + b" "), proof["leaf_index"], size,
                                        hashes, root)  # fmt: skip


async def test_audit_consistency_json_verifies_independently(
    hub_settings: Settings, logged: list[str]
) -> None:
    data = await govhub_json(hub_settings, "audit", "consistency", "13", "90")
    assert set(data) == {"old_size", "new_size", "old_root", "new_root", "proof"}
    assert rfc9162.verify_consistency(
        13, 90, b64(data["old_root"]), b64(data["new_root"]), [b64(h) for h in data["proof"]]
    )
    code, _, err = await govhub(hub_settings, "audit", "consistency", "90", "100000")
    assert code == 1 and "sizes must satisfy" in err


async def test_audit_search_filters_and_its_proofs_verify(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    found = await govhub_json(
        hub_settings, "audit", "search", "--participant", "artux.stats", "--type", NOTICE,
        "--since", "2020-01-01", "--until", "2100-01-01T00:00:00Z", "--with-proofs",
    )  # fmt: skip
    assert found["count"] == 30
    assert {e["event_id"] for e in found["entries"]} == set(logged[1::3])
    vkey = (
        AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
        .ring.signers()[0]
        .verifier.vkey()
    )
    _, size, root, _ = rfc9162.open_checkpoint(found["checkpoint"], vkey)
    for entry in found["entries"]:
        hashes = [b64(h) for h in entry["inclusion"]]
        assert rfc9162.verify_inclusion(b64(entry["leaf_hash"]), entry["leaf_index"], size,
                                        hashes, root)  # fmt: skip
    none = await govhub_json(hub_settings, "audit", "search", "--since", "2100-01-01")
    assert none["count"] == 0


async def test_audit_checkpoint_prints_the_cosigned_note_and_pubkey_its_key(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    code, note_text, _ = await govhub(hub_settings, "audit", "checkpoint")
    assert code == 0
    vkey = (await govhub(hub_settings, "audit", "pubkey"))[1].strip()
    _, size, _, cosigners = rfc9162.open_checkpoint(note_text, vkey)
    assert size == await hub.pool.fetchval("SELECT size FROM audit_state")
    assert all(name.startswith("witness.") for name in cosigners)


async def test_an_event_not_in_the_log_is_reported_in_one_sentence(
    hub_settings: Settings, logged: list[str]
) -> None:
    code, out, err = await govhub(hub_settings, "audit", "proof", "no-such-event", "--json")
    assert code == 1 and out == ""
    assert err.startswith("govhub: event no-such-event is not in the audit log")


async def test_search_takes_the_short_type_name_its_table_shows(
    hub_settings: Settings, logged: list[str]
) -> None:
    code, table, _ = await govhub(hub_settings, "audit", "search", "--participant", "wuqia.edu")
    assert code == 0 and " Notice " in table  # what a person then types
    short = await govhub_json(hub_settings, "audit", "search", "--type", "Notice")
    full = await govhub_json(hub_settings, "audit", "search", "--type", NOTICE)
    assert short["count"] == full["count"] == 90
    code, out, err = await govhub(hub_settings, "audit", "search", "--type", "Notise")
    assert code == 1 and out == ""
    assert err.strip() == f"govhub: no event type is named Notise; close ones: {NOTICE}"


async def test_proof_before_any_checkpoint_says_serve_appends_or_checkpoint_fresh_signs(
    hub: Hub, hub_settings: Settings
) -> None:
    AuditLog(
        hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus
    )  # the log key exists (as after a first `govhub serve`), nothing is appended
    env = hub.seal("akto.civil", NOTICE, {"title": "t", "body": "b"})
    await hub.publisher.publish(env)  # on the bus; nothing appends it without `govhub serve`
    code, _, err = await govhub(hub_settings, "audit", "proof", env.event_id)
    assert code == 1
    sentence, hint = err.strip().splitlines()
    assert sentence == f"govhub: event {env.event_id} is not in the audit log"
    assert "`govhub serve` appends events to the log and checkpoints them" in hint
    code, _, err = await govhub(hub_settings, "audit", "checkpoint")
    assert code == 1
    assert err.startswith("govhub: no checkpoint has been published yet")
    assert "`govhub audit checkpoint --fresh` signs one now" in err


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("missing/bundle.json", "the folder {tmp}/missing does not exist"),
        (".", "it is a folder; name a file inside it"),
        ("full", "no space left on the device"),
    ],
    ids=["missing folder", "a folder", "a full device"],
)
async def test_export_and_trust_out_refuse_what_they_cannot_write_in_one_sentence(
    hub_settings: Settings,
    logged: list[str],
    tmp_path: Path,
    full_device: Path,
    target: str,
    words: str,
) -> None:
    out = str(full_device if target == "full" else tmp_path / target)
    for command in ("export", "trust"):
        code, _, err = await govhub(hub_settings, "audit", command, "--out", out)
        assert code == 1
        assert err.strip() == f"govhub: cannot write {out}: " + words.format(tmp=tmp_path)
    assert stat.S_ISCHR(os.stat(full_device).st_mode)  # never replaced by a regular file
    assert sorted(names(tmp_path)) == ["full", "home", "nats"]  # no folder made, no temp file


async def test_trust_json_with_out_says_what_it_wrote(
    hub_settings: Settings, logged: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "trust.json"
    summary = await govhub_json(hub_settings, "audit", "trust", "--out", str(out))
    trust = json.loads(out.read_text(encoding="utf-8"))
    assert summary == {
        "out": str(out),
        "log_keys": len(trust["log_keys"]),
        "witness_keys": len(trust["witnesses"]["keys"]),
        "witness_k": trust["witnesses"]["k"],
        "participant_keys": len(trust["participant_keys"]),
    }
    assert summary["participant_keys"] > 50


async def test_verify_and_verify_full_pass_on_an_untouched_log(
    hub_settings: Settings, logged: list[str]
) -> None:
    quick = await govhub_json(hub_settings, "audit", "verify")
    assert quick["ok"] and quick["checkpoints"] >= 1 and not quick["full"]
    full = await govhub_json(hub_settings, "audit", "verify", "--full")
    assert full["leaves_checked"] == full["tree_size"] and full["accepted_verified"] >= 90


async def full_check(hub: Hub) -> TamperEvidence:
    audit = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus, create_keys=False)
    with pytest.raises(TamperEvidence) as info:
        await fsck.verify_log(hub.pool, audit.verifier_trust(), audit.config.origin,
                              full=True, events=hub.verifier)  # fmt: skip
    return info.value


async def test_a_leaf_altered_in_postgresql_is_named_by_verify_full(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    await hub.pool.execute(
        f"UPDATE audit_leaves SET leaf = {ALTER} WHERE event_id = $1",
        logged[9],
    )
    index = await hub.pool.fetchval("SELECT idx FROM audit_leaves WHERE event_id = $1", logged[9])
    code, out, err = await govhub(hub_settings, "audit", "verify", "--full", "--json")
    assert code == 1
    assert json.loads(out)["index"] == index
    assert f"{index}" in err.splitlines()[0]


async def test_a_leaf_removed_from_postgresql_is_named_by_verify_full(
    hub: Hub, logged: list[str]
) -> None:
    await hub.pool.execute("DELETE FROM audit_leaves WHERE idx = 40")
    error = await full_check(hub)
    assert error.index == 40 and "leaf index 40 is missing" in str(error)


async def test_a_leaf_inserted_into_postgresql_is_named_by_verify_full(
    hub: Hub, logged: list[str]
) -> None:
    async with hub.pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE audit_leaves SET idx = idx + 1000000 WHERE idx >= 50")
        await conn.execute("UPDATE audit_leaves SET idx = idx - 999999 WHERE idx >= 1000000")
        await conn.execute(
            "INSERT INTO audit_leaves SELECT 50, 'inserted', digest, leaf, 'inserted', source,"
            " type, subject, verdict, reason, event_time, received_at, stream, stream_seq,"
            " origin_stream, origin_seq FROM audit_leaves WHERE idx = 49"
        )
    error = await full_check(hub)
    assert error.index == 50


async def test_leaves_reordered_in_postgresql_are_named_by_verify_full(
    hub: Hub, logged: list[str]
) -> None:
    async with hub.pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE audit_leaves SET idx = 1000000 WHERE idx = 60")
        await conn.execute("UPDATE audit_leaves SET idx = 60 WHERE idx = 61")
        await conn.execute("UPDATE audit_leaves SET idx = 61 WHERE idx = 1000000")
    error = await full_check(hub)
    assert error.index == 60


async def test_a_leaf_appended_behind_the_trees_back_is_named_by_verify_full(
    hub: Hub, logged: list[str]
) -> None:
    size = await hub.pool.fetchval("SELECT size FROM audit_state")
    await hub.pool.execute(
        "INSERT INTO audit_leaves SELECT idx + 1, 'extra', digest, leaf, 'extra', source, type,"
        " subject, verdict, reason, event_time, received_at, stream, stream_seq, origin_stream,"
        " origin_seq FROM audit_leaves WHERE idx = $1",
        size - 1,
    )
    error = await full_check(hub)
    assert error.index == size


async def test_a_rewritten_history_with_recomputed_tiles_contradicts_the_signed_checkpoints(
    hub: Hub, logged: list[str]
) -> None:
    # The operator alters a leaf *and* rewrites every tile and the state to match: only the
    # signed checkpoints (and the witnesses' copies of them) still remember the old root.
    from hub.audit import store
    from hub.merkle import CompactRange, leaf_hash

    await hub.pool.execute(
        f"UPDATE audit_leaves SET leaf = {ALTER} WHERE event_id = $1",
        logged[15],
    )
    rows = await hub.pool.fetch("SELECT leaf FROM audit_leaves ORDER BY idx")
    state = store.TreeState(CompactRange())
    tiles = state.extend([leaf_hash(bytes(r["leaf"])) for r in rows])
    async with hub.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM audit_tiles")
        await conn.executemany("INSERT INTO audit_tiles VALUES ($1, $2, $3)", tiles)
        await conn.execute(
            "UPDATE audit_state SET root = $1, compact_range = $2",
            state.crange.root(),
            state.crange.to_bytes(),
        )
    error = await full_check(hub)
    assert "signed checkpoint" in str(error)


async def test_an_exported_bundle_verifies_offline_with_no_servers(
    hub: Hub, hub_settings: Settings, logged: list[str], tmp_path: Path
) -> None:
    bundle, trust = tmp_path / "bundle.json", tmp_path / "trust.json"
    summary = await govhub_json(hub_settings, "audit", "export", "--out", str(bundle))
    assert summary["entries"] == summary["tree_size"]
    code, _, err = await govhub(hub_settings, "audit", "trust", "--out", str(trust))
    assert code == 0, err
    offline_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.audit.verify", str(bundle), "--trust", str(trust), "--json",
        env=offline_env, cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err_b = await proc.communicate()
    assert proc.returncode == 0, err_b.decode()
    report = json.loads(out)
    assert report["ok"] and report["entries"] == summary["tree_size"]
    assert report["accepted_verified"] >= 90 and report["warnings"] == []
    # A truncated copy is refused as unusable input, not half-verified.
    text = bundle.read_text()
    bundle.write_text(text[: len(text) // 2])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.audit.verify", str(bundle), env=offline_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_b = await proc.communicate()
    assert proc.returncode == 2 and b"truncated or corrupted" in err_b


async def test_a_filtered_export_holds_only_the_matching_events(
    hub: Hub, hub_settings: Settings, logged: list[str], tmp_path: Path
) -> None:
    bundle = tmp_path / "wuqia.json"
    await govhub_json(hub_settings, "audit", "export", "--participant", "wuqia.edu",
                      "--out", str(bundle))  # fmt: skip
    data = json.loads(bundle.read_text())
    ids = {json.loads(b64(e["leaf"]))["headers"]["ce-id"] for e in data["entries"]}
    assert ids == set(logged[2::3]) and "entries_range" not in data


async def test_rotate_key_makes_pubkey_list_two_keys_that_both_sign(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    rotated = await govhub_json(hub_settings, "audit", "rotate-key", "--overlap", "2")
    assert len(rotated["log_keys"]) == 2 and rotated["log_keys"][0]["not_after"]
    keys = (await govhub(hub_settings, "audit", "pubkey"))[1].split()
    assert len(keys) == 2
    fresh = await govhub_json(hub_settings, "audit", "checkpoint", "--fresh")
    await hub.publisher.publish(hub.seal("akto.civil", NOTICE, {"title": "x", "body": "y"}))
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    latest = await govhub_json(hub_settings, "audit", "checkpoint")
    assert latest["size"] == fresh["size"] + 1
    for vkey in keys:
        assert rfc9162.open_checkpoint(latest["note"], vkey)[1] == latest["size"]


async def test_rotate_key_refuses_an_overlap_that_would_invert_the_old_keys_window(
    hub: Hub, hub_settings: Settings, logged: list[str], tmp_path: Path
) -> None:
    # Regression: `--overlap -5` was accepted; the old key's window then ended before it began,
    # `audit verify` said OK and the offline verifier rejected every checkpoint it had signed.
    ring = json.loads((await govhub(hub_settings, "audit", "trust"))[1])["log_keys"]
    for bad in ("-5", "nan", "inf", "1e9"):
        code, out, err = await govhub(hub_settings, "audit", "rotate-key", "--overlap", bad)
        assert (code, out) == (1, "") and "--overlap must be a number of hours from 0" in err
        assert "Traceback" not in err and "internal error" not in err
    assert json.loads((await govhub(hub_settings, "audit", "trust"))[1])["log_keys"] == ring
    # A rotation without overlap, right after a checkpoint: the old key's last checkpoint stays
    # inside its window, and both verifiers say so.
    await govhub_json(hub_settings, "audit", "rotate-key", "--overlap", "0")
    await hub.publisher.publish(hub.seal("akto.civil", NOTICE, {"title": "x", "body": "y"}))
    await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()
    assert (await govhub_json(hub_settings, "audit", "verify", "--full"))["ok"]
    bundle, trust = tmp_path / "bundle.json", tmp_path / "trust.json"
    await govhub_json(hub_settings, "audit", "export", "--out", str(bundle))
    assert (await govhub(hub_settings, "audit", "trust", "--out", str(trust)))[0] == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.audit.verify", str(bundle), "--trust", str(trust),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_b = await proc.communicate()
    assert proc.returncode == 0, err_b.decode()


async def test_the_key_ring_closes_a_window_on_the_next_whole_second(hub: Hub) -> None:
    ring = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).ring
    moment = datetime(2030, 1, 1, 12, 0, 0, 600_000, tzinfo=UTC)
    new = ring.rotate(timedelta(0), now=moment)
    old = ring.keys[0]
    assert new.not_before == moment.replace(microsecond=0)
    assert old.not_after == moment.replace(microsecond=0) + timedelta(seconds=1)
    assert old.valid_at(moment) and new.valid_at(moment)
    with pytest.raises(ConfigError, match="cannot be negative"):
        ring.rotate(timedelta(hours=-5), now=moment)
    with pytest.raises(ConfigError, match="after this machine's clock"):
        ring.rotate(timedelta(hours=1), now=moment - timedelta(days=1))


async def test_a_checkpoint_forged_with_another_key_fails_verify(
    hub: Hub, hub_settings: Settings, logged: list[str]
) -> None:
    from hub.audit.note import Checkpoint, Signer, sign_note

    row = await hub.pool.fetchrow("SELECT size, root FROM audit_checkpoints ORDER BY size DESC")
    origin = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).config.origin
    forged = sign_note(Checkpoint(origin, row["size"], bytes(row["root"])).body(),
                       Signer.generate(origin))  # fmt: skip
    await hub.pool.execute("UPDATE audit_checkpoints SET note = $1 WHERE size = $2",
                           forged, row["size"])  # fmt: skip
    code, _, err = await govhub(hub_settings, "audit", "verify")
    assert code == 1
    assert err.startswith(
        f"govhub: stored checkpoint (tree size {row['size']}) has no valid signature from a "
        "trusted log key"
    )


def test_the_offline_verifier_runs_from_exactly_the_files_docs_audit_md_lists(
    tmp_path: Path,
) -> None:
    from tests.test_audit_verify import standard_bundle

    repo = Path(__file__).resolve().parent.parent
    docs = (repo / "docs" / "audit.md").read_text(encoding="utf-8")
    paragraph = docs.split("**What the auditor's machine needs.**", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"`(hub/[\w/]+\.py)`", paragraph)
    assert len(listed) == 3, paragraph
    (tmp_path / "bundle.json").write_text(json.dumps(standard_bundle()), encoding="utf-8")
    # The auditor's Python has `cryptography` and no govhub. This one has govhub installed in
    # editable mode, whose import hook would serve any missing hub/<module>.py from the
    # repository; `-S` skips the site hooks, and the path holds only the machine folder and the
    # folder `cryptography` is installed in.
    libraries = str(Path(cryptography.__file__).resolve().parent.parent)

    def verify(files: list[str]) -> subprocess.CompletedProcess[str]:
        machine = tmp_path / f"machine-{len(files)}-{'-'.join(Path(f).stem for f in files)}"
        for name in files:
            (machine / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / name, machine / name)
        return subprocess.run(
            [sys.executable, "-S", "-m", "hub.audit.verify", str(tmp_path / "bundle.json")],
            cwd=machine, env={"PATH": os.environ["PATH"], "PYTHONPATH": libraries},
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    complete = verify(listed)
    assert complete.returncode == 0, complete.stderr
    assert "OK: audit bundle verified" in complete.stdout
    for missing in listed:
        short = verify([f for f in listed if f != missing])
        assert short.returncode != 0, f"{missing} is listed but not needed"
