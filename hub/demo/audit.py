"""Demo chapter: every event so far is a leaf of the signed audit log; the prefecture audit
bureau (pref.audit) takes an inclusion proof for one notice and checks it offline with only the
log's and the witnesses' public keys, and sees the checkpoint the county witnesses cosigned."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from hub.audit import bundle, reader
from hub.audit.service import AuditLog
from hub.audit.verify import BUNDLE_FORMAT, load_trust, verify_bundle
from hub.demo import Chapter, Story
from hub.display import line
from hub.runtime import Hub

AUDITOR = "pref.audit"


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Log everything published so far, checkpoint it, prove one notice, verify offline."""
    log = AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus)
    checkpoint = await log.catch_up()
    published = story.facts.get("events", {}).get("published", [])
    if published:
        event_id = published[0]["event_id"]
    else:
        event_id = (await reader.search(hub.pool, limit=1))[0].event_id
    proof = await bundle.proof_for_event(hub.pool, event_id)
    trust = {**log.trust(), "participant_keys": await bundle.participant_keys(hub.pool)}
    # What the auditor keeps from the exchange: the leaf, its proof, the cosigned checkpoint.
    evidence = {
        "format": BUNDLE_FORMAT,
        "origin": log.config.origin,
        **trust,
        "checkpoints": [proof["checkpoint"]],
        "consistency": [],
        "entries": [
            {
                "leaf_index": proof["leaf_index"],
                "leaf": proof["leaf"],
                "inclusion": proof["inclusion"],
            }
        ],
    }
    report = verify_bundle(evidence, load_trust(trust, "trust file"))
    # The leaves this run added ("every event above"), not those of earlier runs on the home.
    verdicts = await hub.pool.fetch(
        "SELECT verdict, coalesce(reason, '') AS reason, count(*) AS n FROM audit_leaves"
        " WHERE idx >= $1 AND idx < $2 GROUP BY 1, 2 ORDER BY 1, 2",
        story.log_size_before,
        checkpoint.size,
    )
    return {
        "auditor": AUDITOR,
        "origin": log.config.origin,
        "log_key": log.ring.signers()[0].verifier.vkey(),
        "tree_size": checkpoint.size,
        "checkpoint": checkpoint.note,
        "cosigners": list(checkpoint.cosigners),
        "witness_policy": f"{log.config.witness_k} of {log.config.witness_count}",
        "event_id": event_id,
        "leaf_index": proof["leaf_index"],
        "proof_hashes": len(proof["inclusion"]),
        "verified_offline": report.accepted_verified == 1 and not report.warnings,
        "verdicts": {f"{r['verdict']} {r['reason']}".strip(): r["n"] for r in verdicts},
    }


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    console.print(
        line(
            "Every event above, accepted or refused, is a leaf of the audit log ",
            (facts["origin"], "bold"),
            f" ({facts['tree_size']} leaves, RFC 6962 Merkle tree in PostgreSQL):",
        )
    )
    table = Table("verdict", "leaves")
    for verdict, count in facts["verdicts"].items():
        table.add_row(verdict, str(count))
    console.print(table)
    console.print(
        f"The latest checkpoint, signed by the log and cosigned by county witnesses "
        f"(policy {facts['witness_policy']}):"
    )
    console.print(facts["checkpoint"])
    verdict = ("verified offline", "green") if facts["verified_offline"] else ("FAILED", "red")
    console.print(
        line(
            f"{facts['auditor']} asks for event {facts['event_id']}: leaf "
            f"{facts['leaf_index']}, inclusion proof of {facts['proof_hashes']} hashes; checked "
            "with only the public keys, the sender's signature re-checked from the leaf: ",
            verdict,
        )
    )


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    return [
        ("audit log leaves", str(facts["tree_size"])),
        ("checkpoint cosigned by", f"{len(facts['cosigners'])} witnesses"),
        (
            f"proof checked offline by {facts['auditor']}",
            "yes" if facts["verified_offline"] else "NO",
        ),
    ]


CHAPTER = Chapter(
    name="audit",
    title="A verifiable audit log (可验证审计日志)",
    run=run,
    render=render,
    summary=summary,
)
