"""Demo chapter: the prefecture office sends a circular to the county offices, their agents
deliver it with signed receipts, three accept and one sends it back; the region sends a
confidential document that only its two recipients can open; a county reports up, another
writes to its neighbour; and the prefecture office reads its 收发文 register, which lists
documents between counties too.

On the federated topology (`govhub demo --federated`) the same story runs on the leaf nodes:
each sender stores its content in its own unit's store (a county's on its own node), county
offices sign receipts into their own county's stream, the county report goes up to the
prefecture and the region, and a county cut off from the hub gets the document sent to it
once its uplink returns."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub import crypto
from hub.demo import Chapter, Story
from hub.display import line, styled
from hub.errors import ExchangeError, UnknownDocument
from hub.exchange import receipts
from hub.exchange.agent import RecipientAgent
from hub.exchange.fetch import Fetcher
from hub.exchange.ledger import document_status, ledger, verified_document
from hub.exchange.model import Classification, Urgency
from hub.exchange.send import Sender, SendRequest, doc_context
from hub.exchange.store import StoreReader, chunk_subject, keys_subject
from hub.exchange.tracker import ExchangeTracker
from hub.federation.plan import county_stream
from hub.runtime import Hub
from hub.suites import GM
from hub.waits import poll

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
URGENT = "关于做好寒潮大风天气防范工作的紧急通知\n\n……\n"
CUT_OFF = "wuqia.office"
# Events from a county reach the hub when its stream is sourced: milliseconds, or after an
# outage; the chapter waits for the state they make, bounded, before reading it.
ARRIVAL_S = 120.0


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode() + os.urandom(4096).hex().encode())
    return path


async def _settled(
    hub: Hub, tracker: ExchangeTracker, doc_id: str, ready: Callable[[dict[str, str]], bool]
) -> dict[str, Any]:
    """The document's status once its recipients' states show what the chapter just did.

    The chapter waits for the state, bounded, not for its own tracker to run dry: a `govhub
    serve` of the same home shares the tracker's durable consumer and may hold some of these
    events in flight, its agents may sign receipts the chapter's agent then skips, and in a
    federation a receipt reaches the hub when its county's stream is sourced.
    """
    found: dict[str, Any] = {}

    async def settled() -> bool:
        await tracker.catch_up()
        with contextlib.suppress(UnknownDocument):  # its manifest is not tracked yet
            found.update(await document_status(hub.pool, hub.trust, doc_id))
            return ready({r["recipient"]: r["state"] for r in found["recipients"]})
        return False

    if not await poll(settled, timeout=ARRIVAL_S, every=0.2):
        raise ExchangeError(
            f"document {doc_id} did not reach the expected state in {ARRIVAL_S:g} s"
        )
    return found


def _all(state: str, *recipients: str) -> Callable[[dict[str, str]], bool]:
    return lambda states: all(states.get(r) == state for r in recipients)


def _delivered_by_agent(status: dict[str, Any]) -> list[str]:
    """The recipients whose delivery receipt an agent signed (this chapter's or a service's)."""
    return sorted(
        r["recipient"]
        for r in status["recipients"]
        if any(x["kind"] == "delivered" and x.get("stored_by") == "agent" for x in r["receipts"])
    )


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Send, deliver, answer, seal, refuse, report up, and read the register."""
    folder = hub.settings.home.root / "demo" / "documents"
    sender = Sender(hub.settings, hub.trust, hub.bus, hub.signer)
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    federated = hub.federation is not None
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
    await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, list(COUNTIES)
    ).deliver_pending()
    delivered = _delivered_by_agent(
        await _settled(hub, tracker, circular.doc_id, _all("delivered", *COUNTIES))
    )
    for county in COUNTIES:
        if county == REJECTER:
            await receipts.answer(
                hub.pool,
                hub.trust,
                hub.signer,
                circular.doc_id,
                county,
                accept=False,
                reason=REJECT_REASON,
            )
        else:
            await receipts.answer(
                hub.pool, hub.trust, hub.signer, circular.doc_id, county, accept=True
            )
    answered = {c: "accepted" for c in COUNTIES} | {REJECTER: "rejected"}
    status = await _settled(hub, tracker, circular.doc_id, lambda states: states == answered)
    receipts_at_county = await _county_receipts(hub, circular.doc_id) if federated else {}

    secret_path = _write(folder, "重点项目资金安排意见.txt", SECRET)
    secret = await sender.send(
        SendRequest(
            sender=REGION,
            recipients=SECRET_TO,
            path=secret_path,
            title="关于2027年度重点项目资金安排的意见",
            doc_number="新政办函〔2026〕9号",
            classification=Classification.CONFIDENTIAL,
            suite=_confidential_suite(hub),
        )
    )
    await _settled(hub, tracker, secret.doc_id, lambda states: True)
    doc = await verified_document(hub.pool, hub.trust, secret.doc_id)
    opened = {}
    for reader in SECRET_TO:
        out = folder / f"{reader}-{secret.doc_id}.txt"
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, reader, out)
        opened[reader] = out.read_bytes() == secret_path.read_bytes()
    refusals = {}
    try:
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, OUTSIDER, folder / "outsider.txt")
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

    # On the federated topology the county report also goes up to the region, over the
    # region's own link.
    report_to = (OFFICE, REGION) if federated else (OFFICE,)
    report = await sender.send(
        SendRequest(
            sender="akto.office",
            recipients=report_to,
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
    await _settled(hub, tracker, report.doc_id, lambda states: True)
    await _settled(hub, tracker, letter.doc_id, lambda states: True)
    await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, [*report_to, "wuqia.office"]
    ).deliver_pending()
    await _settled(hub, tracker, letter.doc_id, _all("delivered", "wuqia.office"))
    reported = await _settled(hub, tracker, report.doc_id, _all("delivered", *report_to))
    report_states = {r["recipient"]: r["state"] for r in reported["recipients"]}
    drill = await _cut_off_drill(hub, folder, tracker) if federated else None
    await tracker.stop()
    register = await ledger(hub.pool, hub.trust, OFFICE)
    mine = {circular.doc_id, secret.doc_id, report.doc_id, letter.doc_id}
    facts: dict[str, Any] = {
        "circular": {
            "doc_id": circular.doc_id,
            "chunks": circular.chunk_count,
            "delivered_by_agent": delivered,
            "states": {r["recipient"]: r["state"] for r in status["recipients"]},
            "receipts": {
                r["recipient"]: [x["kind"] for x in r["receipts"]] for r in status["recipients"]
            },
            "rejection": REJECT_REASON,
        },
        "confidential": {
            "doc_id": secret.doc_id,
            "suite": _confidential_suite(hub),
            "opened_by": opened,
            "ciphertext_in_store": SECRET.encode()[:16] not in first_chunk,
            "refused": refusals,
        },
        "report_up": report.doc_id,
        "report_states": report_states,
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
    if federated:
        facts["federated"] = {
            "stores": {
                name: {"domain": r.manifest.store.domain, "stream": r.manifest.store.stream}
                for name, r in (
                    ("circular", circular),
                    ("confidential", secret),
                    ("report_up", report),
                    ("letter", letter),
                )
            },
            "receipts_at_county": receipts_at_county,
            "cut_off": drill,
        }
    return facts


async def _county_receipts(hub: Hub, doc_id: str) -> dict[str, str]:
    """Which county stream first stored each county office's receipts of a document."""
    found = {}
    for county in COUNTIES:
        link = await hub.link(county)
        assert link is not None
        stream = county_stream(county.split(".")[0])
        info = await link.jetstream(at_hub=False).stream_info(
            stream, subjects_filter=f"doc.{county}.*.{doc_id}"
        )
        if info.state.subjects:
            found[county] = f"{stream} ({sum(info.state.subjects.values())} receipts)"
    return found


async def _cut_off_drill(hub: Hub, folder: Path, tracker: ExchangeTracker) -> dict[str, Any]:
    """A county cut off from the hub while the prefecture sends to it: the manifest waits at
    the hub, the county cannot fetch, and after reconnect its agent delivers with a receipt."""
    federation = hub.federation
    assert federation is not None and federation.servers is not None
    unit = CUT_OFF.split(".")[0]
    federation.servers.uplink(unit, enabled=False)
    try:
        urgent = await Sender(hub.settings, hub.trust, hub.bus, hub.signer).send(
            SendRequest(
                sender=OFFICE,
                recipients=(CUT_OFF,),
                path=_write(folder, "寒潮防范紧急通知.txt", URGENT),
                title="关于做好寒潮大风天气防范工作的紧急通知",
                doc_number="克政办明电〔2026〕7号",
                urgency=Urgency.EXTRA_URGENT,
                deadline=datetime.now(UTC) + timedelta(days=1),
            )
        )
        await tracker.catch_up()
        doc = await verified_document(hub.pool, hub.trust, urgent.doc_id)
        try:
            await Fetcher(hub.trust, hub.bus, hub.signer, stall_s=1.0).fetch(
                doc, CUT_OFF, folder / "cut-off.txt"
            )
            while_cut = "fetched (the uplink was not cut?)"
        except ExchangeError as exc:
            while_cut = f"not reachable: {type(exc).__name__}"
        state_while_cut = (await document_status(hub.pool, hub.trust, urgent.doc_id))["recipients"][
            0
        ]["state"]
    finally:
        federation.servers.uplink(unit, enabled=True)
    await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, [CUT_OFF]
    ).deliver_pending()
    status = await _settled(hub, tracker, urgent.doc_id, _all("delivered", CUT_OFF))
    return {
        "county": unit,
        "doc_id": urgent.doc_id,
        "fetch_while_cut": while_cut,
        "state_while_cut": state_while_cut,
        "state_after_reconnect": status["recipients"][0]["state"],
        "deadline_clock": status["deadline_clock"],
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
        table.add_row(recipient, styled(state, style), ", ".join(c["receipts"][recipient]))
    console.print(table)
    console.print(f"{REJECTER} sent it back: {c['rejection']}")
    s = facts["confidential"]
    how = (
        "its key wrapped with SM2 encryption and its content in SM4-GCM (sm2)"
        if s["suite"] == crypto.SUITE_SM2
        else f"sealed with HPKE ({s['suite']}, post-quantum hybrid)"
    )
    console.print(
        f"{REGION} sends a confidential document, {how}, to {' and '.join(SECRET_TO)}; "
        "the store holds only ciphertext "
        f"({'yes' if s['ciphertext_in_store'] else 'NO'})."
    )
    for reader, ok in s["opened_by"].items():
        verdict = ("opened and verified", "green") if ok else ("failed", "red")
        console.print(line(f"  {reader}: ", verdict))
    for how, message in s["refused"].items():
        console.print(line(f"  {OUTSIDER} ({how}): ", ("refused", "red"), f" — {message}"))
    console.print(
        f"akto.office reports up to {' and '.join(facts['report_states'])}, akqi.office "
        "writes to wuqia.office. The "
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
    fed = facts.get("federated")
    if fed is not None:
        _render_federated(console, facts, fed)


def _render_federated(console: Console, facts: dict[str, Any], fed: dict[str, Any]) -> None:
    stores = Table("document", "content stored in", "JetStream domain")
    for name, where in fed["stores"].items():
        stores.add_row(name, where["stream"], where["domain"])
    console.print(
        "On the leaf nodes each sender stores its content in its own unit's store (a county's "
        "on its own node; the hub keeps one copy that readers elsewhere fetch):"
    )
    console.print(stores)
    for county, where in fed["receipts_at_county"].items():
        console.print(f"  {county} signed its receipts into {where}, sourced by the hub")
    report = ", ".join(f"{r} {s}" for r, s in facts["report_states"].items())
    console.print(
        f"akto.office's report up, with receipts back from the prefecture and region: {report}"
    )
    d = fed["cut_off"]
    console.print(
        line(
            f"{d['county']}'s uplink cut while {OFFICE} sends it an extra-urgent notice: fetch "
            f"{d['fetch_while_cut']}, state {d['state_while_cut']}; uplink restored: ",
            (d["state_after_reconnect"], "bold"),
            f" (deadline on the {d['deadline_clock']}'s clock).",
        )
    )


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    c, s = facts["circular"], facts["confidential"]
    answered = sum(1 for v in c["states"].values() if v in ("accepted", "rejected"))
    rows = [
        ("documents exchanged", str(len(facts["ledger"]["entries"]))),
        ("circular answered (signed receipts)", f"{answered} of {len(c['states'])}"),
        ("confidential: opened by", ", ".join(r for r, ok in s["opened_by"].items() if ok)),
        ("confidential: refused to", f"{OUTSIDER} ({len(s['refused'])} ways)"),
    ]
    fed = facts.get("federated")
    if fed is not None:
        delivered = [r for r, st in facts["report_states"].items() if st == "delivered"]
        rows.append(("county report delivered up to", ", ".join(delivered) or "nobody"))
        d = fed["cut_off"]
        rows.append(
            (f"document to cut-off {d['county']}", f"{d['state_after_reconnect']} after reconnect")
        )
    return rows


CHAPTER = Chapter(
    name="documents",
    title="Signed document exchange with receipts (电子公文交换)",
    run=run,
    render=render,
    summary=summary,
)


def _confidential_suite(hub: Hub) -> str:
    """The demo seals with the post-quantum hybrid in intl, with SM2 and SM4-GCM in gm."""
    return crypto.SUITE_SM2 if hub.settings.suite is GM else crypto.SUITE_HYBRID
