"""Reference deployments as data: the units and participants of a scenario TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConfigError
from hub.subjects import check_participant_id
from ops import SCENARIO_DIR


@dataclass(frozen=True)
class ScenarioParticipant:
    """One participant as a scenario declares it."""

    id: str
    unit: str
    name: str
    role: str
    unit_name: str


@dataclass(frozen=True)
class Scenario:
    """A deployment: the hub unit, its operator, the federated units and the upstream."""

    name: str
    hub_unit: str
    hub_name: str
    operator: str
    upstream_unit: str | None
    participants: tuple[ScenarioParticipant, ...]

    @property
    def units(self) -> list[str]:
        """Every unit, hub first, in declaration order."""
        seen: dict[str, None] = {}
        for p in self.participants:
            seen.setdefault(p.unit, None)
        return list(seen)

    @property
    def county_units(self) -> list[str]:
        """Units that are neither the hub nor upstream: each runs its own leaf node."""
        return [u for u in self.units if u not in (self.hub_unit, self.upstream_unit)]

    def get(self, participant: str) -> ScenarioParticipant:
        """A participant by id."""
        for p in self.participants:
            if p.id == participant:
                return p
        raise ConfigError(f"{participant} is not part of scenario {self.name}")

    def with_role(self, role: str) -> list[ScenarioParticipant]:
        """Participants that declare a role (office, auditor, operator)."""
        return [p for p in self.participants if p.role == role]


def load_scenario(name_or_path: str = "kezhou") -> Scenario:
    """Load a shipped scenario by name (`kezhou`) or any scenario file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(p.stem for p in SCENARIO_DIR.glob("*.toml"))
        raise ConfigError(f"no scenario {name_or_path!r}; shipped scenarios: {known}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        hub = data["hub"]
        participants: list[ScenarioParticipant] = []
        blocks = list(data.get("units", []))
        upstream = data.get("upstream")
        if upstream:
            blocks.append(upstream)
        for block in blocks:
            unit = block["unit"]
            for entry in block["participants"]:
                pid = entry["id"]
                if check_participant_id(pid)[0] != unit:
                    raise ConfigError(f"{path}: participant {pid} is listed under unit {unit}")
                participants.append(
                    ScenarioParticipant(
                        id=pid,
                        unit=unit,
                        name=entry.get("name", ""),
                        role=entry.get("role", "department"),
                        unit_name=block.get("name", unit),
                    )
                )
        scenario = Scenario(
            name=path.stem,
            hub_unit=hub["unit"],
            hub_name=hub.get("name", hub["unit"]),
            operator=hub["operator"],
            upstream_unit=upstream["unit"] if upstream else None,
            participants=tuple(participants),
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing key {exc.args[0]!r}") from None
    ids = [p.id for p in participants]
    if len(ids) != len(set(ids)):
        raise ConfigError(f"{path}: a participant id is listed twice")
    if scenario.operator not in ids:
        raise ConfigError(f"{path}: the operator {scenario.operator} is not a participant")
    return scenario
