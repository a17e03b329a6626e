"""Demo chapter: a registry of 56 certified participants, signed notices from four units and
the region, read and verified by the prefecture office and a city department, and a forged
and a malformed event refused into quarantine with their reasons."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.bus import Publisher
from hub.consumer import Delivery
from hub.demo import Chapter, Story
from hub.display import styled
from hub.envelope import Envelope, seal
from hub.runtime import Hub
from hub.subjects import default_subject
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"

NOTICES = [
    ("akto.civil", "城乡低保标准调整通知", "自2027年1月起阿克陶县城乡低保标准上调。"),
    ("artux.stats", "2026年11月统计月报发布", "阿图什市11月主要经济指标已发布。"),
    ("akqi.health", "冬季流感疫苗接种安排", "阿合奇县各乡镇卫生院开始冬季接种。"),
    ("wuqia.edu", "寒假放假时间通知", "乌恰县中小学寒假自1月15日开始。"),
    ("pref.finance", "州级财政资金拨付通知", "第四季度转移支付资金已拨付各县市。"),
    ("xj.office", "关于做好冬季安全生产工作的通知", "请各地州做好冬季安全生产工作。"),
]
READERS = ("pref.office", "artux.civil")


def forged_and_malformed(hub: Hub) -> list[Envelope]:
    """Two events no honest client produces, sent raw past the client's own checks.

    The forgery is a real notice from akto.civil whose title was changed after signing; the
    malformed one is correctly signed but its body is cut short, so it is not valid Avro.
    """
    sender = "akto.civil"
    schema = hub.schemas.by_name(NOTICE)
    key = hub.keystore.current(sender)
    subject = default_subject(sender, NOTICE)
    honest = seal(
        key, subject, NOTICE, schema.encode({"title": "补助发放名单", "body": "共计120户"})
    )
    forged_body = schema.encode({"title": "补助发放名单（已篡改）", "body": "共计120户"})
    forged = Envelope(subject, dict(honest.headers), forged_body)
    truncated = schema.encode({"title": "月度报表", "body": "完整内容"})[:-6]
    malformed = seal(key, subject, NOTICE, truncated)
    return [forged, malformed]


async def read_as(hub: Hub, reader: str, wanted: set[str]) -> tuple[list[str], list[Delivery]]:
    """A participant reads the hub stream with a durable cursor until it has handled every
    wanted event, verifying each; returns the verified wanted ids and the rejections."""
    consumer = hub.consumer(HUB_STREAM, f"demo_{reader.replace('.', '_')}", ["evt.>"])
    seen: list[str] = []
    rejected: list[Delivery] = []
    handled: set[str] = set()
    deadline = time.monotonic() + 20
    try:
        while wanted - handled and time.monotonic() < deadline:
            for delivery in await consumer.fetch(256, timeout=0.5):
                handled.add(delivery.envelope.event_id)
                if delivery.rejection is not None:
                    await consumer.quarantine(
                        delivery, delivery.rejection.reason, str(delivery.rejection)
                    )
                    rejected.append(delivery)
                    continue
                await delivery.ack()
                if delivery.envelope.event_id in wanted:
                    seen.append(delivery.envelope.event_id)
    finally:
        await consumer.stop()
    return seen, rejected


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Publish the notices and the two bad events; let two participants read and verify."""
    everyone = hub.participants.all()
    envs = [hub.seal(sender, NOTICE, {"title": t, "body": b}) for sender, t, b in NOTICES]
    acks = await hub.publisher.publish_many(envs)
    bad = forged_and_malformed(hub)
    # Sent the way a forger's client would, without the checks every hub publisher makes.
    forger = Publisher(hub.nc)
    try:
        await forger.publish_many(bad)
    finally:
        await forger.close()
    bad_ids = {env.event_id for env in bad}
    wanted = {env.event_id for env in envs} | bad_ids
    readers: dict[str, list[str]] = {}
    rejected: list[dict[str, str]] = []
    for reader in READERS:
        seen, refused = await read_as(hub, reader, wanted)
        readers[reader] = sorted(seen)
        if not rejected:
            rejected = [
                {
                    "event_id": d.envelope.event_id,
                    "source": d.envelope.source,
                    "reason": d.rejection.reason.value if d.rejection else "",
                    "detail": str(d.rejection),
                }
                for d in refused
                if d.envelope.event_id in bad_ids
            ]
    return {
        "participants": len(everyone),
        "units": dict(Counter(p.unit for p in everyone)),
        "published": [
            {"event_id": e.event_id, "source": e.source, "subject": e.subject, "seq": a.seq}
            for e, a in zip(envs, acks, strict=True)
        ],
        "readers": readers,
        "rejected": rejected,
    }


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    units = ", ".join(f"{unit} {count}" for unit, count in facts["units"].items())
    console.print(f"Registry: {facts['participants']} participants with certified keys ({units}).")
    console.print("Departments in four units and the region publish signed notices (通知公告):")
    titles = {sender: title for sender, title, _ in NOTICES}
    table = Table("sender", "title", "subject", "seq")
    for row in facts["published"]:
        table.add_row(row["source"], titles.get(row["source"], ""), row["subject"], str(row["seq"]))
    console.print(table)
    console.print(
        "Two events no honest client sends reach the bus: a notice altered after signing, and a "
        "signed notice whose Avro body is cut short. Two participants read and verify everything:"
    )
    readers = Table("reader", "verified notices")
    for reader, seen in facts["readers"].items():
        readers.add_row(reader, f"{len(seen)} of {len(facts['published'])}")
    console.print(readers)
    console.print("Refused events are kept in the quarantine stream with a typed reason:")
    rejected = Table("event id", "claimed sender", "reason", "detail")
    for row in facts["rejected"]:
        rejected.add_row(
            row["event_id"], row["source"], styled(row["reason"], "red"), row["detail"]
        )
    console.print(rejected)


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    rows = [
        ("participants registered", str(facts["participants"])),
        ("signed events published", str(len(facts["published"]))),
    ]
    rows += [(f"verified by {r}", str(len(seen))) for r, seen in facts["readers"].items()]
    rows.append(("quarantined (forged, malformed)", str(len(facts["rejected"]))))
    return rows


CHAPTER = Chapter(
    name="events",
    title="Signed events between departments (签名事件)",
    run=run,
    render=render,
    summary=summary,
)
