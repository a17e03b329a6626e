"""Running and checking adapter instances against a connected hub (`govhub adapter run|check`).

`build` turns a checked instance into a Pipeline: the department side is the connector, the
hub side is `hub.integration.bridge` (events) or `hub.integration.docbridge` (documents);
dead letters go to QUARANTINE.
`run_adapters` runs every instance side by side: one failing never stops the others, and
`/healthz` and `/metrics` report each. `check_adapter` connects to both sides and maps a
sample record without publishing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from hub.collaborators import Parts
from hub.errors import GovhubError
from hub.home import Settings
from hub.integration.adapter import Configured
from hub.integration.bridge import EventSink, EventSource
from hub.integration.connector import Check, Record, Sink, Source
from hub.integration.deadletter import QuarantineDeadLetters
from hub.integration.pipeline import Pipeline, mapping_error
from hub.jsonout import to_jsonable
from hub.listen import parse_address, start_site
from hub.metrics import REGISTRY
from hub.userfiles import why

log = structlog.get_logger("hub.integration.host")

PROBE_SECONDS = 30


def work_dir(settings: Settings, name: str) -> Path:
    """Where an instance may keep files (staging for received documents)."""
    path = settings.home.run / "adapters" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def durable_name(name: str) -> str:
    """The JetStream durable consumer of a from_hub instance."""
    return "adapter_" + name.replace("-", "_")


def _hub_sink(parts: Parts, item: Configured) -> Sink:
    if item.plugin.target == "documents":
        from hub.integration.docbridge import DocumentSink

        return DocumentSink(
            parts.settings, parts.trust, parts.bus, parts.signer, item.entry.participant
        )
    return EventSink(parts.trust, parts.bus, parts.signer, item.entry.participant)


def _hub_source(parts: Parts, item: Configured) -> Source:
    name = item.entry.name
    if item.plugin.target == "documents":
        from hub.integration.docbridge import DocumentSource

        return DocumentSource(
            parts.trust,
            parts.bus,
            parts.signer,
            item.entry.participant,
            durable_name(name),
            work_dir(parts.settings, name),
        )
    return EventSource(
        parts.trust, parts.bus, item.entry.participant, item.subjects, durable_name(name)
    )


def ends(parts: Parts, item: Configured) -> tuple[Source, Sink]:
    """(source, sink) of an instance: the connector on the department side,
    hub.integration.bridge (events) or hub.integration.docbridge (documents) on the hub side."""
    context = item.connector_context(work_dir(parts.settings, item.name))
    if item.entry.direction == "to_hub":
        return item.connector.source(item.connector_options, context), _hub_sink(parts, item)
    return _hub_source(parts, item), item.connector.sink(item.connector_options, context)


def transform(item: Configured) -> Callable[[Record], Record | None]:
    """The instance's mapping with its context bound."""
    mapping = item.plugin.to_hub if item.entry.direction == "to_hub" else item.plugin.from_hub
    assert mapping is not None
    context = item.context

    def apply(record: Record) -> Record | None:
        return mapping(record, context)

    return apply


def build(parts: Parts, item: Configured) -> Pipeline:
    """The pipeline of one adapter instance."""
    entry = item.entry
    source, sink = ends(parts, item)
    dead = QuarantineDeadLetters(
        parts.bus.publisher, adapter=entry.name, participant=entry.participant
    )
    return Pipeline(
        entry.name,
        source,
        sink,
        transform(item),
        dead_letters=dead,
        options=entry.pipeline,
    )


@dataclass
class CheckReport:
    """What `govhub adapter check` found for one instance."""

    name: str
    adapter: str
    direction: str
    participant: str
    connector: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    sample: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Every check passed and the sample (if any) fits."""
        good = all(c["ok"] for c in self.checks)
        return good and (self.sample is None or bool(self.sample.get("fits", True)))

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "name": self.name,
            "adapter": self.adapter,
            "direction": self.direction,
            "participant": self.participant,
            "connector": self.connector,
            "ok": self.ok,
            "checks": self.checks,
            "sample": self.sample,
        }


async def _probe(side: str, what: Source | Sink) -> tuple[dict[str, Any], Check | None]:
    try:
        found = await asyncio.wait_for(what.check(), PROBE_SECONDS)
    except TimeoutError:
        detail = f"no answer within {PROBE_SECONDS} seconds"
        return {"side": side, "ok": False, "detail": detail}, None
    except GovhubError as exc:
        return {"side": side, "ok": False, "detail": str(exc)}, None
    except OSError as exc:
        return {"side": side, "ok": False, "detail": f"cannot use it: {why(exc)}"}, None
    return {"side": side, "ok": True, "detail": found.detail}, found


def _sample(parts: Parts, item: Configured, native: Record) -> dict[str, Any]:
    """Map a sample and (for events to the hub) encode it: what would be published."""
    shown: dict[str, Any] = {"native": to_jsonable(dict(native.value)), "key": native.key}
    try:
        mapped = transform(item)(native)
    except Exception as exc:
        return {**shown, "fits": False, "error": f"the mapping refused it: {mapping_error(exc)}"}
    if mapped is None:
        return {**shown, "fits": True, "mapped": None, "note": "the mapping skips this record"}
    shown["mapped"] = to_jsonable(dict(mapped.value))
    shown["kind"] = mapped.kind
    if item.entry.direction == "to_hub" and item.plugin.target == "events":
        try:
            schema = parts.trust.schemas.by_name(mapped.kind)
            shown["encoded_bytes"] = len(schema.encode(mapped.value))
        except GovhubError as exc:
            return {**shown, "fits": False, "error": str(exc)}
        shown["event_id"] = EventSink(
            parts.trust, parts.bus, parts.signer, item.entry.participant
        ).event_id(mapped)
    return {**shown, "fits": True}


async def check_adapter(parts: Parts, item: Configured) -> CheckReport:
    """Connect to both ends and map a sample record; nothing is published or consumed."""
    entry = item.entry
    report = CheckReport(
        name=entry.name,
        adapter=entry.adapter,
        direction=entry.direction,
        participant=entry.participant,
        connector=item.connector.name,
    )
    for name in item.plugin.schemas:
        try:
            parts.trust.schemas.by_name(name)
            report.checks.append({"side": "schema", "ok": True, "detail": f"{name} is known"})
        except GovhubError as exc:
            report.checks.append({"side": "schema", "ok": False, "detail": str(exc)})
    source, sink = ends(parts, item)
    to_hub = entry.direction == "to_hub"
    department, found = await _probe("department", source if to_hub else sink)
    hub_check, _ = await _probe("hub", sink if to_hub else source)
    report.checks += [department, hub_check]
    native = found.sample if found is not None and found.sample is not None else None
    if native is None and item.plugin.sample is not None:
        native = Record(key="sample", value=item.plugin.sample, kind=_sample_kind(item))
        if not to_hub:
            native = _as_hub_event(item, native)
    if native is not None:
        report.sample = _sample(parts, item, native)
    return report


def _as_hub_event(item: Configured, native: Record) -> Record | None:
    """A from_hub instance's sample: the adapter's native sample as the event it becomes."""
    if item.plugin.to_hub is None:
        return None
    try:
        event = item.plugin.to_hub(native, item.context)
        if event is not None and item.plugin.target == "documents":
            from hub.integration.docbridge import received_sample

            return received_sample(event, "(sender)")
    except Exception:
        return None
    if event is None:
        return None
    return Record(
        key="sample-event",
        id="01900000-0000-7000-8000-000000000000",
        value=event.value,
        kind=event.kind,
        time=event.time,
        subject=event.subject,
        headers={"source": "(sender)"},
    )


def _sample_kind(item: Configured) -> str:
    sample = item.plugin.sample or {}
    return str(sample.get("type", "")) if "payload" in sample else ""


async def serve_health(pipelines: Sequence[Pipeline], address: str) -> web.AppRunner:
    """/healthz (200 only while every adapter runs) and /metrics for the running adapters."""

    async def healthz(_request: web.Request) -> web.Response:
        states = {p.name: p.stats.to_json() for p in pipelines}
        ok = all(s["state"] == "running" for s in states.values())
        return web.json_response({"ok": ok, "adapters": states}, status=200 if ok else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=REGISTRY.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = parse_address(address)
    try:
        await start_site(web.TCPSite(runner, host, port), host, port, "/healthz and /metrics")
    except BaseException:
        await runner.cleanup()
        raise
    log.info("adapters.http", address=address)
    return runner


async def run_adapters(
    pipelines: Sequence[Pipeline],
    stop: asyncio.Event,
    *,
    http: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every pipeline until `stop`; a failing one is reported, the others keep running."""
    runner = await serve_health(pipelines, http) if http else None

    async def supervise(pipeline: Pipeline) -> None:
        try:
            await pipeline.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Already logged and marked failed by the pipeline; siblings are not touched.
            log.error("adapters.instance.failed", adapter=pipeline.name, error=str(exc))

    try:
        async with asyncio.TaskGroup() as group:
            for pipeline in pipelines:
                group.create_task(supervise(pipeline), name=pipeline.name)
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
    return {p.name: p.stats.to_json() for p in pipelines}
