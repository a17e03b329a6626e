"""Reference deployments as data: the units and participants of a scenario TOML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub import tomlconfig
from hub.errors import ConfigError
from hub.subjects import check_participant_id, check_unit
from hub.userfiles import read_text
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


@dataclass(frozen=True, kw_only=True)
class _ParticipantEntry:
    id: str
    name: str = ""
    role: str = "department"


@dataclass(frozen=True, kw_only=True)
class _UnitBlock:
    unit: str
    name: str | None = None
    participants: tuple[_ParticipantEntry, ...]


@dataclass(frozen=True, kw_only=True)
class _HubBlock:
    unit: str
    name: str | None = None
    operator: str


@dataclass(frozen=True, kw_only=True)
class _ScenarioFile:
    hub: _HubBlock
    units: tuple[_UnitBlock, ...] = ()
    upstream: _UnitBlock | None = None


def load_scenario(name_or_path: str = "kezhou") -> Scenario:
    """Load a shipped scenario by name (`kezhou`) or any scenario file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in SCENARIO_DIR.glob("*.toml"))
        raise ConfigError(f"no scenario {name_or_path!r}; shipped scenarios: {known}")
    return parse_scenario(read_text(path, "the scenario file", error=ConfigError), path)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Check a scenario file's text completely; ConfigError names the first problem."""
    parsed = tomlconfig.parse(_ScenarioFile, text, str(path))
    blocks = [*parsed.units, *([parsed.upstream] if parsed.upstream else [])]
    participants: list[ScenarioParticipant] = []
    with tomlconfig.in_file(str(path)):
        for unit in (parsed.hub.unit, *(b.unit for b in blocks)):
            check_unit(unit)  # units name streams, leaf nodes and folders
        for block in blocks:
            for entry in block.participants:
                unit, _ = check_participant_id(entry.id)
                if unit != block.unit:
                    raise ConfigError(f"participant {entry.id} is listed under unit {block.unit}")
                participants.append(
                    ScenarioParticipant(
                        id=entry.id,
                        unit=block.unit,
                        name=entry.name,
                        role=entry.role,
                        unit_name=block.name if block.name is not None else block.unit,
                    )
                )
    hub = parsed.hub
    scenario = Scenario(
        name=path.stem,
        hub_unit=hub.unit,
        hub_name=hub.name if hub.name is not None else hub.unit,
        operator=hub.operator,
        upstream_unit=parsed.upstream.unit if parsed.upstream else None,
        participants=tuple(participants),
    )
    ids = [p.id for p in participants]
    if len(ids) != len(set(ids)):
        raise ConfigError(f"{path}: a participant id is listed twice")
    if scenario.operator not in ids:
        raise ConfigError(f"{path}: the operator {scenario.operator} is not a participant")
    return scenario
