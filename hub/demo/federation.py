"""Demo chapter (federated only): county departments publish on their own leaf nodes, the hub
sources every county stream, an outage drill cuts one county's uplink while it keeps working,
and the server itself refuses a department acting as another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.consumer import Consumer
from hub.demo import Chapter, Story
from hub.display import line, styled
from hub.envelope import Envelope
from hub.errors import AccessDenied
from hub.runtime import Hub
from hub.topology import HUB_STREAM

NOTICE = "gov.common.v1.Notice"
SENDERS = ("artux.stats", "akto.civil", "akqi.health", "wuqia.edu")
DRILL_UNIT = "akto"
DRILL_SENDERS = ("akto.civil", "akto.edu")
DRILL_EVENTS = 100  # per sender
WAIT_S = 120.0


async def _collect(consumer: Consumer, wanted: set[str]) -> dict[str, Any]:
    """Read the hub stream until every wanted event arrived: id -> (seq, origin, time)."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + WAIT_S
    while wanted - seen.keys() and time.monotonic() < deadline:
        for delivery in await consumer.fetch(500, timeout=0.5):
            await delivery.ack()
            event_id = delivery.envelope.event_id
            if event_id in wanted:
                seen[event_id] = {
                    "seq": delivery.seq,
                    "origin": list(delivery.origin) if delivery.origin else None,
                    "verified": delivery.event is not None,
                    "source": delivery.envelope.source,
                    "arrived": time.monotonic(),
                }
    return seen


async def _publish(hub: Hub, sender: str, titles: Sequence[str]) -> tuple[list[Envelope], Any]:
    link = await hub.link(sender)
    assert link is not None
    envs = [hub.seal(sender, NOTICE, {"title": t, "body": "克州"}) for t in titles]
    acks = await link.publisher.publish_many(envs)
    return envs, acks


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Arrivals from every county, the outage drill, and a refused impersonation."""
    federation = hub.federation
    assert federation is not None and federation.servers is not None
    servers = federation.servers
    nodes = [n.to_json() for n in servers.status()]
    consumer = hub.consumer(HUB_STREAM, None, ["*.*.*.notice"], deliver_new=True, quarantine=False)
    await consumer.start()
    try:
        sent_at = time.monotonic()
        arrivals = []
        envs: list[Envelope] = []
        for sender in SENDERS:
            published, acks = await _publish(hub, sender, ["县级通知 county notice"])
            envs += published
            arrivals.append(
                {
                    "sender": sender,
                    "county_stream": acks[0].stream,
                    "county_seq": acks[0].seq,
                    "domain": acks[0].domain,
                }
            )
        seen = await _collect(consumer, {e.event_id for e in envs})
        for row, env in zip(arrivals, envs, strict=True):
            got = seen.get(env.event_id, {})
            row.update(
                hub_seq=got.get("seq"),
                origin=got.get("origin"),
                verified=got.get("verified", False),
            )
        arrival_s = max((v["arrived"] for v in seen.values()), default=sent_at) - sent_at

        servers.uplink(DRILL_UNIT, enabled=False)
        try:
            drill_envs: list[Envelope] = []
            local_acks = 0
            for sender in DRILL_SENDERS:
                titles = [f"断网期间 offline #{i}" for i in range(DRILL_EVENTS)]
                published, acks = await _publish(hub, sender, titles)
                drill_envs += published
                local_acks += sum(1 for a in acks if a.domain == f"cty-{DRILL_UNIT}")
            await asyncio.sleep(1.0)  # let the hub show it received nothing
            during = await consumer.fetch(500, timeout=0.5)
            for delivery in during:
                await delivery.ack()
            reached_during = sum(
                1 for d in during if d.envelope.event_id in {e.event_id for e in drill_envs}
            )
        finally:
            servers.uplink(DRILL_UNIT, enabled=True)
        restored = time.monotonic()
        caught = await _collect(consumer, {e.event_id for e in drill_envs})
        catch_up_s = max((v["arrived"] for v in caught.values()), default=restored) - restored
        in_order = all(_in_order(caught, drill_envs, sender) for sender in DRILL_SENDERS)
        origins = sorted(v["origin"][1] for v in caught.values() if v["origin"])
    finally:
        await consumer.stop()

    refused = await _impersonation(hub)
    return {
        "nodes": nodes,
        "arrivals": arrivals,
        "arrival_seconds": round(arrival_s, 2),
        "drill": {
            "unit": DRILL_UNIT,
            "published_offline": len(drill_envs),
            "acked_by_county": local_acks,
            "reached_hub_while_cut": reached_during,
            "arrived_after_restore": len(caught),
            "exactly_once": len(caught) == len(drill_envs),
            "per_origin_order": in_order,
            "origin_sequences_contiguous": _contiguous(origins),
            "catch_up_seconds": round(catch_up_s, 2),
        },
        "refused": refused,
    }


def _in_order(caught: dict[str, Any], envs: Sequence[Envelope], sender: str) -> bool:
    """Whether one sender's events got hub sequences in the order it published them."""
    seqs = [caught[e.event_id]["seq"] for e in envs if e.source == sender and e.event_id in caught]
    return seqs == sorted(seqs)


def _contiguous(numbers: Sequence[int]) -> bool:
    return bool(numbers) and list(numbers) == list(range(numbers[0], numbers[0] + len(numbers)))


async def _impersonation(hub: Hub) -> dict[str, str]:
    """akto.civil signs correctly but addresses akto.edu's subject: the county server refuses."""
    link = await hub.link("akto.civil")
    assert link is not None
    honest = hub.seal("akto.civil", NOTICE, {"title": "冒充 impersonation", "body": "x"})
    forged = Envelope("evt.akto.edu.notice", dict(honest.headers), honest.body)
    # Sent past the client's own checks, as a dishonest client would: the server must refuse.
    bare = link.new_publisher(guard=None)
    try:
        await bare.publish(forged)
    except AccessDenied as exc:
        return {
            "subject": forged.subject,
            "by": "akto.civil",
            "verdict": "refused by the server",
            "error": str(exc),
        }
    return {"subject": forged.subject, "by": "akto.civil", "verdict": "ACCEPTED", "error": ""}


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    nodes = Table("node", "role", "JetStream domain", "client url", "pid")
    for node in facts["nodes"]:
        nodes.add_row(
            node["name"],
            node["role"],
            node["domain"] or "(via hub)",
            node["client_url"],
            str(node["pid"]),
        )
    console.print("Each county and city runs its own leaf node with its own JetStream domain:")
    console.print(nodes)
    arrivals = Table("sender", "acked by", "county seq", "hub seq", "origin", "verified")
    for row in facts["arrivals"]:
        origin = f"{row['origin'][0]} #{row['origin'][1]}" if row["origin"] else "-"
        arrivals.add_row(
            row["sender"],
            f"{row['county_stream']} ({row['domain']})",
            str(row["county_seq"]),
            str(row["hub_seq"]),
            origin,
            styled("yes") if row["verified"] else styled("no", "red"),
        )
    console.print(
        "Departments publish into their county's stream; the hub sources every county stream "
        f"(all arrived within {facts['arrival_seconds']:.2f} s):"
    )
    console.print(arrivals)
    drill = facts["drill"]
    console.print(
        f"Outage drill: {drill['unit']}'s uplink cut; its departments published "
        f"{drill['published_offline']} events, {drill['acked_by_county']} acknowledged by the "
        f"county itself, {drill['reached_hub_while_cut']} reached the hub while cut. Uplink "
        f"restored: {drill['arrived_after_restore']} arrived in {drill['catch_up_seconds']:.2f} s,"
        f" exactly once: {drill['exactly_once']}, "
        f"per-origin order kept: {drill['per_origin_order']}."
    )
    refused = facts["refused"]
    console.print(
        line(
            f"{refused['by']} publishing on {refused['subject']}: ",
            (refused["verdict"], "bold"),
            f" ({refused['error']})",
        )
    )


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    drill = facts["drill"]
    return [
        ("federated nodes", str(len(facts["nodes"]))),
        (
            "county events sourced by the hub",
            f"{sum(1 for a in facts['arrivals'] if a['hub_seq'])} of {len(facts['arrivals'])}",
        ),
        (
            "outage drill",
            f"{drill['arrived_after_restore']}/{drill['published_offline']} caught up in "
            f"{drill['catch_up_seconds']:.2f} s, exactly once: {drill['exactly_once']}",
        ),
        ("impersonation", facts["refused"]["verdict"]),
    ]


CHAPTER = Chapter(
    name="federation",
    title="Counties on their own leaf nodes, sourced by the hub (县级节点与断网演练)",
    run=run,
    render=render,
    summary=summary,
    federated_only=True,
)
