"""`govhub demo`: the Kezhou scenario end to end, told as chapters.

Each chapter is a module of this package with a `CHAPTER`: a title, an async `run(hub, story)`
returning facts as JSON-ready data (the test suite checks them, so the demo cannot silently
stop telling the truth), a `render(console, facts)` for people, and summary rows. `ORDER`
lists the chapters; a capability adds its chapter by adding a module and one line here.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.audit.reader import tree_size
from hub.display import styled
from hub.runtime import Hub

ORDER = [
    "events",
    "schemas",
    "federation",
    "adapters",
    "directory",
    "documents",
    "approval",
    "audit",
]


@dataclass
class Story:
    """State chapters share: what earlier chapters did that later ones build on."""

    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: list[tuple[str, str]] = field(default_factory=list)
    # The audit log's size when the run began: a home can hold earlier runs' leaves.
    log_size_before: int = 0


@dataclass(frozen=True)
class Chapter:
    """One step of the demo."""

    name: str
    title: str
    run: Callable[[Hub, Story], Awaitable[dict[str, Any]]]
    render: Callable[[Console, dict[str, Any]], None]
    summary: Callable[[dict[str, Any]], list[tuple[str, str]]]
    # Runs only on the federated topology (`govhub demo --federated`).
    federated_only: bool = False


def chapters() -> list[Chapter]:
    """The chapters in story order."""
    return [importlib.import_module(f"{__name__}.{name}").CHAPTER for name in ORDER]


async def run_demo(hub: Hub) -> dict[str, Any]:
    """Run every chapter; returns {chapter name: facts} plus the summary and duration."""
    started = time.monotonic()
    story = Story(log_size_before=await tree_size(hub.pool))
    for chapter in chapters():
        if chapter.federated_only and hub.federation is None:
            continue
        facts = await chapter.run(hub, story)
        story.facts[chapter.name] = facts
        story.summary.extend(chapter.summary(facts))
    return {
        "chapters": story.facts,
        "summary": [{"item": k, "value": v} for k, v in story.summary],
        "seconds": round(time.monotonic() - started, 2),
    }


def render(console: Console, result: dict[str, Any]) -> None:
    """Print the story for a person: each chapter, then one summary table."""
    console.rule(styled("govhub demo: the Kezhou prefecture network (克州政务数据共享)", "bold"))
    told = [c for c in chapters() if c.name in result["chapters"]]
    for number, chapter in enumerate(told, start=1):
        console.print()
        console.print(f"{number}. {chapter.title}", style="bold")
        chapter.render(console, result["chapters"][chapter.name])
    table = Table("", "", title="summary", title_justify="left", show_header=False)
    for row in result["summary"]:
        table.add_row(row["item"], row["value"])
    table.add_row("time", f"{result['seconds']:.1f} s")
    console.print()
    console.print(table)
