"""The offline verifier over evidence bundles built here from a real (in-memory) log."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hub import merkle
from hub.audit import note
from hub.audit.note import ALG_COSIGNATURE_V1, Checkpoint, Signer
from hub.audit.verify import (
    BundleError,
    VerificationError,
    load_trust,
    main,
    sender_signing_input,
    verify_bundle,
)
from hub.merkle import CompactRange

ORIGIN = "kezhou.gov.cn/audit/2026"
NOW = 1_780_000_000  # 2026-05-28, after every timestamp used here
B64 = base64.b64encode


def b64(data: bytes) -> str:
    return B64(data).decode()


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def canonical(obj: dict[str, Any]) -> bytes:
    """Leaf bytes v1, exactly as the appender writes them."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Sender:
    def __init__(self, participant: str) -> None:
        self.participant, self.key = participant, Ed25519PrivateKey.generate()
        self.key_id = hashlib.sha256(raw_public(self.key)).digest()[:8].hex()

    def registry_entry(self, **overrides: Any) -> dict[str, Any]:
        entry = {
            "participant": self.participant,
            "key_id": self.key_id,
            "public_key": b64(raw_public(self.key)),
            "not_before": "2026-01-01T00:00:00Z",
            "not_after": None,
            "revoked_at": None,
        }
        return {**entry, **overrides}

    def event_leaf(
        self, seq: int, *, quarantined: bool = False, body: bytes | None = None
    ) -> bytes:
        subject = f"gov.out.{self.participant}.doc"
        body = body if body is not None else b"\xc3\x01" + bytes(8) + "公文 %d".encode() % seq
        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"01JEVENT{seq:06d}",
            "ce-source": self.participant,
            "ce-type": "gov.exchange.v1.DocumentSent",
            "ce-time": f"2026-03-01T08:{seq % 60:02d}:00Z",
            "content-type": "application/avro",
            "govhub-key": f"{self.participant}/{self.key_id}",
            "Nats-Msg-Id": f"01JEVENT{seq:06d}",
        }
        signature = self.key.sign(sender_signing_input(subject, headers, body))
        if quarantined:
            signature = bytes(64)
        headers["govhub-sig"] = b64(signature)
        return canonical(
            {
                "v": 1,
                "subject": subject,
                "headers": headers,
                "body": b64(body),
                "verdict": "quarantined" if quarantined else "accepted",
                "reason": "bad-signature" if quarantined else None,
                "detail": None,
                "stream": "GOV_EVENTS",
                "stream_seq": seq + 1,
                "origin": None,
                "received_at": f"2026-03-01T09:{seq % 60:02d}:00Z",
            }
        )


class Log:
    """A minimal log: leaves, stored complete subtrees, a signer and witnesses."""

    def __init__(self, leaves: list[bytes], signer: Signer, witnesses: list[Signer]) -> None:
        self.leaves, self.signer, self.witnesses = leaves, signer, witnesses
        self.store: dict[tuple[int, int], bytes] = {}
        frontier = CompactRange()
        for leaf in leaves:
            for level, index, h in frontier.append(merkle.leaf_hash(leaf)):
                self.store[level, index] = h

    def hash_at(self, level: int, index: int) -> bytes:
        return self.store[level, index]

    def checkpoint(self, size: int, cosign_at: int = 1_772_400_000) -> str:
        body = Checkpoint(ORIGIN, size, merkle.root_at(size, self.hash_at)).body()
        signed = note.sign_note(body, self.signer)
        for w in self.witnesses:
            signed = note.cosign(signed, w, timestamp=cosign_at)
        return signed

    def bundle(self, sizes: list[int], indexes: list[int], **extra: Any) -> dict[str, Any]:
        last = sizes[-1]
        return {
            "format": "govhub-audit-bundle-v1",
            "origin": ORIGIN,
            "log_keys": [
                {"vkey": self.signer.verifier.vkey(), "not_before": None, "not_after": None}
            ],
            "witnesses": {
                "keys": [w.verifier.vkey() for w in self.witnesses],
                "k": len(self.witnesses),
            },
            "participant_keys": [s.registry_entry() for s in SENDERS],
            "checkpoints": [self.checkpoint(s) for s in sizes],
            "consistency": [
                {
                    "old_size": a,
                    "new_size": b,
                    "proof": [b64(h) for h in merkle.consistency_proof(a, b, self.hash_at)],
                }
                for a, b in itertools.pairwise(sizes)
            ],
            "entries": [
                {
                    "leaf_index": i,
                    "leaf": b64(self.leaves[i]),
                    "inclusion": [b64(h) for h in merkle.inclusion_proof(i, last, self.hash_at)],
                }
                for i in indexes
            ],
            **extra,
        }


SENDERS = [Sender("artux.finance"), Sender("kashgar.health")]
LOG_KEY = Signer.generate(ORIGIN)
WITNESSES = [Signer.generate(f"witness.county{i}.gov.cn", ALG_COSIGNATURE_V1) for i in range(2)]


def standard_leaves(n: int = 20) -> list[bytes]:
    return [SENDERS[i % 2].event_leaf(i, quarantined=(i == 7)) for i in range(n)]


def standard_bundle(**extra: Any) -> dict[str, Any]:
    log = Log(standard_leaves(), LOG_KEY, WITNESSES)
    return log.bundle([5, 12, 20], list(range(20)), **extra)


def trust_for(bundle: dict[str, Any]) -> dict[str, Any]:
    return {k: bundle[k] for k in ("log_keys", "witnesses", "participant_keys")}


def verify(bundle: dict[str, Any], trust: dict[str, Any] | None = None) -> Any:
    return verify_bundle(bundle, load_trust(trust, "trust file") if trust else None, now=NOW)


def failure(bundle: dict[str, Any], trust: dict[str, Any] | None = None) -> str:
    with pytest.raises(VerificationError) as info:
        verify(bundle, trust)
    return str(info.value)


def test_a_good_bundle_verifies_and_reports_what_it_established() -> None:
    bundle = standard_bundle(entries_range={"start": 0, "end": 20})
    report = verify(bundle, trust_for(bundle))
    assert (report.tree_size, report.checkpoints, report.entries) == (20, 3, 20)
    assert report.accepted_verified == 19
    assert report.quarantined == [{"leaf_index": 7, "reason": "bad-signature"}]
    assert len(report.witnesses) == 2 and report.trust_source == "trust file"
    assert report.warnings == []


def test_without_a_trust_file_the_report_warns_that_keys_came_from_the_bundle() -> None:
    report = verify(standard_bundle())
    assert report.trust_source == "bundle"
    assert "pass --trust" in report.warnings[0]


def test_a_flipped_byte_in_a_leaf_fails_its_inclusion_proof() -> None:
    bundle = standard_bundle()
    leaf = bytearray(base64.b64decode(bundle["entries"][3]["leaf"]))
    leaf[10] ^= 1
    bundle["entries"][3]["leaf"] = b64(bytes(leaf))
    assert failure(bundle) == (
        "entry 3 (leaf index 3): inclusion proof does not lead to the checkpoint root"
    )


def test_an_entry_removed_from_a_claimed_range_is_reported() -> None:
    bundle = standard_bundle(entries_range={"start": 0, "end": 20})
    del bundle["entries"][4]
    assert failure(bundle) == "leaf index 4 is missing from the claimed range"


def test_an_event_dropped_from_history_breaks_consistency_with_the_earlier_checkpoint() -> None:
    leaves = standard_leaves()
    honest = Log(leaves, LOG_KEY, WITNESSES).bundle([12], [0])
    rewritten = Log(leaves[:9] + leaves[10:], LOG_KEY, WITNESSES)
    bundle = rewritten.bundle([12, 19], [0])
    bundle["checkpoints"][0] = honest["checkpoints"][0]
    assert failure(bundle).startswith("checkpoints 0 and 1: consistency proof does not lead")


def test_a_checkpoint_forged_with_another_key_is_rejected() -> None:
    bundle = standard_bundle()
    trust = trust_for(bundle)
    forger = Log(standard_leaves(), Signer.generate(ORIGIN), WITNESSES)
    bundle["checkpoints"][1] = forger.checkpoint(12)
    assert failure(bundle, trust) == (
        "checkpoint 1 (tree size 12) has no valid signature from a trusted log key"
    )


def test_a_forked_consistency_proof_is_rejected() -> None:
    bundle = standard_bundle()
    fork = Log([b"fork %d" % i for i in range(20)], LOG_KEY, WITNESSES)
    bundle["consistency"][1]["proof"] = [
        b64(h) for h in merkle.consistency_proof(12, 20, fork.hash_at)
    ]
    assert failure(bundle).startswith("checkpoints 1 and 2: consistency proof does not lead")


def test_an_equivocating_log_is_caught_by_consistency_between_its_own_checkpoints() -> None:
    bundle = standard_bundle()
    fork = Log(standard_leaves()[:12] + [b"other"] * 8, LOG_KEY, WITNESSES)
    bundle["checkpoints"][2] = fork.checkpoint(20)
    assert failure(bundle).startswith("checkpoints 1 and 2: consistency proof")


def test_an_event_body_altered_before_logging_fails_its_sender_signature() -> None:
    leaves = standard_leaves()
    leaves[4] = SENDERS[0].event_leaf(4).replace(b'"body":"', b'"body":"AAAA', 1)
    bundle = Log(leaves, LOG_KEY, WITNESSES).bundle([20], [4])
    assert failure(bundle) == (
        "entry 0 (leaf index 4): sender signature does not verify with key "
        f"artux.finance/{SENDERS[0].key_id}"
    )


def test_quarantined_entries_are_reported_without_failing_on_their_signature() -> None:
    report = verify(Log(standard_leaves(), LOG_KEY, WITNESSES).bundle([20], [7]))
    assert report.quarantined == [{"leaf_index": 7, "reason": "bad-signature"}]


def test_an_event_signed_after_its_key_was_revoked_fails() -> None:
    bundle = standard_bundle()
    bundle["participant_keys"][0]["revoked_at"] = "2026-03-01T08:01:00Z"
    assert failure(bundle) == (
        "entry 2 (leaf index 2): sender key "
        f"artux.finance/{SENDERS[0].key_id} was revoked before the event's ce-time"
    )


def test_an_event_outside_its_key_validity_window_fails() -> None:
    bundle = standard_bundle()
    bundle["participant_keys"][1]["not_before"] = "2026-03-02T00:00:00+08:00"
    assert "was not valid at the event's ce-time" in failure(bundle)


def test_keys_shipped_in_the_bundle_are_ignored_when_a_trust_file_is_given() -> None:
    bundle = standard_bundle()
    trust = trust_for(bundle)
    trust["participant_keys"] = trust["participant_keys"][:1]
    assert failure(bundle, trust) == (
        f"entry 1 (leaf index 1): sender key kashgar.health/{SENDERS[1].key_id} "
        "is not in the trust file"
    )


def test_a_missing_witness_cosignature_fails_the_k_of_n_policy() -> None:
    log = Log(standard_leaves(), LOG_KEY, WITNESSES[:1])
    bundle = log.bundle([20], [0])
    bundle["witnesses"] = {"keys": [w.verifier.vkey() for w in WITNESSES], "k": 2}
    assert failure(bundle) == (
        "checkpoint 0 (tree size 20) has 1 valid witness cosignatures but the policy needs 2"
    )


def test_an_earlier_checkpoint_short_of_the_witness_policy_fails() -> None:
    # Every checkpoint of a bundle was published, and publishing takes the policy; the online
    # verifier holds every published checkpoint to it, so the offline one must too.
    log = Log(standard_leaves(), LOG_KEY, WITNESSES)
    bundle = log.bundle([5, 12, 20], [0])
    bundle["checkpoints"][1] = note.sign_note(
        note.parse_note(bundle["checkpoints"][1]).text, LOG_KEY
    )
    assert failure(bundle) == (
        "checkpoint 1 (tree size 12) has 0 valid witness cosignatures but the policy needs 2"
    )


def test_a_log_key_window_that_ends_before_it_begins_is_refused() -> None:
    # What `govhub audit rotate-key --overlap -5` used to write for the old key.
    bundle = standard_bundle()
    bundle["log_keys"][0].update(
        not_before="2026-03-01T10:00:00Z", not_after="2026-03-01T05:00:00Z"
    )
    with pytest.raises(BundleError, match=r"log_keys\[0\] has a validity window that ends before"):
        verify(bundle)


def test_a_forged_witness_cosignature_fails() -> None:
    bundle = standard_bundle()
    text = bundle["checkpoints"][2]
    name = WITNESSES[0].name
    line = next(x for x in text.splitlines() if name in x)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[-1] ^= 1
    bundle["checkpoints"][2] = text.replace(line, f"— {name} {b64(bytes(raw))}")
    assert failure(bundle).startswith(f"checkpoint 2 (tree size 20): signature by {name}+")


def test_a_witness_cosignature_from_the_future_fails() -> None:
    log = Log(standard_leaves(), LOG_KEY, WITNESSES)
    bundle = log.bundle([20], [0])
    bundle["checkpoints"][0] = log.checkpoint(20, cosign_at=NOW + 3600)
    assert failure(bundle) == (
        "checkpoint 0 (tree size 20) carries a witness cosignature dated in the future"
    )


def test_a_retired_log_key_cannot_sign_checkpoints_covering_later_events() -> None:
    bundle = standard_bundle()
    bundle["log_keys"][0]["not_after"] = "2026-03-01T09:10:00Z"
    assert failure(bundle) == (
        "checkpoint 1 (tree size 12) is signed only by log keys used out of their window"
    )


def test_a_log_key_not_yet_valid_when_witnesses_saw_the_checkpoint_is_rejected() -> None:
    bundle = standard_bundle()
    bundle["log_keys"][0]["not_before"] = "2027-01-01T00:00:00Z"
    assert "used out of their window" in failure(bundle)


def test_an_entry_beyond_the_latest_checkpoint_is_reported() -> None:
    bundle = standard_bundle()
    bundle["entries"][0]["leaf_index"] = 25
    assert failure(bundle) == "entry 0 (leaf index 25): leaf index 25 is outside a tree of size 20"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(format="v0"), "bundle format is not govhub-audit-bundle-v1"),
        (lambda b: b.pop("checkpoints"), "bundle.checkpoints is missing or has the wrong type"),
        (lambda b: b["entries"][0].update(leaf_index=True), "leaf_index is missing"),
        (lambda b: b["entries"][0].update(leaf="%%%"), "bundle.entries[0].leaf is not valid"),
        (lambda b: b["consistency"].pop(), "one consistency proof per pair"),
        (lambda b: b["checkpoints"].__setitem__(0, "garbage"), "checkpoint 0 is not a signed"),
        (lambda b: b["log_keys"][0].update(vkey="x+y+z"), "bundle: verifier key is not"),
        (lambda b: b["participant_keys"][0].update(key_id="00" * 8), "key_id does not match"),
        (lambda b: b["witnesses"].update(k=3), "witnesses.k must be between 0"),
        (lambda b: b["log_keys"][0].update(not_after="yesterday"), "not an RFC 3339 date-time"),
        (lambda b: b["participant_keys"][0].update(revoyed_at=None), "unknown field 'revoyed_at'"),
        (lambda b: b["participant_keys"].append(b["participant_keys"][0]), "a second time"),
    ],
)
def test_malformed_bundles_name_the_bad_field(mutate: Any, message: str) -> None:
    bundle = standard_bundle()
    mutate(bundle)
    with pytest.raises(BundleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        verify(bundle)


def test_a_trust_file_with_an_unknown_section_is_refused() -> None:
    bundle = standard_bundle()
    with pytest.raises(BundleError, match="trust file has an unknown field 'participants'"):
        verify(bundle, {**trust_for(bundle), "participants": []})


def test_the_cli_prints_a_summary_and_exits_zero_for_a_good_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = standard_bundle()
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    (tmp_path / "t.json").write_text(json.dumps(trust_for(bundle)))
    assert main([str(tmp_path / "b.json"), "--trust", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: audit bundle verified") and "tree size     20" in out


def test_the_cli_json_report_says_which_item_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = standard_bundle()
    bundle["entries"][3]["inclusion"] = bundle["entries"][3]["inclusion"][:-1]
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    assert main([str(tmp_path / "b.json"), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False and report["error"].startswith("entry 3 (leaf index 3)")
    assert captured.err.startswith("verification failed: entry 3 (leaf index 3):")


def test_truncated_bundle_files_fail_cleanly_at_every_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(standard_bundle())
    path = tmp_path / "b.json"
    for cut in range(0, len(text), max(1, len(text) // 150)):
        path.write_text(text[:cut])
        assert main([str(path)]) == 2
        assert "is not valid JSON (truncated or corrupted?)" in capsys.readouterr().err


def test_structurally_damaged_bundles_never_raise_anything_but_typed_errors() -> None:
    good = standard_bundle()
    junk: list[Any] = [None, 0, -1, True, "", "x", [], {}, [None], {"a": 1}]
    paths: list[tuple[Any, ...]] = [(k,) for k in good]
    paths += [("entries", 0, k) for k in good["entries"][0]]
    paths += [("consistency", 0, k) for k in good["consistency"][0]]
    paths += [("log_keys", 0, k) for k in good["log_keys"][0]]
    paths += [("participant_keys", 0, k) for k in good["participant_keys"][0]]
    paths += [("witnesses", k) for k in good["witnesses"]] + [("checkpoints", 1)]
    for path in paths:
        for value in junk:
            bundle = copy.deepcopy(good)
            target = bundle
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            with contextlib.suppress(BundleError, VerificationError):
                verify(bundle)


def test_the_cli_reports_a_missing_file_in_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/nonexistent/bundle.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unusable input: cannot read bundle /nonexistent/bundle.json")
    assert err.count("\n") == 1


def test_the_verifier_runs_as_a_module_and_imports_only_stdlib_and_cryptography(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.json").write_text(json.dumps(standard_bundle()))
    probe = (
        "import sys, runpy; before = set(sys.modules); sys.argv = ['verify', sys.argv[1]]\n"
        "code = 0\n"
        "try: runpy.run_module('hub.audit.verify', run_name='__main__')\n"
        "except SystemExit as e: code = e.code\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names))); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "b.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK: audit bundle verified" in result.stdout
    third_party = set(json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"')))
    # _openssl and _cffi_backend are cryptography's own compiled bindings.
    assert third_party <= {"hub", "cryptography", "_openssl", "_cffi_backend"}


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (b"\xff\xfe", "leaf is not UTF-8 JSON"),
        (b'{"v":2}', "leaf is not a version 1 govhub leaf"),
        (b"[1]", "leaf is not a version 1 govhub leaf"),
        (b'{"v":1,"subject":"s"}', "leaf field 'headers' is missing or has the wrong type"),
    ],
)
def test_a_logged_leaf_that_is_not_a_v1_event_is_reported(leaf: bytes, message: str) -> None:
    bundle = Log([leaf], LOG_KEY, WITNESSES).bundle([1], [0])
    assert failure(bundle) == f"entry 0 (leaf index 0): {message}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "leaf verdict 'maybe' is unknown"),
        ({"received_at": "noon"}, "leaf received_at is not an RFC 3339 date-time"),
        ({"headers": {"ce-id": 5}}, "leaf headers must all be strings"),
        ({"headers": {"ce-id": "x"}}, "header ce-source is missing or malformed"),
        ({"subject": "a\nb"}, "leaf subject contains a newline"),
    ],
)
def test_logged_events_with_unusable_fields_are_reported(
    change: dict[str, Any], message: str
) -> None:
    leaf = json.loads(SENDERS[0].event_leaf(0))
    leaf.update(change)
    bundle = Log([canonical(leaf)], LOG_KEY, WITNESSES).bundle([1], [0])
    assert failure(bundle).startswith(f"entry 0 (leaf index 0): {message}")


def test_a_sender_key_registered_to_another_participant_is_refused() -> None:
    leaf = json.loads(SENDERS[0].event_leaf(0))
    leaf["headers"]["govhub-key"] = f"kashgar.health/{SENDERS[1].key_id}"
    bundle = Log([canonical(leaf)], LOG_KEY, WITNESSES).bundle([1], [0])
    assert "does not belong to ce-source" in failure(bundle)
