"""`govhub demo` in the gm suite: the whole scenario, every signature re-checked with gmssl.

The audit log holds every event the hub accepted or quarantined, headers and body whole
(docs/protocol.md); so reading it back after the demo and verifying each sender signature with
an independent SM2 implementation covers every signed event that crossed the wire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.envelope import signing_input
from hub.suites import GM
from tests.gm_support import check_gm_event, gmssl_sm3, gmssl_verify

pytestmark = pytest.mark.servers  # starts its own servers (embedded, through the CLI)


def _govhub(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


async def _audit_record(
    dsn: str,
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, bytes]], list[str]]:
    """Every audit leaf, every registered sender key (algorithm, raw key), every checkpoint."""
    conn = await asyncpg.connect(dsn)
    try:
        leaves = [json.loads(bytes(r["leaf"])) for r in await conn.fetch(
            "SELECT leaf FROM audit_leaves ORDER BY idx")]  # fmt: skip
        keys = {
            f"{r['participant_id']}/{r['key_id']}": (r["algorithm"], bytes(r["public_key"]))
            for r in await conn.fetch("SELECT * FROM participant_keys")
        }
        notes = [r["note"] for r in await conn.fetch("SELECT note FROM audit_checkpoints")]
    finally:
        await conn.close()
    return leaves, keys, notes


def _check_audit_in_gm(home: Path, tmp_path: Path) -> None:
    """Every checkpoint carries the Ed25519 line and an SM2 line gmssl verifies; the offline
    verifier checks both."""
    bundle_path = tmp_path / "bundle.json"
    exported = _govhub(home, "audit", "export", "--out", str(bundle_path))
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads(bundle_path.read_text())
    sm2_keys = bundle["log_keys_sm2"]
    assert len(sm2_keys) == 1 and len(bundle["log_keys"]) >= 1
    vkey = sm2_keys[0]["vkey"]
    name, key_hex, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    assert raw.startswith(b"\xffgovhub-sm2-sm3") and len(raw) == 15 + 65
    point = raw[15:]
    assert gmssl_sm3(name.encode() + b"\n" + raw)[:4].hex() == key_hex
    for text in bundle["checkpoints"]:
        body, _, block = text.rpartition("\n\n")
        lines = [line.removeprefix("— ") for line in block.strip("\n").split("\n")]
        sm2_lines = [base64.b64decode(b64) for n, b64 in (line.split(" ") for line in lines)
                     if n == name and base64.b64decode(b64)[:4].hex() == key_hex]  # fmt: skip
        assert len(sm2_lines) == 1, text
        assert gmssl_verify(point, sm2_lines[0][4:], (body + "\n").encode())
        assert len(lines) >= 2  # the Ed25519 line stays for C2SP verifiers
    verified = subprocess.run(
        [sys.executable, "-m", "hub.audit.verify", str(bundle_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["sm2_checkpoint_signatures"] is True


def test_the_demo_in_gm_signs_everything_with_sm2_that_gmssl_verifies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = _govhub(home, "up", "--suite", "gm", "--json")
    assert up.returncode == 0, up.stderr
    try:
        assert json.loads(up.stdout)["suite"] == "gm"
        assert 'suite = "gm"' in (home / "config.toml").read_text()
        result = _govhub(home, "demo", "--json")  # the suite comes from the home's config.toml
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        events = report["chapters"]["events"]
        assert events["participants"] == 56 and len(events["published"]) == 6
        assert sorted(r["reason"] for r in events["rejected"]) == [
            "bad_signature",
            "malformed_body",
        ]

        listing = json.loads(_govhub(home, "participant", "list", "--json").stdout)
        for p in listing["participants"]:
            for k in p["keys"]:
                assert k["algorithm"] == "sm2" and len(base64.b64decode(k["public_key"])) == 65

        dsn = json.loads((home / "run" / "servers.json").read_text())["postgres"]["url"]
        leaves, keys, _notes = asyncio.run(_audit_record(dsn))
        checked = refused = 0
        for leaf in leaves:
            headers = {k.lower(): v for k, v in leaf["headers"].items()}
            if "govhub-sig" not in headers and "govhub-batch-sig" not in headers:
                continue
            assert "govhub-batch-sig" not in headers, "gm events are signed one by one (v1-sm2)"
            body = base64.b64decode(leaf["body"])
            found = keys.get(headers.get("govhub-key", ""))
            if leaf["verdict"] == "accepted":
                assert found is not None and found[0] == "sm2"
                check_gm_event(headers, leaf["subject"], body, found[1])
                checked += 1
            elif leaf["reason"] == "bad_signature" and found is not None:
                # The demo's forgery: gmssl must refuse it as the hub did.
                signature = base64.b64decode(headers["govhub-sig"])
                fields = [headers[f"ce-{n}"] for n in ("id", "source", "type", "time")]
                message = signing_input(leaf["subject"], *fields, body, GM)
                assert not gmssl_verify(found[1], signature, message)
                refused += 1
        assert checked >= 100, checked
        assert refused >= 1
        _check_audit_in_gm(home, tmp_path)
    finally:
        down = _govhub(home, "down")
        assert down.returncode == 0, down.stderr
