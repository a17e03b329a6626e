"""`govhub bench approval`: cases opened and completed per second, last opinion to decision.

N cases of four reviewers each go through the whole signed path on one hub: the lead signs and
publishes each case (CaseOpened, CaseAssigned), then the four reviewers sign their opinions; the
`approval` service's loop (projection, then the lead's agent signing the CaseDecided that
follows from the opinions) runs in the same process, as in `govhub serve`. Figures:

- cases opened per second: from the first publish until every case is assigned in PostgreSQL;
- cases completed per second: from the first opinion until every case is decided in PostgreSQL;
- last opinion → decision: per case, from when the hub stream stored its last opinion to when
  it stored the lead's signed decision, and to when the projection had applied it (p50, p99);
- the raw client: plain nats-py `publish_async` of the same event bodies, unsigned, into a
  stream with the same settings, next to govhub's signed publishing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from hub.approval import agent
from hub.approval.casetypes import load_config
from hub.approval.model import (
    ASSIGNED_SCHEMA,
    OPENED_SCHEMA,
    OPINION_SCHEMA,
    Decision,
    Kind,
    case_subject,
)
from hub.approval.tracker import ApprovalTracker
from hub.bench.bus import RAW_STREAM, plain_client, raw_publish
from hub.bench.measure import latency_ms, machine, peak_rss_mb, print_results
from hub.bus import provision
from hub.display import console
from hub.envelope import Envelope, new_event_id
from hub.runtime import Hub
from hub.waits import poll

LEAD = "pref.housing"
SUPERVISOR = "pref.office"
REVIEWERS = ("pref.drc", "pref.natres", "pref.emergency", "pref.health")
CHUNK = 500


def _open_events(hub: Hub, number: str) -> tuple[str, str, list[Envelope]]:
    case_id = new_event_id()
    opened = hub.seal(
        LEAD,
        OPENED_SCHEMA,
        {
            "case_id": case_id,
            "case_number": number,
            "case_type": "bench",
            "type_digest": "0" * 64,
            "title": f"基准测试项目 {number}",
            "applicant_name": "基准测试有限公司",
            "applicant_code": "",
            "unit": "",
            "lead": LEAD,
            "supervisor": SUPERVISOR,
            "attachments": [],
        },
        subject=case_subject(LEAD, Kind.OPENED, case_id),
    )
    assigned = hub.seal(
        LEAD,
        ASSIGNED_SCHEMA,
        {
            "case_id": case_id,
            "opened_event_id": opened.event_id,
            "assignments": [
                {
                    "reviewer": r,
                    "label": "基准审查",
                    "working_days": 5,
                    "refusal_ends_case": True,
                    "material_requests": 0,
                    "warn_days": 2,
                    "resources": [],
                }
                for r in REVIEWERS
            ],
        },
        subject=case_subject(LEAD, Kind.ASSIGNED, case_id),
    )
    return case_id, opened.event_id, [opened, assigned]


def _opinions(hub: Hub, case_id: str, opened_event_id: str) -> list[Envelope]:
    return [
        hub.seal(
            r,
            OPINION_SCHEMA,
            {
                "case_id": case_id,
                "opened_event_id": opened_event_id,
                "reviewer": r,
                "decision": Decision.APPROVE.symbol,
                "reasons": "",
                "conditions": [],
                "legal_basis": "",
            },
            subject=case_subject(r, Kind.OPINION, case_id),
        )
        for r in REVIEWERS
    ]


async def _until(hub: Hub, sql: str, args: tuple[Any, ...], target: int, timeout: float) -> float:
    """Seconds until the query counts `target` rows; the projection runs in another task of
    this process and has no event to await, so this samples every 20 ms."""
    started = time.perf_counter()

    async def reached() -> bool:
        return bool(await hub.pool.fetchval(sql, *args) >= target)

    if not await poll(reached, timeout=timeout, every=0.02):
        raise TimeoutError(f"the projection did not reach {target} rows in {timeout:g} s")
    return time.perf_counter() - started


async def _latencies(hub: Hub, prefix: str) -> tuple[list[float], list[float]]:
    """Per decided case: last opinion stored → decision stored, and → decision applied (s)."""
    rows = await hub.pool.fetch(
        "SELECT max(o.stored_at) AS last_opinion, d.stored_at AS decided, d.applied_at"
        " FROM apr_cases c JOIN apr_events o ON o.case_id = c.case_id AND o.kind = 'opinion'"
        " JOIN apr_events d ON d.event_id = c.decided_event_id"
        " WHERE c.case_number LIKE $1 GROUP BY c.case_id, d.stored_at, d.applied_at",
        prefix,
    )
    return (
        [(r["decided"] - r["last_opinion"]).total_seconds() for r in rows],
        [(r["applied_at"] - r["last_opinion"]).total_seconds() for r in rows],
    )


async def run_bench(
    hub: Hub,
    cases: int,
    on_step: Callable[[str, int, int], None],
    *,
    rate: float = 20.0,
    paced: int = 200,
) -> dict[str, Any]:
    """The measurements, as a JSON-ready report.

    Throughput: `cases` cases opened at once, then all their opinions at once. Latency:
    `paced` more cases whose opinions arrive at `rate` cases per second, as a working day
    brings them, so that last opinion → decision measures the path, not a backlog.
    """
    config = load_config(hub.settings.home)
    run = random.randrange(10_000)
    flood, steady = f"BENCH{run:04d}-F%", f"BENCH{run:04d}-P%"
    follower = ApprovalTracker(hub.pool, hub.settings, hub.trust, hub.bus, config)
    await follower.catch_up()  # earlier events out of the way

    async def follow() -> None:  # what `govhub serve`'s approval service does
        while True:
            if await follower.step(timeout=0.2):
                await agent.decide_ready(hub.pool, hub.signer)

    task = asyncio.create_task(follow())
    try:
        opened: list[tuple[str, str]] = []
        bodies: list[bytes] = []
        total = cases + paced
        started = time.perf_counter()
        for start in range(0, total, CHUNK):
            envs: list[Envelope] = []
            for i in range(start, min(total, start + CHUNK)):
                number = f"BENCH{run:04d}-{'F' if i < cases else 'P'}{i:06d}"
                case_id, event_id, events = _open_events(hub, number)
                opened.append((case_id, event_id))
                envs += events
            bodies += [e.body for e in envs]
            await hub.publisher.publish_many(envs)
            on_step("open", len(opened), total)
        open_publish_s = time.perf_counter() - started
        count_assigned = "SELECT count(*) FROM apr_assignments a JOIN apr_cases c USING (case_id)"
        await _until(
            hub,
            count_assigned + " WHERE c.case_number LIKE $1",
            (f"BENCH{run:04d}-%",),
            total * len(REVIEWERS),
            600,
        )
        open_s = time.perf_counter() - started

        started = time.perf_counter()
        for start in range(0, cases, CHUNK):
            envs = [
                e
                for c, o in opened[start : min(cases, start + CHUNK)]
                for e in _opinions(hub, c, o)
            ]
            bodies += [e.body for e in envs]
            await hub.publisher.publish_many(envs)
            on_step("opinions", min(cases, start + CHUNK), cases)
        count_decided = (
            "SELECT count(*) FROM apr_cases WHERE case_number LIKE $1 AND state = 'decided'"
        )
        await _until(hub, count_decided, (flood,), cases, 1800)
        complete_s = time.perf_counter() - started

        began = time.perf_counter()
        for n, (case_id, event_id) in enumerate(opened[cases:]):
            # Pacing: the offered load of the latency run (there is nothing to await).
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            await hub.publisher.publish_many(_opinions(hub, case_id, event_id), atomic=False)
            on_step("paced", n + 1, paced)
        await _until(hub, count_decided, (steady,), paced, 600)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await follower.stop()
    flood_stored, _ = await _latencies(hub, flood)
    to_stored, to_applied = await _latencies(hub, steady)
    refused = await hub.pool.fetchval(
        "SELECT count(*) FROM apr_refused WHERE case_id IN"
        " (SELECT case_id FROM apr_cases WHERE case_number LIKE $1)",
        f"BENCH{run:04d}-%",
    )
    await provision(hub.nc, [RAW_STREAM])
    async with plain_client(hub) as plain:
        raw = await raw_publish(plain, bodies)
    return {
        "cases": cases,
        "reviewers_per_case": len(REVIEWERS),
        "events": len(bodies) + total,  # every case also gets its signed decision
        "opened": {"seconds": round(open_s, 2), "cases_per_s": round(total / open_s, 1)},
        "completed": {
            "seconds": round(complete_s, 2),
            "cases_per_s": round(cases / complete_s, 1),
            "last_opinion_to_decision_stored_in_backlog": latency_ms(flood_stored),
        },
        "paced": {
            "cases": paced,
            "offered_cases_per_s": rate,
            "last_opinion_to_decision_stored": latency_ms(to_stored),
            "last_opinion_to_decision_applied": latency_ms(to_applied),
        },
        "publish": {
            "govhub_signed_events_per_s": round(2 * total / open_publish_s),
            "raw_publish_async_events_per_s": raw["events_per_s"],
        },
        "refused": refused,
        "machine": machine(),
        "peak_rss_mb": peak_rss_mb(),
    }


def render(result: dict[str, Any]) -> None:
    """The figures for a person."""
    paced = result["paced"]
    stored, applied = (
        paced["last_opinion_to_decision_stored"],
        paced["last_opinion_to_decision_applied"],
    )
    p = result["publish"]
    offered = f"{paced['offered_cases_per_s']:g}"
    print_results(
        console,
        f"bench approval: {result['cases']:,} cases x {result['reviewers_per_case']} reviewers, "
        f"{result['events']:,} signed events",
        [
            ("cases opened / s", str(result["opened"]["cases_per_s"]), ""),
            ("cases completed / s", str(result["completed"]["cases_per_s"]), ""),
            (
                f"last opinion → decision stored p50 / p99 ms, {offered} cases/s",
                f"{stored['p50_ms']} / {stored['p99_ms']}",
                "",
            ),
            (
                "last opinion → decision applied p50 / p99 ms",
                f"{applied['p50_ms']} / {applied['p99_ms']}",
                "",
            ),
            (
                "case events published / s",
                f"{p['govhub_signed_events_per_s']:,}",
                f"{p['raw_publish_async_events_per_s']:,}",
            ),
        ],
    )
