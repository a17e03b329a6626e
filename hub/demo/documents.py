"""Demo chapter: the prefecture office sends a circular to the county offices, their agents
deliver it with signed receipts, three accept and one sends it back; the region sends a
confidential document that only its two recipients can open; a county reports up, another
writes to its neighbour; and the prefecture office reads its 收发文 register, which lists
documents between counties too."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.demo import Chapter, Story
from hub.errors import ExchangeError
from hub.exchange import crypto, receipts
from hub.exchange.agent import RecipientAgent
from hub.exchange.fetch import Fetcher
from hub.exchange.ledger import document_status, ledger, verified_document
from hub.exchange.model import Classification, Urgency
from hub.exchange.send import Sender, SendRequest, doc_context
from hub.exchange.store import StoreReader, chunk_subject, keys_subject
from hub.exchange.tracker import ExchangeTracker
from hub.runtime import Hub

OFFICE = "pref.office"
COUNTIES = ("artux.office", "akto.office", "akqi.office", "wuqia.office")
REJECTER = "wuqia.office"
REJECT_REASON = "附件缺少乡镇名单，请补充后重发"
REGION = "xj.office"
SECRET_TO = ("pref.office", "akto.office")
OUTSIDER = "pref.finance"
CIRCULAR = (
    "关于做好2027年元旦春节期间安全生产工作的通知\n\n"
    "各县（市）人民政府：\n为切实做好元旦春节期间安全生产工作，现将有关事项通知如下……\n"
)
SECRET = "关于2027年度重点项目资金安排的意见\n\n一、帕米尔高原道路改造项目……\n"
REPORT = "阿克陶县2026年安全生产工作总结\n\n一、基本情况……\n"
LETTER = "关于联合开展边境巡查的函\n\n乌恰县人民政府办公室：……\n"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode() + os.urandom(4096).hex().encode())
    return path


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Send, deliver, answer, seal, refuse, report up, and read the register."""
    folder = hub.settings.home.root / "demo" / "documents"
    sender = Sender(hub)
    tracker = ExchangeTracker(hub)
    circular = await sender.send(
        SendRequest(
            sender=OFFICE,
            recipients=COUNTIES,
            path=_write(folder, "元旦春节安全生产通知.txt", CIRCULAR),
            title="关于做好2027年元旦春节期间安全生产工作的通知",
            doc_number="克政办发〔2026〕58号",
            urgency=Urgency.URGENT,
            deadline=datetime.now(UTC) + timedelta(days=3),
        )
    )
    delivered = await RecipientAgent(hub, list(COUNTIES)).deliver_pending()
    await tracker.catch_up()
    for county in COUNTIES:
        if county == REJECTER:
            await receipts.answer(hub, circular.doc_id, county, accept=False, reason=REJECT_REASON)
        else:
            await receipts.answer(hub, circular.doc_id, county, accept=True)
    await tracker.catch_up()
    status = await document_status(hub, circular.doc_id)

    secret_path = _write(folder, "重点项目资金安排意见.txt", SECRET)
    secret = await sender.send(
        SendRequest(
            sender=REGION,
            recipients=SECRET_TO,
            path=secret_path,
            title="关于2027年度重点项目资金安排的意见",
            doc_number="新政办函〔2026〕9号",
            classification=Classification.CONFIDENTIAL,
            suite=crypto.SUITE_HYBRID,
        )
    )
    await tracker.catch_up()
    doc = await verified_document(hub, secret.doc_id)
    opened = {}
    for reader in SECRET_TO:
        out = folder / f"{reader}-{secret.doc_id}.txt"
        await Fetcher(hub).fetch(doc, reader, out)
        opened[reader] = out.read_bytes() == secret_path.read_bytes()
    refusals = {}
    try:
        await Fetcher(hub).fetch(doc, OUTSIDER, folder / "outsider.txt")
    except ExchangeError as exc:
        refusals["fetch"] = str(exc)
    # Even with the stored bytes in hand, an outsider holds no key they were sealed to.
    store = StoreReader(hub.nc, doc.manifest.store)
    wraps = crypto.wraps_from_bytes(await store.get(keys_subject(doc.manifest.store)))
    first_chunk = await store.get(chunk_subject(doc.manifest.store, 0))
    await store.close()
    try:
        crypto.open_as(OUTSIDER, hub.keystore, wraps, context=doc_context(secret.doc_id))
    except ExchangeError as exc:
        refusals["decrypt"] = str(exc)

    report = await sender.send(
        SendRequest(
            sender="akto.office",
            recipients=(OFFICE,),
            path=_write(folder, "安全生产工作总结.txt", REPORT),
            title="阿克陶县2026年安全生产工作总结",
            doc_number="阿政发〔2026〕31号",
        )
    )
    letter = await sender.send(
        SendRequest(
            sender="akqi.office",
            recipients=("wuqia.office",),
            path=_write(folder, "联合巡查函.txt", LETTER),
            title="关于联合开展边境巡查的函",
            doc_number="阿合奇政函〔2026〕12号",
        )
    )
    await RecipientAgent(hub, [OFFICE, "wuqia.office"]).deliver_pending()
    await tracker.catch_up()
    await tracker.stop()
    register = await ledger(hub, OFFICE)
    mine = {circular.doc_id, secret.doc_id, report.doc_id, letter.doc_id}
    return {
        "circular": {
            "doc_id": circular.doc_id,
            "chunks": circular.chunk_count,
            "delivered_by_agent": sorted(
                d.recipient for d in delivered if d.doc_id == circular.doc_id
            ),
            "states": {r["recipient"]: r["state"] for r in status["recipients"]},
            "receipts": {
                r["recipient"]: [x["kind"] for x in r["receipts"]] for r in status["recipients"]
            },
            "rejection": REJECT_REASON,
        },
        "confidential": {
            "doc_id": secret.doc_id,
            "suite": crypto.SUITE_HYBRID,
            "opened_by": opened,
            "ciphertext_in_store": SECRET.encode()[:16] not in first_chunk,
            "refused": refusals,
        },
        "report_up": report.doc_id,
        "ledger": {
            "scope": register["scope"],
            "entries": [
                {
                    k: e[k]
                    for k in (
                        "doc_id",
                        "direction",
                        "doc_number",
                        "title",
                        "sender",
                        "classification",
                        "states",
                    )
                }
                for e in register["entries"]
                if e["doc_id"] in mine
            ],
        },
    }


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    c = facts["circular"]
    console.print(
        f"{OFFICE} sends an urgent circular (克政办发〔2026〕58号, deadline in 3 days) to the "
        f"county offices; the content goes in {c['chunks']} chunk(s) to the prefecture's "
        "store, a signed manifest announces it. Each county's agent fetches, verifies and "
        "signs a delivery receipt; then each office answers:"
    )
    table = Table("recipient", "state", "signed receipts")
    for recipient, state in c["states"].items():
        style = {"accepted": "green", "rejected": "red"}.get(state, "")
        table.add_row(recipient, f"[{style}]{state}[/]", ", ".join(c["receipts"][recipient]))
    console.print(table)
    console.print(f"{REJECTER} sent it back: {c['rejection']}")
    s = facts["confidential"]
    console.print(
        f"{REGION} sends a confidential document, sealed with HPKE ({s['suite']}, post-quantum "
        f"hybrid) to {' and '.join(SECRET_TO)}; the store holds only ciphertext "
        f"({'yes' if s['ciphertext_in_store'] else 'NO'})."
    )
    for reader, ok in s["opened_by"].items():
        console.print(f"  {reader}: {'[green]opened and verified[/]' if ok else '[red]failed[/]'}")
    for how, message in s["refused"].items():
        console.print(f"  {OUTSIDER} ({how}): [red]refused[/] — {message}")
    console.print(
        f"akto.office reports up to {OFFICE}, akqi.office writes to wuqia.office. The "
        "prefecture office's 收发文 register sees every unit's documents:"
    )
    table = Table("", "number", "title", "from", "class", "states")
    label = {"out": "发文", "in": "收文", "register": "登记"}
    for e in facts["ledger"]["entries"]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(e["states"].items()))
        table.add_row(
            label[e["direction"]],
            e["doc_number"],
            e["title"],
            e["sender"],
            e["classification"],
            states,
        )
    console.print(table)


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    c, s = facts["circular"], facts["confidential"]
    answered = sum(1 for v in c["states"].values() if v in ("accepted", "rejected"))
    return [
        ("documents exchanged", str(len(facts["ledger"]["entries"]))),
        ("circular answered (signed receipts)", f"{answered} of {len(c['states'])}"),
        ("confidential: opened by", ", ".join(r for r, ok in s["opened_by"].items() if ok)),
        ("confidential: refused to", f"{OUTSIDER} ({len(s['refused'])} ways)"),
    ]


CHAPTER = Chapter(
    name="documents",
    title="Signed document exchange with receipts (电子公文交换)",
    run=run,
    render=render,
    summary=summary,
)
