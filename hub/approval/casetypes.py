"""Case types and the holiday calendar, as configuration: TOML files checked once when read.

Shipped files live in `ops/approval/`; a home may add or replace them in `<home>/approval/`
(a file of the same name wins). `holidays-<year>.toml` files are the calendar, every other
`<name>.toml` is the case type `<name>`:

```toml
title = "建设工程施工许可并联审批"
lead = "pref.housing"                 # 牵头部门: the only department that opens such cases
supervisor = "pref.office"            # 督办: where overdue reviews are escalated
refusal_ends_case = true              # default for reviewers; each may override it
warn_days = 2                         # 超期预警 when this many working days are left

[[documents]]                         # 申请材料: what `approval open --doc NAME=FILE` takes
name = "application"
label = "建筑工程施工许可申请表"
required = true

[[reviewers]]
department = "pref.natres"            # or "{unit}.natres": the county the project is in
label = "用地规划审查"
working_days = 5                      # 法定时限, in working days
material_requests = 1                 # 补正 allowed (一次性告知: once); 0 = never
resources = ["302001-000101"]         # directory resources whose data it needs
```

Mistakes are errors naming the file and the key path (hub/tomlconfig.py). A case records the
type's digest when it is opened, and its events carry every rule the projection needs, so
changing a type file later changes no case already open.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from hub import tomlconfig
from hub.approval.clock import MAX_WORKING_DAYS, Clock
from hub.directory.deadlines import WorkCalendar
from hub.errors import ConfigError, InputError, UnknownCaseType
from hub.home import Home
from hub.subjects import check_participant_id
from hub.tomlconfig import Between
from ops import OPS_DIR

SHIPPED_DIR = OPS_DIR / "approval"
UNIT_PLACEHOLDER = "{unit}"
UTC_OFFSET_HOURS = 8
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HOLIDAYS_RE = re.compile(r"^holidays-(\d{4})$")


@dataclass(frozen=True, kw_only=True)
class DocumentSpec:
    """One material of an application (申请材料)."""

    name: str
    label: str
    required: bool = True

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"document name {self.name!r} must be lowercase letters, digits, '-'")


@dataclass(frozen=True, kw_only=True)
class ReviewerSpec:
    """One co-reviewing department and its rules."""

    department: str
    label: str
    working_days: Annotated[int, Between(1, MAX_WORKING_DAYS)]
    refusal_ends_case: bool | None = None
    material_requests: Annotated[int, Between(0)] = 1
    resources: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CaseTypeFile:
    """A case type file as written."""

    title: str
    lead: str
    supervisor: str
    reviewers: tuple[ReviewerSpec, ...]
    description: str = ""
    refusal_ends_case: bool = True
    warn_days: Annotated[int, Between(0)] = 2
    documents: tuple[DocumentSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.reviewers:
            raise ValueError("a case type needs at least one reviewer")
        names = [d.name for d in self.documents]
        if len(set(names)) != len(names):
            raise ValueError("documents: each name may appear once")
        departments = [r.department for r in self.reviewers]
        if len(set(departments)) != len(departments):
            raise ValueError("reviewers: each department may appear once")
        if self.lead in departments:
            raise ValueError(f"the lead {self.lead} cannot also be one of its reviewers")


@dataclass(frozen=True)
class Reviewer:
    """A reviewer of one case: the type's spec with the department resolved."""

    department: str
    label: str
    working_days: int
    refusal_ends_case: bool
    material_requests: int
    warn_days: int
    resources: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        """The Assignment record of CaseAssigned."""
        return {
            "reviewer": self.department,
            "label": self.label,
            "working_days": self.working_days,
            "refusal_ends_case": self.refusal_ends_case,
            "material_requests": self.material_requests,
            "warn_days": self.warn_days,
            "resources": list(self.resources),
        }


@dataclass(frozen=True)
class CaseType:
    """A configured case type."""

    name: str
    path: Path
    spec: CaseTypeFile
    digest: str

    @property
    def local(self) -> bool:
        """Whether a reviewer is the county's own department, so a case names its unit."""
        return any(UNIT_PLACEHOLDER in r.department for r in self.spec.reviewers)

    def reviewers(self, unit: str = "") -> list[Reviewer]:
        """The case's reviewers, `{unit}` replaced by the county the project is in."""
        if self.local and not unit:
            raise InputError(
                f"case type {self.name} has a local reviewer: say which county or city the "
                "project is in (--unit akto)"
            )
        out = []
        for r in self.spec.reviewers:
            department = r.department.replace(UNIT_PLACEHOLDER, unit)
            try:
                check_participant_id(department)
            except ConfigError as exc:
                raise InputError(f"--unit {unit!r}: {exc}") from None
            refusal = self.spec.refusal_ends_case
            out.append(
                Reviewer(
                    department,
                    r.label,
                    r.working_days,
                    refusal if r.refusal_ends_case is None else r.refusal_ends_case,
                    r.material_requests,
                    self.spec.warn_days,
                    r.resources,
                )
            )
        return out

    def document(self, name: str) -> DocumentSpec:
        """A material of this type by name, or InputError listing the known ones."""
        for d in self.spec.documents:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in self.spec.documents) or "none"
        raise InputError(f"case type {self.name} has no material {name!r}; its materials: {known}")


@dataclass(frozen=True, kw_only=True)
class HolidaySpec:
    """One holiday period and its make-up working days (调休)."""

    name: str
    days: tuple[str, ...]
    workdays: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CalendarFile:
    """A `holidays-<year>.toml` file."""

    year: int
    source: str
    holidays: tuple[HolidaySpec, ...] = ()
    regional: tuple[HolidaySpec, ...] = ()


class HolidayCalendar(WorkCalendar):
    """The working-day calendar of the years that have a holiday file."""

    def __init__(self, years: dict[int, str], holidays: set[date], workdays: set[date]) -> None:
        super().__init__(holidays=holidays, workdays=workdays, utc_offset_hours=UTC_OFFSET_HOURS)
        self.years = years  # year -> where its holidays come from

    def covers(self, day: date) -> bool:
        """Whether the calendar knows the holidays of `day`'s year (else weekends only)."""
        return day.year in self.years


@dataclass(frozen=True)
class Config:
    """Every case type and the calendar of a home."""

    types: dict[str, CaseType]
    calendar: HolidayCalendar

    @property
    def clock(self) -> Clock:
        """Deadlines on this calendar."""
        return Clock(self.calendar)

    def case_type(self, name: str) -> CaseType:
        """A case type by name, or UnknownCaseType listing the configured ones."""
        found = self.types.get(name)
        if found is None:
            known = ", ".join(sorted(self.types)) or "none"
            raise UnknownCaseType(f"there is no case type {name!r}; configured: {known}")
        return found


def _load_type(name: str, path: Path) -> CaseType:
    spec = tomlconfig.read(CaseTypeFile, path, "the case type file")
    with tomlconfig.in_file(str(path)):
        check_participant_id(spec.lead)
        check_participant_id(spec.supervisor)
    canonical = json.dumps(asdict(spec), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return CaseType(name, path, spec, hashlib.sha256(canonical.encode()).hexdigest())


def _load_calendar(year: int, path: Path) -> tuple[str, set[date], set[date]]:
    spec = tomlconfig.read(CalendarFile, path, "the holiday calendar")
    if spec.year != year:
        raise ConfigError(f"{path}: year = {spec.year}, but the file name says {year}")
    holidays: set[date] = set()
    workdays: set[date] = set()
    for where, items in (("holidays", spec.holidays), ("regional", spec.regional)):
        for i, h in enumerate(items):
            try:
                holidays |= {date.fromisoformat(d) for d in h.days}
                workdays |= {date.fromisoformat(d) for d in h.workdays}
            except ValueError:
                raise ConfigError(
                    f"{path}: {where}[{i}] ({h.name}): dates are written 2026-10-01"
                ) from None
    return spec.source, holidays, workdays


def files(home: Home | None) -> dict[str, Path]:
    """Every configuration file by stem, the home's replacing the shipped ones."""
    found = {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.toml"))}
    if home is not None:
        found.update({p.stem: p for p in sorted((home.root / "approval").glob("*.toml"))})
    return found


def load_config(home: Home | None) -> Config:
    """The case types and calendar of a home (shipped files plus the home's own)."""
    types: dict[str, CaseType] = {}
    years: dict[int, str] = {}
    holidays: set[date] = set()
    workdays: set[date] = set()
    for stem, path in files(home).items():
        match = _HOLIDAYS_RE.match(stem)
        if match:
            year = int(match.group(1))
            source, off, on = _load_calendar(year, path)
            years[year] = source
            holidays |= off
            workdays |= on
        elif _NAME_RE.match(stem):
            types[stem] = _load_type(stem, path)
        else:
            raise ConfigError(
                f"{path}: a case type's file name must be lowercase letters, digits, '-'"
            )
    return Config(types, HolidayCalendar(years, holidays, workdays))
