"""The folder connector with real files: the contract, completeness, settling into subfolders."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.folder import CONNECTOR, DropOptions, InboxOptions
from hub.integration.connector import ConnectorContext, Outcome, Record, Sink, Source, Verdict
from tests.connector_contract import SinkContract, SourceContract, eventually, take
from tests.hostile import any_text, ints

CONTEXT = ConnectorContext(adapter="test", participant="akto.office")


def drop_file(root: Path, name: str, data: bytes, sidecar: str | None = None) -> str:
    """Put a file into drop/ the way a careful program does: write `.part`, then rename."""
    drop = root / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    if sidecar is not None:
        (drop / f"{name}.toml").write_text(sidecar, encoding="utf-8")
    part = drop / f"{name}.part"
    part.write_bytes(data)
    os.replace(part, drop / name)
    return f"{name}#{hashlib.sha256(data).hexdigest()[:16]}"


class DropHarness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def make(self) -> Source:
        return CONNECTOR.source(
            DropOptions(path=self.root, settle_seconds=0, scan_interval=0.1), CONTEXT
        )

    async def produce(self, count: int) -> list[str]:
        keys = []
        for _ in range(count):
            self.count += 1
            name = f"通知-{self.count:03d}.pdf"
            keys.append(drop_file(self.root, name, f"%PDF-1.7 {self.count}".encode()))
        return keys

    async def settled(self) -> set[str]:
        sent = self.root / "sent"
        return {
            f"{p.name}#{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"
            for p in sent.iterdir()
            if p.suffix == ".pdf"
        }


class InboxHarness:
    def __init__(self, root: Path) -> None:
        self.root = root

    def make(self) -> Sink:
        return CONNECTOR.sink(InboxOptions(path=self.root), CONTEXT)

    def records(self, count: int, offset: int = 0) -> list[Record]:
        return [
            Record(
                key=f"k{i}",
                id=f"0190a1b2-0000-7000-8000-{i:012d}",
                value={"file_name": f"来文-{i}.txt", "meta": {"title": f"来文 {i}"}},
                content=self._staged(i),
            )
            for i in range(offset, offset + count)
        ]

    def _staged(self, i: int) -> Path:
        staging = self.root.parent / "staging"
        staging.mkdir(exist_ok=True)
        path = staging / f"{i}.bin"
        path.write_text(f"document {i}", encoding="utf-8")
        return path

    async def stored(self) -> list[str]:
        inbox = self.root / "inbox"
        return [
            f"0190a1b2-0000-7000-8000-{int(p.read_text().split()[1]):012d}"
            for p in inbox.iterdir()
            if p.suffix == ".txt" and not p.name.startswith(".")
        ]


@pytest.fixture
def source_harness(tmp_path: Path) -> DropHarness:
    return DropHarness(tmp_path / "office")


@pytest.fixture
def sink_harness(tmp_path: Path) -> InboxHarness:
    (tmp_path / "office").mkdir()
    return InboxHarness(tmp_path / "office")


class TestDropFolderContract(SourceContract):
    """The drop-folder source passes the connector contract."""


class TestInboxFolderContract(SinkContract):
    """The inbox-folder sink passes the connector contract."""


async def test_a_file_still_being_written_is_not_picked_up_until_it_stops_changing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "office"
    options = DropOptions(path=root, settle_seconds=3.0, scan_interval=0.1)
    source = CONNECTOR.source(options, CONTEXT)
    await source.start()
    stream = source.deliveries()
    picked: list[Record] = []

    async def collect() -> None:
        async for delivery in stream:
            picked.append(delivery.record)

    collector = asyncio.create_task(collect())
    growing = root / "drop" / "扫描件.pdf"
    try:
        with growing.open("wb") as handle:
            for page in range(10):  # a scanner writing page after page, never still for 3 s
                handle.write(b"page %d\n" % page)
                handle.flush()
                await asyncio.sleep(0.2)
                assert picked == [], "a file that is still growing was picked up"
        await eventually(lambda: len(picked) == 1, "the finished file to be picked up")
        assert picked[0].value["name"] == "扫描件.pdf"
        assert picked[0].value["size"] == len(b"".join(b"page %d\n" % p for p in range(10)))
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await source.stop()


async def test_part_and_lock_files_are_never_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "office"
    (root / "drop").mkdir(parents=True)
    for name in ("报告.docx.part", "~$报告.docx", ".hidden", "下载.crdownload"):
        (root / "drop" / name).write_bytes(b"x")
    source = CONNECTOR.source(DropOptions(path=root, settle_seconds=0, scan_interval=0.1), CONTEXT)
    await source.start()
    stream = source.deliveries()
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 1.0)  # (a timeout also ends this generator)
        drop_file(root, "报告.docx", b"done")
        stream = source.deliveries()
        (delivery,) = await take(stream, 1)
        assert delivery.record.value["name"] == "报告.docx"
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()


async def test_settled_files_move_to_sent_or_failed_with_a_note_and_their_sidecar(
    tmp_path: Path,
) -> None:
    root = tmp_path / "office"
    drop_file(root, "a.pdf", b"A", sidecar='title = "关于A的通知"\nto = ["pref.office"]\n')
    drop_file(root, "b.pdf", b"B")
    source = CONNECTOR.source(DropOptions(path=root, settle_seconds=0, scan_interval=0.1), CONTEXT)
    await source.start()
    stream = source.deliveries()
    try:
        got = {d.record.value["name"]: d for d in await take(stream, 2)}
        assert got["a.pdf"].record.value["meta"] == {"title": "关于A的通知", "to": ["pref.office"]}
        assert (root / "sending" / "a.pdf").exists()
        await got["a.pdf"].ack(Outcome.done(event_id="e-1", ref="doc-1"))
        await got["b.pdf"].ack(Outcome.reject("to: no recipients given and no default"))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()
    assert sorted(p.name for p in (root / "sent").iterdir()) == [
        "a.pdf",
        "a.pdf.result.txt",
        "a.pdf.toml",
    ]
    assert "doc-1" in (root / "sent" / "a.pdf.result.txt").read_text(encoding="utf-8")
    reason = (root / "failed" / "b.pdf.reason.txt").read_text(encoding="utf-8")
    assert "no recipients" in reason
    assert list((root / "sending").iterdir()) == []


async def test_a_broken_sidecar_is_reported_in_the_record_for_the_adapter_to_refuse(
    tmp_path: Path,
) -> None:
    root = tmp_path / "office"
    drop_file(root, "c.pdf", b"C", sidecar="title = 关于\n")
    source = CONNECTOR.source(DropOptions(path=root, settle_seconds=0, scan_interval=0.1), CONTEXT)
    await source.start()
    stream = source.deliveries()
    try:
        (delivery,) = await take(stream, 1)
        assert "not valid TOML" in delivery.record.value["meta_error"]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()


async def test_a_received_file_never_overwrites_a_different_one(tmp_path: Path) -> None:
    root = tmp_path / "office"
    root.mkdir()
    harness = InboxHarness(root)
    sink = harness.make()
    await sink.start()
    first, second = harness.records(2)
    clash = Record(key=second.key, id=second.id, value=first.value, content=second.content)
    outcomes = await sink.send([first, clash])
    assert [o.verdict for o in outcomes] == [Verdict.DONE, Verdict.DONE]
    names = sorted(p.name for p in (root / "inbox").iterdir())
    assert "来文-0.txt" in names and any(n.startswith("来文-0 (") for n in names)
    assert not [n for n in names if n.startswith(".")]  # no partial files left behind


_META_VALUES = st.one_of(any_text, ints, st.booleans(), st.lists(any_text, max_size=3))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(meta=st.dictionaries(any_text, _META_VALUES, max_size=4))
def test_a_received_files_sidecar_holds_the_senders_metadata_exactly_whatever_it_holds(
    tmp_path: Path, meta: dict[str, Any]
) -> None:
    # The keys and values come from another department: a key with `=`, a newline or `[`, or
    # a value with control characters, must come back as written, never as TOML of its own.
    root = tmp_path / "office"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    sink = CONNECTOR.sink(InboxOptions(path=root), CONTEXT)
    name = f"{uuid.uuid4()}.json"
    record = Record(key="k", id=str(uuid.uuid4()), value={"file_name": name, "meta": meta})
    [outcome] = asyncio.run(sink.send([record]))
    if any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(meta, ensure_ascii=False)):
        assert (outcome.verdict, outcome.detail) == (
            Verdict.REJECT,
            "the record holds text that is not valid Unicode",
        )
        return
    assert outcome.verdict is Verdict.DONE
    sidecar = (root / "inbox" / f"{name}.toml").read_text(encoding="utf-8")
    assert tomllib.loads(sidecar) == meta
