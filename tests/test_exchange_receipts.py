"""Receipts and states: sent → delivered → accepted | rejected, recall, reminders and expiry
on the sender's clock, and every receipt that does not fit its document quarantined."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.envelope import seal
from hub.errors import DocumentClosed, InputError, NotRecipient, UnknownDocument
from hub.exchange import receipts
from hub.exchange import tracker as tracker_module
from hub.exchange.agent import RecipientAgent
from hub.exchange.fetch import Fetcher
from hub.exchange.ledger import document_status, ledger, verified_document
from hub.exchange.model import PROCESSING_SCHEMA, Kind, doc_subject
from hub.exchange.send import Sender, SendRequest
from hub.exchange.tracker import ExchangeTracker
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM

OFFICES = ("akto.office", "akqi.office", "wuqia.office")


async def send(
    hub: Hub,
    tmp_path: Path,
    *,
    sender: str = "pref.office",
    to: tuple[str, ...] = OFFICES,
    deadline: datetime | None = None,
) -> str:
    path = tmp_path / f"{sender}-{os.urandom(4).hex()}.txt"
    path.write_bytes("关于开展冬季安全生产大检查的通知\n".encode() + os.urandom(3000))
    result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
        SendRequest(
            sender=sender,
            recipients=to,
            path=path,
            title="冬季安全生产大检查",
            doc_number="克政办发〔2026〕7号",
            deadline=deadline,
        )
    )
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    return result.doc_id


async def fetch(hub: Hub, tmp_path: Path, doc_id: str, recipient: str) -> None:
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
        doc, recipient, tmp_path / f"in-{recipient}-{doc_id}"
    )


async def states(hub: Hub, doc_id: str) -> dict[str, str]:
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    status = await document_status(hub.pool, hub.trust, doc_id)
    return {r["recipient"]: r["state"] for r in status["recipients"]}


async def quarantined(hub: Hub) -> list[dict[str, str]]:
    consumer = hub.consumer(QUARANTINE_STREAM, None, quarantine=False)
    rows = []
    try:
        while batch := await consumer.fetch(64, timeout=0.5):
            for d in batch:
                rows.append(dict(d.envelope.headers))
                await d.ack()
    finally:
        await consumer.stop()
    return rows


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not await check():
        assert loop.time() < give_up, "condition not reached"
        await asyncio.sleep(0.2)


async def test_states_follow_signed_receipts_from_sent_to_accepted_and_rejected(
    hub: Hub, tmp_path: Path
) -> None:
    doc_id = await send(hub, tmp_path)
    assert await states(hub, doc_id) == dict.fromkeys(OFFICES, "sent")
    await fetch(hub, tmp_path, doc_id, "akto.office")
    await fetch(hub, tmp_path, doc_id, "akqi.office")
    assert await states(hub, doc_id) == {
        "akto.office": "delivered",
        "akqi.office": "delivered",
        "wuqia.office": "sent",
    }
    await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "akto.office", accept=True)
    await receipts.answer(
        hub.pool,
        hub.trust,
        hub.signer,
        doc_id,
        "akqi.office",
        accept=False,
        reason="缺少附件，请补充后重发",
    )
    assert await states(hub, doc_id) == {
        "akto.office": "accepted",
        "akqi.office": "rejected",
        "wuqia.office": "sent",
    }
    status = await document_status(hub.pool, hub.trust, doc_id)
    akqi = next(r for r in status["recipients"] if r["recipient"] == "akqi.office")
    assert akqi["reason"] == "缺少附件，请补充后重发"
    kinds = [r["kind"] for r in akqi["receipts"]]
    assert kinds == ["delivered", "rejected"]
    assert akqi["receipts"][0]["signed_by"].startswith("akqi.office/")
    # Each receipt binds the digest, the manifest event and the recipient's key.
    row = await hub.pool.fetchrow(
        "SELECT record FROM doc_events WHERE doc_id = $1 AND kind = 'delivered'"
        " AND source = 'akto.office'",
        doc_id,
    )
    import json

    record = json.loads(row["record"])
    assert record["manifest_event_id"] == status["manifest_event_id"]
    assert bytes.fromhex(status["sha256"]) == __import__("base64").b64decode(record["sha256"])
    assert record["recipient_key"] == f"akto.office/{hub.keystore.current('akto.office').key_id}"


async def test_a_rejection_needs_a_reason_and_an_answer_needs_a_delivery_first(
    hub: Hub, tmp_path: Path
) -> None:
    doc_id = await send(hub, tmp_path)
    with pytest.raises(DocumentClosed, match="fetch it first"):
        await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "akto.office", accept=True)
    await fetch(hub, tmp_path, doc_id, "akto.office")
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    with pytest.raises(InputError, match="needs a reason"):
        await receipts.answer(
            hub.pool, hub.trust, hub.signer, doc_id, "akto.office", accept=False, reason="  "
        )
    with pytest.raises(NotRecipient, match="pref.finance is not a recipient"):
        await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "pref.finance", accept=True)
    with pytest.raises(UnknownDocument, match="no document 01234567-89ab"):
        await receipts.answer(
            hub.pool,
            hub.trust,
            hub.signer,
            "01234567-89ab-7def-8123-456789abcdef",
            "akto.office",
            accept=True,
        )


def _forged_receipt(hub: Hub, doc_id: str, signer: str, manifest_id: str, digest: bytes) -> Any:
    schema = hub.schemas.by_name(PROCESSING_SCHEMA)
    record = {
        "doc_id": doc_id,
        "manifest_event_id": manifest_id,
        "sender": "pref.office",
        "sha256": digest,
        "recipient": signer,
        "recipient_key": f"{signer}/{hub.keystore.current(signer).key_id}",
        "decision": "ACCEPTED",
        "reason": "",
        "delivery_receipt_id": None,
        "decided_at": datetime.now(UTC),
    }
    return seal(
        hub.keystore.current(signer),
        doc_subject(signer, Kind.ACCEPTED, doc_id),
        PROCESSING_SCHEMA,
        schema.encode(record),
    )


async def test_receipts_that_do_not_fit_their_document_are_quarantined_with_a_reason(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A receipt of an unknown document waits out the tracker's ack wait before it is refused
    # (its manifest may be held by a tracker that died); a short one keeps this test quick.
    monkeypatch.setattr(tracker_module, "ACK_WAIT_S", 2.0)
    doc_id = await send(hub, tmp_path)
    status = await document_status(hub.pool, hub.trust, doc_id)
    digest = bytes.fromhex(status["sha256"])
    manifest_id = status["manifest_event_id"]
    unknown = "01234567-89ab-7def-8123-456789abcdef"
    bad = [
        _forged_receipt(hub, doc_id, "pref.finance", manifest_id, digest),  # not a recipient
        _forged_receipt(hub, doc_id, "akto.office", manifest_id, b"\x00" * 32),  # wrong digest
        _forged_receipt(hub, unknown, "akto.office", manifest_id, digest),  # unknown document
    ]
    await hub.publisher.publish_many(bad)
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    found: dict[str, str] = {}

    async def all_quarantined() -> bool:
        await tracker.catch_up()
        for headers in await quarantined(hub):
            found[headers["ce-id"]] = headers["govhub-reason"]
        return len(found) == 3

    await eventually(all_quarantined)
    assert found == {
        bad[0].event_id: "not_recipient",
        bad[1].event_id: "receipt_mismatch",
        bad[2].event_id: "unknown_document",
    }
    assert await states(hub, doc_id) == dict.fromkeys(OFFICES, "sent")


async def test_a_recall_withdraws_the_document_from_recipients_that_have_not_accepted(
    hub: Hub, tmp_path: Path
) -> None:
    doc_id = await send(hub, tmp_path)
    await fetch(hub, tmp_path, doc_id, "akto.office")
    await fetch(hub, tmp_path, doc_id, "akqi.office")
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "akto.office", accept=True)
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    with pytest.raises(NotRecipient, match="only its sender pref.office may recall"):
        await receipts.recall(hub.pool, hub.trust, hub.signer, doc_id, "akto.office", "no")
    _, withdrawn = await receipts.recall(
        hub.pool, hub.trust, hub.signer, doc_id, "pref.office", "文号有误，撤回重发"
    )
    assert withdrawn == ["akqi.office", "wuqia.office"]
    assert await states(hub, doc_id) == {
        "akto.office": "accepted",
        "akqi.office": "recalled",
        "wuqia.office": "recalled",
    }
    with pytest.raises(DocumentClosed, match="was recalled"):
        await fetch(hub, tmp_path, doc_id, "wuqia.office")
    with pytest.raises(DocumentClosed, match="already recalled"):
        await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "akqi.office", accept=True)


async def test_deadlines_remind_then_expire_on_the_senders_clock_and_late_answers_stay_late(
    hub: Hub, tmp_path: Path
) -> None:
    # Generous: akto.office must answer before the deadline even on a loaded machine.
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    doc_id = await send(hub, tmp_path, to=("akto.office", "akqi.office"), deadline=deadline)
    await fetch(hub, tmp_path, doc_id, "akto.office")
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    await receipts.answer(hub.pool, hub.trust, hub.signer, doc_id, "akto.office", accept=True)
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    await tracker.catch_up(fire_timers=False)
    # The sender's clock, half a second before the deadline: only the reminder is due.
    assert await tracker.fire_due(now=deadline - timedelta(seconds=0.5)) == 1
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.2)
    assert await states(hub, doc_id) == {"akto.office": "accepted", "akqi.office": "expired"}
    status = await document_status(hub.pool, hub.trust, doc_id)
    notices = [(n["kind"], n.get("recipients")) for n in status["notices"]]
    assert notices == [("reminder", ["akqi.office"]), ("expired", ["akqi.office"])]
    assert status["deadline_clock"] == "sender"
    # The recipient comes back after the deadline: delivery is still recorded as evidence,
    # and its acceptance is kept but late; the state stays expired.
    await fetch(hub, tmp_path, doc_id, "akqi.office")
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    _, late = await receipts.answer(
        hub.pool, hub.trust, hub.signer, doc_id, "akqi.office", accept=True
    )
    assert late
    assert await states(hub, doc_id) == {"akto.office": "accepted", "akqi.office": "expired"}
    status = await document_status(hub.pool, hub.trust, doc_id)
    akqi = next(r for r in status["recipients"] if r["recipient"] == "akqi.office")
    assert [(r["kind"], r["outcome"]) for r in akqi["receipts"]] == [
        ("delivered", "recorded"),
        ("accepted", "late"),
    ]
    # Every timer is spent: nothing fires again, however late it gets.
    assert (
        await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).fire_due(
            now=deadline + timedelta(days=30)
        )
        == 0
    )


async def test_an_offline_recipient_gets_its_documents_when_its_agent_comes_back(
    hub: Hub, tmp_path: Path
) -> None:
    first = await send(hub, tmp_path, to=("akto.office",))
    second = await send(hub, tmp_path, sender="xj.office", to=("akto.office", "pref.office"))
    assert await states(hub, first) == {"akto.office": "sent"}
    delivered = await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, ["akto.office"]
    ).deliver_pending()
    assert sorted(d.doc_id for d in delivered) == sorted([first, second])
    assert all(d.path.exists() for d in delivered)
    assert await states(hub, first) == {"akto.office": "delivered"}
    assert (await states(hub, second))["akto.office"] == "delivered"
    # A second run finds nothing new and signs no second receipt.
    assert (
        await RecipientAgent(
            hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, ["akto.office"]
        ).deliver_pending()
        == []
    )


async def test_the_tracker_and_the_agent_run_as_services(hub: Hub, tmp_path: Path) -> None:
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    agent = RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, ["akqi.office", "wuqia.office"]
    )
    tasks = [asyncio.create_task(tracker.run()), asyncio.create_task(agent.run())]
    try:
        path = tmp_path / "plan.txt"
        path.write_text("2027年工作计划")
        result = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            SendRequest(
                sender="pref.office",
                recipients=("akqi.office", "wuqia.office"),
                path=path,
                title="2027年工作计划",
            )
        )

        async def delivered() -> bool:
            rows = await hub.pool.fetch(
                "SELECT state FROM doc_recipients WHERE doc_id = $1", result.doc_id
            )
            return [r["state"] for r in rows] == ["delivered", "delivered"]

        await eventually(delivered)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_ledger_shows_the_prefecture_every_unit_and_a_county_its_own(
    hub: Hub, tmp_path: Path
) -> None:
    down = await send(hub, tmp_path, to=("akto.office", "artux.office"))
    across = await send(hub, tmp_path, sender="akqi.office", to=("wuqia.office",))
    up = await send(hub, tmp_path, sender="akto.office", to=("pref.office",))
    await ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer).catch_up()
    pref = await ledger(hub.pool, hub.trust, "pref.office")
    assert pref["scope"] == "all"
    directions = {e["doc_id"]: e["direction"] for e in pref["entries"]}
    assert directions == {down: "out", across: "register", up: "in"}
    akto = await ledger(hub.pool, hub.trust, "akto.office")
    assert akto["scope"] == "unit"
    assert {e["doc_id"]: e["direction"] for e in akto["entries"]} == {down: "in", up: "out"}
    finance = await ledger(hub.pool, hub.trust, "akto.finance")
    assert finance["scope"] == "own" and finance["entries"] == []


async def test_a_receipt_is_applied_when_its_manifest_was_held_by_a_tracker_that_crashed(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tracker killed mid-batch holds its events unacked until the ack wait runs out; a
    # receipt arriving at another tracker meanwhile must wait for that manifest, not be
    # quarantined as unknown_document after a few quick retries.
    monkeypatch.setattr(tracker_module, "ACK_WAIT_S", 4.0)
    await ExchangeTracker(
        hub.pool, hub.trust, hub.bus, hub.signer
    ).catch_up()  # the durable consumer, with that ack wait
    path = tmp_path / "通知.txt"
    path.write_bytes(os.urandom(3000))
    sent = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
        SendRequest("pref.office", ("akto.office",), path, "通知")
    )
    dying = hub.consumer(HUB_STREAM, tracker_module.DURABLE, ["doc.>"], backoff=())
    held = await dying.fetch(16, timeout=5.0)  # and then the process dies: no ack, no nak
    assert [d.envelope.event_id for d in held] == [sent.manifest_event_id]
    delivered = await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, ["akto.office"]
    ).deliver_pending()
    assert [d.doc_id for d in delivered] == [sent.doc_id]
    survivor = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)

    async def applied() -> bool:
        await survivor.catch_up()
        try:
            status = await document_status(hub.pool, hub.trust, sent.doc_id)
        except UnknownDocument:
            return False  # the manifest is still held by the dead tracker
        return bool(status["recipients"][0]["state"] == "delivered")

    await eventually(applied, timeout=30.0)
    assert not [q for q in await quarantined(hub) if q["govhub-reason"] == "unknown_document"]
