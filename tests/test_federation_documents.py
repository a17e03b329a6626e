"""Documents on real leaf nodes: each sender's own store, the hub's copy, receipts through the
recipients' own counties, and a county cut off while a document is sent to it.

One topology serves the whole module (its start is most of the cost); every test uses its
own documents, and a test that cuts an uplink restores it before it ends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from hub.envelope import Envelope
from hub.errors import AccessDenied, NotRecipient, TransferInterrupted
from hub.exchange import receipts
from hub.exchange.agent import RecipientAgent
from hub.exchange.fetch import Fetcher
from hub.exchange.ledger import document_status, verified_document
from hub.exchange.model import Classification, Document, Kind, doc_subject
from hub.exchange.send import Sender, SendRequest, SendResult
from hub.exchange.tracker import ExchangeTracker
from hub.federation.arrival import wait_at_hub
from hub.federation.plan import county_stream
from tests.federation import Topology, federated, scratch_database, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def federation(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str
) -> AsyncIterator[Topology]:
    """The Kezhou federation with one hub node, shared by this module's tests."""
    async with (
        scratch_database(pg_admin_dsn) as dsn,
        federated(tmp_path_factory.mktemp("docs"), dsn) as topology,
    ):
        yield topology


def _file(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


async def _send(
    top: Topology, sender: str, to: tuple[str, ...], path: Path, **opts: object
) -> SendResult:
    request = SendRequest(sender=sender, recipients=to, path=path, title=path.name, **opts)  # type: ignore[arg-type]
    return await Sender(top.hub.settings, top.hub.trust, top.hub.bus, top.hub.signer).send(request)


async def _known(top: Topology, result: SendResult) -> Document:
    """The document once its manifest reached the hub and the tracker applied it."""
    assert await wait_at_hub(top.hub.nc, [(result.subject, result.manifest_event_id)], timeout=60)
    await _tracked(top)
    return await verified_document(top.hub.pool, top.hub.trust, result.doc_id)


async def _tracked(top: Topology) -> None:
    tracker = ExchangeTracker(top.hub.pool, top.hub.trust, top.hub.bus, top.hub.signer)
    try:
        await tracker.catch_up()
    finally:
        await tracker.stop()


async def _states(top: Topology, doc_id: str, events: list[tuple[str, str]]) -> dict[str, str]:
    """Recipient states once the given receipts reached the hub."""
    assert await wait_at_hub(top.hub.nc, events, timeout=60), "receipts reach the hub"
    await _tracked(top)
    status = await document_status(top.hub.pool, top.hub.trust, doc_id)
    return {r["recipient"]: r["state"] for r in status["recipients"]}


async def _county_holds(top: Topology, as_id: str, stream: str, subject: str) -> int:
    link = await top.hub.link(as_id)
    assert link is not None
    info = await link.jetstream(at_hub=False).stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def test_a_county_report_stays_in_its_county_and_other_units_read_the_hubs_copy(
    federation: Topology, tmp_path: Path
) -> None:
    top = federation
    path = _file(tmp_path, "report.bin", 300_000)  # two chunks
    sent = await _send(top, "akto.office", ("pref.office", "wuqia.office"), path)
    store = sent.manifest.store
    assert (store.domain, store.stream) == ("cty-akto", "DOCS_AKTO")
    # The content is acknowledged by the sender's own county, under its own prefix.
    assert await _county_holds(top, "akto.office", "DOCS_AKTO", f"{store.prefix}.>") == 2

    doc = await _known(top, sent)
    got = {}
    for reader in ("pref.office", "wuqia.office"):
        out = tmp_path / f"{reader}.bin"
        result = await Fetcher(top.hub.trust, top.hub.bus, top.hub.signer).fetch(doc, reader, out)
        got[reader] = result.receipt_event_id
        assert out.read_bytes() == path.read_bytes()
    # wuqia.office's receipt was acknowledged by its own county's stream, then sourced.
    wuqia_receipt = doc_subject("wuqia.office", Kind.DELIVERED, sent.doc_id)
    assert await _county_holds(top, "wuqia.office", county_stream("wuqia"), wuqia_receipt) == 1
    delivered = [(doc_subject(r, Kind.DELIVERED, sent.doc_id), e) for r, e in got.items() if e]
    assert await _states(top, sent.doc_id, delivered) == {
        "pref.office": "delivered",
        "wuqia.office": "delivered",
    }

    accepted, _ = await receipts.answer(
        top.hub.pool, top.hub.trust, top.hub.signer, sent.doc_id, "pref.office", accept=True
    )
    rejected, _ = await receipts.answer(
        top.hub.pool,
        top.hub.trust,
        top.hub.signer,
        sent.doc_id,
        "wuqia.office",
        accept=False,
        reason="请补充附件",
    )
    answers = [(e.subject, e.event_id) for e in (accepted, rejected)]
    assert await _states(top, sent.doc_id, answers) == {
        "pref.office": "accepted",
        "wuqia.office": "rejected",
    }


async def test_the_region_sends_a_confidential_document_down_that_only_its_county_recipient_opens(
    federation: Topology, tmp_path: Path
) -> None:
    top = federation
    path = _file(tmp_path, "secret.bin", 5000)
    sent = await _send(
        top, "xj.office", ("akto.office",), path, classification=Classification.CONFIDENTIAL
    )
    # The region runs no JetStream: its store is at the hub.
    assert (sent.manifest.store.domain, sent.manifest.store.stream) == ("pref", "DOCS_XJ")
    doc = await _known(top, sent)
    out = tmp_path / "akto.bin"
    result = await Fetcher(top.hub.trust, top.hub.bus, top.hub.signer).fetch(
        doc, "akto.office", out
    )
    assert out.read_bytes() == path.read_bytes() and result.encryption_key_id
    with pytest.raises(NotRecipient):
        await Fetcher(top.hub.trust, top.hub.bus, top.hub.signer).fetch(
            doc, "akqi.office", tmp_path / "outsider.bin"
        )
    receipt = (doc_subject("akto.office", Kind.DELIVERED, sent.doc_id), result.receipt_event_id)
    assert await _states(top, sent.doc_id, [receipt]) == {"akto.office": "delivered"}  # type: ignore[list-item]


async def test_the_server_refuses_a_department_writing_into_another_departments_store(
    federation: Topology,
) -> None:
    top = federation
    link = await top.hub.link("akto.civil")
    assert link is not None
    forged = Envelope("dstore.docs_akto.office.0190f0e0-0000-7000-8000-000000000000.c.0", {}, b"x")
    with pytest.raises(AccessDenied, match="dstore.docs_akto.office"):
        await link.publisher.publish(forged)
    own = Envelope(
        "dstore.docs_akto.civil.0190f0e0-0000-7000-8000-000000000000.c.0",
        {"Nats-Msg-Id": "probe"},
        b"x",
    )
    assert (await link.publisher.publish(own)).stream == "DOCS_AKTO"


async def test_a_document_sent_to_a_cut_off_county_is_delivered_after_its_uplink_returns(
    federation: Topology, tmp_path: Path
) -> None:
    top = federation
    deadline = datetime.now(UTC) + timedelta(hours=2)
    top.cut("akqi")
    try:
        down = await _send(
            top,
            "pref.office",
            ("akqi.office",),
            _file(tmp_path, "circular.bin", 2000),
            deadline=deadline,
        )
        # The county keeps working: its report up is stored and announced at home.
        up = await _send(top, "akqi.office", ("pref.office",), _file(tmp_path, "up.bin", 2000))
        assert up.manifest.store.domain == "cty-akqi"
        assert not await wait_at_hub(top.hub.nc, [(up.subject, up.manifest_event_id)], timeout=1)
        doc = await _known(top, down)
        # The recipient cannot reach the hub's store from its county: nothing is half-written.
        out = tmp_path / "early.bin"
        with pytest.raises(TransferInterrupted, match="try again later"):
            await Fetcher(top.hub.trust, top.hub.bus, top.hub.signer, stall_s=1.0).fetch(
                doc, "akqi.office", out
            )
        leftovers = await asyncio.to_thread(lambda: [*tmp_path.glob("*early.bin*")])
        assert leftovers == []
        # The deadline runs on the sender's clock, at the hub, cut or not.
        status = await document_status(top.hub.pool, top.hub.trust, down.doc_id)
        assert status["deadline_clock"] == "sender"
        assert status["recipients"][0]["state"] == "sent"
    finally:
        top.restore("akqi")

    await _known(top, up)
    delivered = await RecipientAgent(
        top.hub.pool,
        top.hub.settings,
        top.hub.trust,
        top.hub.bus,
        top.hub.signer,
        ["akqi.office", "pref.office"],
    ).deliver_pending()
    assert {(d.doc_id, d.recipient) for d in delivered} >= {
        (down.doc_id, "akqi.office"),
        (up.doc_id, "pref.office"),
    }
    for d in delivered:
        receipt = (doc_subject(d.recipient, Kind.DELIVERED, d.doc_id), d.receipt_event_id)
        states = await _states(top, d.doc_id, [receipt])
        assert states[d.recipient] == "delivered"

    async def timers() -> bool:
        count = await top.hub.pool.fetchval(
            "SELECT count(*) FROM doc_timers WHERE doc_id = $1", down.doc_id
        )
        return bool(count)

    await wait_for(timers, timeout=10, what="the deadline timers of the sender")


async def test_a_county_sending_documents_across_an_uplink_cut_delivers_each_once_with_one_receipt(
    federation: Topology, tmp_path: Path
) -> None:
    top = federation
    paths = [_file(tmp_path, f"return-{i}.bin", 3000 + i) for i in range(6)]
    before = [await _send(top, "akto.office", ("pref.office",), p) for p in paths[:2]]
    top.cut("akto")
    try:
        # Acknowledged by the county's own streams while the hub cannot see them.
        during = [await _send(top, "akto.office", ("pref.office",), p) for p in paths[2:]]
        assert all(s.manifest.store.domain == "cty-akto" for s in during)
        arrived = await wait_at_hub(
            top.hub.nc, [(s.subject, s.manifest_event_id) for s in during], timeout=1
        )
        assert not arrived, "nothing crosses a cut uplink"
    finally:
        top.restore("akto")
    sent = before + during
    for result in sent:
        await _known(top, result)

    agent = RecipientAgent(
        top.hub.pool, top.hub.settings, top.hub.trust, top.hub.bus, top.hub.signer, ["pref.office"]
    )
    delivered = {d.doc_id: d for d in await agent.deliver_pending() if d.recipient == "pref.office"}
    ours = {s.doc_id: p for s, p in zip(sent, paths, strict=True)}
    assert set(ours) <= set(delivered), "every document reaches the prefecture"
    for doc_id, path in ours.items():
        assert delivered[doc_id].path.read_bytes() == path.read_bytes()
    again = await agent.deliver_pending()
    assert not [d for d in again if d.doc_id in ours], "nothing is delivered twice"

    receipts_ = [
        (doc_subject("pref.office", Kind.DELIVERED, doc_id), delivered[doc_id].receipt_event_id)
        for doc_id in ours
    ]
    for doc_id, receipt in zip(ours, receipts_, strict=True):
        assert await _states(top, doc_id, [receipt]) == {"pref.office": "delivered"}
        assert await top.hub_count(receipt[0]) == 1, "one receipt per document"
    await _tracked(top)
    rows = await top.hub.pool.fetch(
        "SELECT doc_id, kind, outcome, count(*) AS n FROM doc_events"
        " WHERE doc_id = ANY($1::text[]) GROUP BY doc_id, kind, outcome",
        list(ours),
    )
    applied = {(r["doc_id"], r["kind"], r["outcome"], r["n"]) for r in rows}
    assert applied == {(doc_id, Kind.DELIVERED.value, "applied", 1) for doc_id in ours}
