"""The ``audit`` service of ``govhub serve``: appender, checkpoints, local witnesses, read API.

Wiring only. While this process holds the writer lock it appends and signs a checkpoint at
least every ``checkpoint_interval`` seconds while the log grows; a standby process serves the
read API and its witnesses and waits. ``AuditLog`` assembles the same parts for commands and
the demo, which run without ``govhub serve``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from hub import health
from hub.audit import api
from hub.audit.appender import DB_ERRORS, Appender
from hub.audit.checkpoints import ALARM_SUBJECT, CHECKPOINT_SUBJECT, Checkpointer
from hub.audit.config import AuditConfig, audit_dir, load_config, local_witness_name
from hub.audit.logkeys import LogKeyRing, witness_signer
from hub.audit.note import Verifier
from hub.audit.reader import StoredCheckpoint, latest_checkpoint
from hub.audit.verify import BundleError, Trust, load_trust
from hub.audit.witness import (
    HttpWitnessClient,
    LocalWitnessClient,
    Witness,
    WitnessClient,
    witness_routes,
)
from hub.collaborators import Bus, Parts
from hub.envelope import Envelope
from hub.errors import ConfigError
from hub.home import Settings
from hub.outage import Backoff, describe, is_transient
from hub.scenario import Scenario

log = structlog.get_logger("hub.audit.service")


class AuditLog:
    """The audit log's parts for one hub: config, key ring, witnesses, checkpointer."""

    def __init__(
        self,
        settings: Settings,
        scenario: Scenario,
        pool: asyncpg.Pool,
        pg_dsn: str,
        bus: Bus,
        *,
        create_keys: bool = True,
        announce: bool = True,
    ) -> None:
        """Open (or on first use create) the log key and the local witnesses' keys."""
        self.pool = pool
        self._pg_dsn = pg_dsn
        self._bus = bus
        home = settings.home
        self.config: AuditConfig = load_config(home, scenario)
        self.ring = LogKeyRing.open(
            home, self.config.origin, create=create_keys, suite=settings.suite
        )
        self.witnesses = [
            Witness(
                witness_signer(
                    home,
                    unit,
                    local_witness_name(unit, self.config.origin),
                    create=create_keys,
                ),
                self._trusted_logs,
                audit_dir(home) / "witnesses" / unit,
                self.publish_alarm,
            )
            for unit in self.config.local_witnesses
        ]
        clients: list[WitnessClient] = [LocalWitnessClient(w) for w in self.witnesses]
        clients += [
            HttpWitnessClient(r.verifier, r.url, self.config.witness_timeout)
            for r in self.config.remote_witnesses
        ]
        self.checkpointer = Checkpointer(
            pool,
            self.ring,
            clients,
            k=self.config.witness_k,
            publish=self.publish_checkpoint if announce else None,
            timeout=self.config.witness_timeout,
        )

    def _trusted_logs(self) -> dict[str, Sequence[Verifier]]:
        # Local witnesses share the home with the log, so they read its key ring (rotation
        # included); a county's own witness is configured with the log's keys instead.
        return {self.config.origin: self.ring.verifiers()}

    def witness_verifiers(self) -> list[Verifier]:
        """Every configured witness's cosignature key, local and remote."""
        return [w.verifier for w in self.witnesses] + [
            r.verifier for r in self.config.remote_witnesses
        ]

    def trust(self) -> dict[str, Any]:
        """The log and witness sections of a trust file (participant keys are added by export)."""
        trust: dict[str, Any] = {
            "log_keys": self.ring.trust_entries(),
            "witnesses": {
                "keys": [v.vkey() for v in self.witness_verifiers()],
                "k": self.config.witness_k,
            },
        }
        if self.ring.sm2_keys:  # gm: the second, SM2 signature on every checkpoint
            trust["log_keys_sm2"] = self.ring.sm2_trust_entries()
        return trust

    def verifier_trust(self) -> Trust:
        """The log and witness keys of ``trust()`` as a verifier holds them (``audit verify``)."""
        try:
            return load_trust(self.trust(), "home key ring")
        except BundleError as exc:
            raise ConfigError(f"the audit key ring of this home is unusable: {exc}") from exc

    def appender(
        self, *, dsn: str | None = None, on_commit: Callable[[int], None] | None = None
    ) -> Appender:
        """An appender for this hub (on its own connection to ``dsn``, the hub's by default)."""
        return Appender(
            self._bus, self.pool, self.config, dsn=dsn or self._pg_dsn, on_commit=on_commit
        )

    async def catch_up(self, *, timeout: float = 120.0) -> StoredCheckpoint:
        """Log everything in the hub stream, then sign and cosign a checkpoint of it."""
        await self.appender().catch_up(timeout=timeout)
        signed = await self.checkpointer.sign()
        await self.checkpointer.close()  # let every witness answer, not just the first k
        return await latest_checkpoint(self.pool, published=False) or signed

    async def publish_checkpoint(self, note_text: str, size: int) -> None:
        """Announce a published checkpoint on ``sys.audit.checkpoint``."""
        digest = hashlib.sha256(note_text.encode()).hexdigest()[:16]
        headers = {
            "Nats-Msg-Id": f"checkpoint-{size}-{digest}",
            "content-type": "text/plain; charset=utf-8",
            "govhub-tree-size": str(size),
        }
        await self._bus.publisher.publish(Envelope(CHECKPOINT_SUBJECT, headers, note_text.encode()))

    async def publish_alarm(self, alarm: dict[str, Any]) -> None:
        """Raise a witness alarm on ``sys.audit.alarm`` (JSON with the signed alarm note)."""
        body = json.dumps(alarm, sort_keys=True, ensure_ascii=False).encode()
        headers = {
            "Nats-Msg-Id": "alarm-" + hashlib.sha256(body).hexdigest()[:32],
            "content-type": "application/json",
        }
        await self._bus.publisher.publish(Envelope(ALARM_SUBJECT, headers, body))


class AuditService:
    """``govhub serve``'s audit service."""

    name = "audit"

    def __init__(self, log: AuditLog, *, on_commit: Callable[[int], None] | None = None) -> None:
        """Run the log's parts (`AuditLog` creates the keys on first start).

        ``on_commit(size)`` also sees every committed batch (the pipeline benchmark's probe).
        """
        self.log = log
        self._grew = asyncio.Event()

        def committed(size: int) -> None:
            self._grew.set()
            if on_commit is not None:
                on_commit(size)

        self.appender = self.log.appender(on_commit=committed)

    def stop_intake(self) -> None:
        """Append no new batch and sign no new checkpoint; `run()` returns once the appender
        has committed and acked what it holds and a checkpoint being signed is done."""
        self.appender.stop_intake()

    async def run(self) -> None:
        """Append and checkpoint until cancelled or `stop_intake()`."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.appender.run(), name="audit-appender")
                group.create_task(self._checkpoints(), name="audit-checkpoints")
        finally:
            await self.log.checkpointer.close()

    async def _checkpoints(self) -> None:
        interval = self.log.config.checkpoint_interval
        retry = Backoff(0.5, 10.0)
        intake = self.appender.intake
        # The next start signs what the last batches added: the writer signs on taking the lock.
        while await intake.unless_closed(self._grew.wait()):
            self._grew.clear()
            if not self.appender.leading.is_set():
                continue  # only the writer signs on its own schedule
            started = time.monotonic()
            try:
                await self.log.checkpointer.sign()
            except Exception as exc:
                # An outage (the database, or NATS for the announcement) pauses checkpoints
                # without stopping the appender; the next attempt signs what is committed.
                if not (is_transient(exc) or isinstance(exc, DB_ERRORS)):
                    raise
                log.error("audit.checkpoint.failed", error=describe(exc))
                health.pause("checkpoints", describe(exc))
                self._grew.set()
                await intake.unless_closed(health.retry_after(retry.next()))
                continue
            retry.reset()
            health.resume("checkpoints")
            await intake.rest(max(0.0, interval - (time.monotonic() - started)))

    def routes(self) -> list[web.RouteDef]:
        """The tlog-tiles read API and the local witnesses' add-checkpoint endpoints."""
        out = api.routes(self.log.pool)
        for unit, witness in zip(self.log.config.local_witnesses, self.log.witnesses, strict=True):
            out += witness_routes(witness, f"/witness/{unit}")
        return out


def create(parts: Parts) -> AuditService:
    """Factory named in ``hub.serve.SERVICES``."""
    return AuditService(
        AuditLog(parts.settings, parts.trust.scenario, parts.pool, parts.pg_dsn, parts.bus)
    )
