"""Department adapters: the plug-in a department writes, and the TOML file that wires it up.

An adapter is an `Adapter` object named by an entry point in the `govhub.adapters` group: its
mappings turn a department's native records into hub events (`to_hub`) or hub events into
native rows and requests (`from_hub`). An adapter file lists instances, each joining one
adapter to one connector for one participant:

```toml
[[adapters]]
name = "akto-civil-assistance"     # instance name: metrics, logs, dead letters, cursor
adapter = "civil_assistance"       # a govhub.adapters entry point
participant = "akto.civil"         # whose key signs (to_hub) or who reads (from_hub)
direction = "to_hub"               # or "from_hub" (then also: subjects = ["evt.*.civil.>"])

[adapters.connector]               # a govhub.connectors entry point and its options
type = "postgres"
dsn = { env = "AKTO_CIVIL_DSN" }   # secrets by reference only
table = "assistance_outbox"

[adapters.options]                 # the adapter's own options, if it declares any
[adapters.pipeline]                # runtime tuning (hub.integration.pipeline.PipelineOptions)
```

`load_adapter_file` checks all of it once, before anything connects: unknown keys, wrong
types, unknown adapters or connectors and unsupported directions are ConfigErrors naming the
file and the key path (`civil.toml: adapters[1].connector.tabel: unknown key "tabel" (did you
mean "table"?)`; indexes count from 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from hub import tomlconfig
from hub.errors import ConfigError
from hub.integration.connector import ConnectorContext, ConnectorFactory, Record, load_connector
from hub.integration.pipeline import PipelineOptions
from hub.listen import parse_address
from hub.subjects import check_participant_id
from hub.userfiles import read_text

ADAPTER_GROUP = "govhub.adapters"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # fullmatch: `$` would let a final "\n" in


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What a mapping knows besides the record: which instance, for whom, with what options."""

    name: str
    participant: str
    options: Any = None


Mapping_ = Callable[[Record, AdapterContext], Record | None]


@dataclass(frozen=True, kw_only=True)
class Adapter:
    """A department plug-in, as its `govhub.adapters` entry point provides it.

    `to_hub` maps a native record to a hub record: for events, `kind` is the schema's full
    name and `value` the Avro record (see `to_event`); for documents (`target="documents"`),
    `value` describes the document and `content` is the file. `from_hub` maps a verified hub
    event to what the department's sink takes (a row, a JSON body, a file). Return None to
    skip a record; raise to refuse it (it is dead-lettered with the message). `sample` is a
    native record `govhub adapter check` maps when the system has none at hand.
    """

    name: str
    description: str
    to_hub: Mapping_ | None = None
    from_hub: Mapping_ | None = None
    options: type[Any] | None = None
    schemas: tuple[str, ...] = ()
    target: Literal["events", "documents"] = "events"
    sample: Mapping[str, Any] | None = None
    subjects: tuple[str, ...] = ()


def to_event(
    origin: Record,
    schema: str,
    value: Mapping[str, Any],
    *,
    subject: str | None = None,
    time: datetime | None = None,
) -> Record:
    """A hub event made from a native record: same key and time, so the same event id."""
    return Record(
        key=origin.key,
        value=value,
        kind=schema,
        time=time or origin.time,
        subject=subject,
        headers=origin.headers,
    )


def to_row(event: Record, row: Mapping[str, Any]) -> Record:
    """A native row made from a hub event: keyed by the event id, so re-delivery is an upsert."""
    return Record(
        key=event.key,
        id=event.id,
        value=row,
        kind=event.kind,
        time=event.time,
        subject=event.subject,
        headers=event.headers,
        envelope=event.envelope,
    )


def known_adapters() -> list[str]:
    """Names of every installed adapter, sorted."""
    return sorted(ep.name for ep in entry_points(group=ADAPTER_GROUP))


def load_plugin(name: str, path: str) -> Adapter:
    """The adapter registered under `name`; unknown names list the known ones."""
    found = {ep.name: ep for ep in entry_points(group=ADAPTER_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(f"{path}: unknown adapter {name!r}; known adapters: {known}")
    plugin = found[name].load()
    if not isinstance(plugin, Adapter):
        raise ConfigError(f"{path}: the entry point {name!r} does not name an Adapter object")
    return plugin


@dataclass(frozen=True, kw_only=True)
class AdapterEntry:
    """One `[[adapters]]` table as written (connector and options checked in a second step)."""

    name: str
    adapter: str
    participant: str
    direction: Literal["to_hub", "from_hub"] = "to_hub"
    subjects: tuple[str, ...] = ()
    connector: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"name {self.name!r} must be lowercase letters, digits, '-' or '_' "
                "(it names metrics, logs and the durable cursor)"
            )


@dataclass(frozen=True, kw_only=True)
class AdapterFileData:
    """The top level of an adapter file."""

    adapters: tuple[AdapterEntry, ...]
    http: str | None = None


@dataclass(frozen=True)
class Configured:
    """One adapter instance, fully checked: plug-in, connector and options resolved."""

    entry: AdapterEntry
    plugin: Adapter
    connector: ConnectorFactory
    connector_options: Any
    context: AdapterContext
    path: str

    @property
    def name(self) -> str:
        """The instance name."""
        return self.entry.name

    @property
    def subjects(self) -> tuple[str, ...]:
        """What a from_hub instance reads (its own list, else the adapter's default)."""
        return self.entry.subjects or self.plugin.subjects

    def connector_context(self, work_dir: Path | None = None) -> ConnectorContext:
        """What the connector is told about where it runs."""
        return ConnectorContext(
            adapter=self.entry.name, participant=self.entry.participant, work_dir=work_dir
        )


@dataclass(frozen=True)
class AdapterFile:
    """A checked adapter file."""

    path: Path
    adapters: tuple[Configured, ...]
    http: str | None


def configure(entry: AdapterEntry, path: str) -> Configured:
    """Resolve one entry's plug-in, connector and options, refusing anything that cannot run."""
    try:
        check_participant_id(entry.participant)
    except ConfigError as exc:
        raise ConfigError(f"{path}.participant: {exc}") from None
    plugin = load_plugin(entry.adapter, f"{path}.adapter")
    mapping = plugin.to_hub if entry.direction == "to_hub" else plugin.from_hub
    if mapping is None:
        raise ConfigError(
            f"{path}.direction: adapter {entry.adapter!r} does not support {entry.direction}"
        )
    raw = dict(entry.connector)
    kind = raw.pop("type", None)
    if not isinstance(kind, str):
        raise ConfigError(f'{path}.connector: missing key "type" (the connector name)')
    try:
        factory = load_connector(kind)
    except ConfigError as exc:
        raise ConfigError(f"{path}.connector.type: {exc}") from None
    side = factory.source_options if entry.direction == "to_hub" else factory.sink_options
    if side is None:
        role = "source" if entry.direction == "to_hub" else "sink"
        raise ConfigError(f"{path}.connector.type: connector {kind!r} has no {role}")
    options = tomlconfig.load(side, raw, f"{path}.connector")
    adapter_options = None
    if plugin.options is not None:
        adapter_options = tomlconfig.load(plugin.options, entry.options, f"{path}.options")
    elif entry.options:
        raise ConfigError(f"{path}.options: adapter {entry.adapter!r} takes no options")
    configured = Configured(
        entry=entry,
        plugin=plugin,
        connector=factory,
        connector_options=options,
        context=AdapterContext(entry.name, entry.participant, adapter_options),
        path=path,
    )
    if entry.direction == "from_hub" and not configured.subjects:
        raise ConfigError(f'{path}.subjects: say which events to read, e.g. ["evt.*.civil.>"]')
    return configured


def parse_adapter_file(text: str, path: Path) -> AdapterFile:
    """Check an adapter file's text completely; ConfigError names the first problem."""
    parsed = tomlconfig.parse(AdapterFileData, text, str(path))
    with tomlconfig.in_file(str(path)):
        if parsed.http is not None:
            try:
                parse_address(parsed.http)
            except ValueError as exc:
                raise ConfigError(f"http: {exc}") from None
        names = [e.name for e in parsed.adapters]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise ConfigError(f"adapters[{index}].name: {name!r} is used twice")
        configured = tuple(
            configure(entry, f"adapters[{i}]") for i, entry in enumerate(parsed.adapters)
        )
    return AdapterFile(path=path, adapters=configured, http=parsed.http)


def load_adapter_file(path: Path) -> AdapterFile:
    """Read and check an adapter file."""
    return parse_adapter_file(read_text(path, "the adapter file", error=ConfigError), path)
