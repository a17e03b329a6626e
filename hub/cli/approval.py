"""`govhub approval ...`: parallel approval (网上并联审批) from the command line.

Every sub-command first catches the projection up with the bus (signing the decisions that
fall to leads whose keys this home holds), so states are current without `govhub serve`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hub.approval import agent
from hub.approval.model import Decision
from hub.approval.tracker import rebuild
from hub.approval.views import case_view, list_cases, progress
from hub.approval.workflow import Approvals
from hub.cli.common import async_command, emit, json_option, settings
from hub.display import console, line, styled
from hub.errors import InputError
from hub.runtime import Hub, open_hub

STATE_STYLE = {
    "reviewing": "yellow",
    "material_requested": "cyan",
    "approved": "green",
    "approved_with_conditions": "green",
    "refused": "red",
    "closed": "dim",
    "open": "yellow",
    "decided": "green",
    "withdrawn": "dim",
}
DECISIONS = {
    "approve": Decision.APPROVE,
    "approve-with-conditions": Decision.APPROVE_WITH_CONDITIONS,
    "refuse": Decision.REFUSE,
}


async def _with(ctx: click.Context, act: Callable[[Approvals, Hub], Awaitable[Any]]) -> Any:
    async with open_hub(settings(ctx)) as hub:
        approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
        await approvals.catch_up()
        return await act(approvals, hub)


def _docs(values: tuple[str, ...]) -> dict[str, Path]:
    docs: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InputError(f"--doc {value!r}: write NAME=FILE, e.g. --doc site-plan=规划图.pdf")
        if name.strip() in docs:
            raise InputError(f"--doc {name.strip()} is given twice")
        docs[name.strip()] = Path(path.strip())
    return docs


def _state(value: str, label: str | None = None) -> Any:
    return styled(label or value, STATE_STYLE.get(value, ""))


def _left(review: dict[str, Any]) -> str:
    if review["working_days_left"] is None:
        return ""
    if review["overdue"]:
        return "超期 overdue"
    if review["paused"]:
        return f"{review['working_days_left']} (补正, paused)"
    return str(review["working_days_left"])


def _print_case(view: dict[str, Any]) -> None:
    console.print(
        line(
            (view["case_number"], "bold"),
            f"  {view['title']}  applicant {view['applicant']}  lead {view['lead']}  ",
            _state(view["state"], f"{view['state']} {view['state_zh']}"),
            f"  outcome {view['outcome']} {view['outcome_zh']}" if view["outcome"] else "",
        )
    )
    table = Table("reviewer", "matter", "state", "days left", "deadline", "opinion")
    for r in view["reviews"]:
        said = r["reasons"] or "; ".join(r["conditions"]) or ""
        if r["late"]:
            said = f"(late) {said}"
        table.add_row(
            r["reviewer"],
            r["label"],
            _state(r["state"], f"{r['state_zh']}"),
            _left(r),
            r["deadline"] or "",
            said,
        )
    console.print(table)
    for r in view["reviews"]:
        for m in r["material"]:
            end = f"{m['ended_by']} {m['ended_at']}" if m["ended_at"] else "open"
            console.print(
                f"  补正 {m['request_id']} by {r['reviewer']}: {', '.join(m['items'])} ({end})"
            )
    for refused in view.get("refused", []):
        console.print(
            line(
                "  quarantined ",
                (refused["reason"], "red"),
                f" from {refused['source']}: {refused['detail']}",
            )
        )


def _print_result(result: dict[str, Any]) -> None:
    if result.get("state") == "queued":
        console.print(f"queued: {result['message']}")
        return
    _print_case(result)


@click.group("approval")
def approval() -> None:
    """Parallel approval (并联审批): open, opinion, 补正, withdraw, progress, cases."""


@approval.command("types")
@json_option
@click.pass_context
def types_cmd(ctx: click.Context, as_json: bool) -> None:
    """The configured case types, their reviewers and time limits, and the holiday calendar."""
    from hub.approval.casetypes import load_config

    config = load_config(settings(ctx).home)
    data: dict[str, Any] = {
        "types": [
            {
                "name": t.name,
                "title": t.spec.title,
                "lead": t.spec.lead,
                "supervisor": t.spec.supervisor,
                "digest": t.digest,
                "file": str(t.path),
                "documents": [
                    {"name": d.name, "label": d.label, "required": d.required}
                    for d in t.spec.documents
                ],
                "reviewers": [
                    {
                        "department": r.department,
                        "label": r.label,
                        "working_days": r.working_days,
                        "material_requests": r.material_requests,
                        "refusal_ends_case": (
                            t.spec.refusal_ends_case
                            if r.refusal_ends_case is None
                            else r.refusal_ends_case
                        ),
                        "resources": list(r.resources),
                    }
                    for r in t.spec.reviewers
                ],
            }
            for t in config.types.values()
        ],
        "calendar": {str(year): source for year, source in sorted(config.calendar.years.items())},
    }

    def human() -> None:
        for t in data["types"]:
            console.print(line((t["name"], "bold"), f"  {t['title']}  lead {t['lead']}"))
            table = Table("reviewer", "matter", "working days", "补正", "refusal ends case")
            for r in t["reviewers"]:
                table.add_row(
                    r["department"],
                    r["label"],
                    str(r["working_days"]),
                    str(r["material_requests"]),
                    "yes" if r["refusal_ends_case"] else "no",
                )
            console.print(table)
            console.print(
                "  materials: " + ", ".join(f"{d['name']} ({d['label']})" for d in t["documents"])
            )
        for year, source in data["calendar"].items():
            console.print(f"holiday calendar {year}: {source}")

    emit(as_json, data, human)


@approval.command("open")
@click.option("--as", "as_id", required=True, help="The lead department (牵头部门).")
@click.option("--type", "type_name", required=True, help="The case type (govhub approval types).")
@click.option("--title", required=True, help="What is applied for (事项名称).")
@click.option("--applicant", required=True, help="The applicant (申请人).")
@click.option("--applicant-code", default="", help="统一社会信用代码 of a company applicant.")
@click.option("--unit", default="", help="The county or city of the project (属地), e.g. akto.")
@click.option("--number", default=None, help="The case number (受理编号); generated if omitted.")
@click.option("--doc", "docs", multiple=True, help="A material: NAME=FILE (repeat).")
@json_option
@click.pass_context
@async_command
async def open_cmd(
    ctx: click.Context,
    as_id: str,
    type_name: str,
    title: str,
    applicant: str,
    applicant_code: str,
    unit: str,
    number: str | None,
    docs: tuple[str, ...],
    as_json: bool,
) -> None:
    """受理 and 分送: open a case, send its materials, assign every reviewer at once."""
    materials = _docs(docs)
    result = await _with(
        ctx,
        lambda a, _hub: a.open(
            as_id,
            type_name,
            title=title,
            applicant_name=applicant,
            applicant_code=applicant_code,
            unit=unit,
            case_number=number,
            documents=materials,
        ),
    )
    emit(as_json, result, lambda: _print_result(result))


@approval.command("show")
@click.argument("case")
@json_option
@click.pass_context
@async_command
async def show_cmd(ctx: click.Context, case: str, as_json: bool) -> None:
    """One case: every review with its clock, the materials, the history."""
    result = await _with(ctx, lambda a, hub: case_view(hub.pool, a.config, case))
    emit(as_json, result, lambda: _print_case(result))


@approval.command("progress")
@click.argument("case")
@json_option
@click.pass_context
@async_command
async def progress_cmd(ctx: click.Context, case: str, as_json: bool) -> None:
    """办件进度: the applicant's view of a case, by case number or id."""
    result = await _with(ctx, lambda a, hub: progress(hub.pool, hub.trust, a.config, case))

    def human() -> None:
        console.print(
            line(
                (result["case_number"], "bold"),
                f"  {result['title']}  申请人 {result['applicant']}  办理状态 {result['status']}",
                f"  办理结果 {result['outcome']}" if result["outcome"] else "",
            )
        )
        table = Table("审查部门", "审查事项", "状态", "剩余工作日", "需补正材料", "意见")
        for d in result["departments"]:
            table.add_row(
                d["department"],
                d["matter"],
                d["status"],
                "" if d["working_days_left"] is None else str(d["working_days_left"]),
                "、".join(d["to_supply"]),
                d["reasons"] or "；".join(d["conditions"]),
            )
        console.print(table)

    emit(as_json, result, human)


@approval.command("opinion")
@click.argument("case")
@click.option("--as", "as_id", required=True, help="The reviewing department (signs).")
@click.option("--decision", type=click.Choice(list(DECISIONS)), required=True)
@click.option("--reason", default="", help="Why (required for refuse).")
@click.option("--condition", "conditions", multiple=True, help="A condition (repeat).")
@click.option("--basis", default="", help="The legal basis (法律依据).")
@json_option
@click.pass_context
@async_command
async def opinion_cmd(
    ctx: click.Context,
    case: str,
    as_id: str,
    decision: str,
    reason: str,
    conditions: tuple[str, ...],
    basis: str,
    as_json: bool,
) -> None:
    """审查意见: sign your department's opinion on a case assigned to it."""
    result = await _with(
        ctx,
        lambda a, _hub: a.opinion(
            as_id,
            case,
            DECISIONS[decision],
            reasons=reason,
            conditions=conditions,
            legal_basis=basis,
        ),
    )
    emit(as_json, result, lambda: _print_result(result))


@approval.command("request-material")
@click.argument("case")
@click.option("--as", "as_id", required=True, help="The reviewing department (signs).")
@click.option("--item", "items", multiple=True, required=True, help="What is missing (repeat).")
@click.option("--reason", default="", help="Why it is needed.")
@json_option
@click.pass_context
@async_command
async def request_cmd(
    ctx: click.Context, case: str, as_id: str, items: tuple[str, ...], reason: str, as_json: bool
) -> None:
    """补正通知: ask for more material; your clock pauses until it is supplied."""
    result = await _with(ctx, lambda a, _hub: a.request_material(as_id, case, items, reason))
    emit(as_json, result, lambda: _print_result(result))


@approval.command("supply-material")
@click.argument("case")
@click.option("--as", "as_id", required=True, help="The lead department (signs).")
@click.option("--request", "request_id", required=True, help="The 补正 request answered.")
@click.option("--doc", "docs", multiple=True, required=True, help="A material: NAME=FILE.")
@click.option("--note", default="", help="A note for the reviewer.")
@json_option
@click.pass_context
@async_command
async def supply_cmd(
    ctx: click.Context,
    case: str,
    as_id: str,
    request_id: str,
    docs: tuple[str, ...],
    note: str,
    as_json: bool,
) -> None:
    """补正材料: hand on the applicant's material; the reviewer's clock runs again."""
    materials = _docs(docs)
    result = await _with(
        ctx, lambda a, _hub: a.supply_material(as_id, case, request_id, materials, note)
    )
    emit(as_json, result, lambda: _print_result(result))


@approval.command("withdraw")
@click.argument("case")
@click.option("--as", "as_id", required=True, help="The lead department (signs).")
@click.option("--reason", required=True, help="Why (撤回理由).")
@json_option
@click.pass_context
@async_command
async def withdraw_cmd(
    ctx: click.Context, case: str, as_id: str, reason: str, as_json: bool
) -> None:
    """撤回: withdraw the application; open reviews end."""
    result = await _with(ctx, lambda a, _hub: a.withdraw(as_id, case, reason))
    emit(as_json, result, lambda: _print_result(result))


@approval.command("cases")
@click.option("--as", "as_id", default=None, help="Only cases this department leads or reviews.")
@click.option(
    "--state", type=click.Choice(["open", "decided", "withdrawn"]), default=None, help="Filter."
)
@click.option("--limit", default=500, show_default=True)
@json_option
@click.pass_context
@async_command
async def cases_cmd(
    ctx: click.Context, as_id: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """The supervisor's view: every case, overdue reviews first."""
    found = await _with(
        ctx,
        lambda a, hub: list_cases(hub.pool, a.config, participant=as_id, state=state, limit=limit),
    )

    def human() -> None:
        table = Table("case", "title", "lead", "state", "opinions", "overdue", "next deadline")
        for c in found:
            table.add_row(
                c["case_number"],
                c["title"],
                c["lead"],
                _state(
                    c["state"], f"{c['state_zh']}" + (f" {c['outcome_zh']}" if c["outcome"] else "")
                ),
                f"{c['decided_reviews']}/{c['reviews']}",
                styled(", ".join(c["overdue"]), "red"),
                c["next_deadline"] or "",
            )
        console.print(table)

    emit(as_json, found, human)


@approval.command("sweep")
@json_option
@click.pass_context
@async_command
async def sweep_cmd(ctx: click.Context, as_json: bool) -> None:
    """One sweep of the operator's clock: 超期预警, 超期督办 (govhub serve: every 60 s)."""

    async def act(a: Approvals, hub: Hub) -> Any:
        done = await agent.sweep(hub.pool, hub.trust, hub.signer, a.config)
        await a.catch_up()
        return done

    result = await _with(ctx, act)
    emit(
        as_json,
        result,
        lambda: console.print(
            f"{len(result['warned'])} warning(s), {len(result['escalated'])} escalation(s)"
        ),
    )


@approval.command("rebuild")
@json_option
@click.pass_context
@async_command
async def rebuild_cmd(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the projection from the stream (empties the approval tables first)."""
    async with open_hub(settings(ctx)) as hub:
        await rebuild(hub.pool, hub.bus)
        approvals = Approvals(hub.pool, hub.settings, hub.trust, hub.bus, hub.signer)
        await approvals.catch_up()
        count = await hub.pool.fetchval("SELECT count(*) FROM apr_cases")
    data = {"cases": count}
    emit(as_json, data, lambda: console.print(f"rebuilt {count} case(s) from the stream"))


COMMANDS = [approval]
