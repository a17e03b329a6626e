"""Which nodes a federated deployment has, derived from the scenario: names, roles, domains, ports.

The prefecture hub is one node or a 3-node JetStream cluster (domain `pref`); every county or
city is a leaf node with its own JetStream domain `cty-<unit>`, so its departments keep
publishing while the uplink is down; the autonomous region is a leaf node without JetStream
whose participants publish straight into the hub's stream over the link. A `Plan` is plain
data: the local topology saves it as JSON under the home, and `govhub ops gen-config` builds
one with production host names that the operator may edit (`GOVHUB_FEDERATION_PLAN`), so it is
read like every other config (hub/tomlconfig.py): errors name the file and the key path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hub import tomlconfig
from hub.errors import ConfigError
from hub.ports import free_ports
from hub.scenario import Scenario
from hub.topology import HUB_DOMAIN
from hub.userfiles import parse_json, read_text

HUB_ROLE = "hub"
COUNTY_ROLE = "county"
REGION_ROLE = "region"

# A county keeps this much of its own outbound traffic while the uplink is down (local
# default; production sizes it for the longest outage it must survive, docs/operations.md).
DEFAULT_COUNTY_BUDGET = 1024 * 1024 * 1024


def county_domain(unit: str) -> str:
    """The JetStream domain of a county's leaf node."""
    return f"cty-{unit}"


def county_stream(unit: str) -> str:
    """The name of a county's outbound stream (never re-created under the same name)."""
    return f"GOV_{unit.upper().replace('-', '_')}"


@dataclass(frozen=True)
class Node:
    """One nats-server of the deployment."""

    name: str
    role: str
    domain: str | None
    units: tuple[str, ...]
    host: str = "127.0.0.1"
    client_port: int = 4222
    monitor_port: int = 8222
    leaf_port: int = 0
    cluster_port: int = 0

    @property
    def client_url(self) -> str:
        """Where participants of this node's units connect."""
        return f"nats://{self.host}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        """The HTTP monitoring endpoint (/healthz, /jsz, /leafz)."""
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def unit(self) -> str:
        """The unit of a leaf node (a county's or the region's)."""
        return self.units[0]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The nodes of a federated deployment and the limits its streams get."""

    scenario: str
    hub_unit: str
    hub_nodes: tuple[Node, ...]
    leafs: tuple[Node, ...]
    upstream_unit: str | None = None
    county_max_bytes: int = DEFAULT_COUNTY_BUDGET
    cluster_name: str = "pref-hub"
    uplinks_disabled: tuple[str, ...] = field(default=())

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node, hub nodes first."""
        return self.hub_nodes + self.leafs

    @property
    def counties(self) -> tuple[Node, ...]:
        """The county and city leaf nodes."""
        return tuple(n for n in self.leafs if n.role == COUNTY_ROLE)

    @property
    def replicas(self) -> int:
        """Replicas of hub streams: 3 on a 3-node cluster, else 1."""
        return 3 if len(self.hub_nodes) >= 3 else 1

    @property
    def hub_units(self) -> tuple[str, ...]:
        """Units whose events the hub stream captures directly (hub and region)."""
        return (self.hub_unit,) + ((self.upstream_unit,) if self.upstream_unit else ())

    def node(self, name: str) -> Node:
        """A node by name."""
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise ConfigError(f"no node {name!r} in this federation; nodes: {known}")

    def node_for_unit(self, unit: str) -> Node:
        """The node a unit's participants connect to (the first hub node for hub units)."""
        for node in self.leafs:
            if unit in node.units:
                return node
        if unit == self.hub_unit:
            return self.hub_nodes[0]
        raise ConfigError(f"unit {unit!r} has no node in this federation")

    def county_for(self, name_or_unit: str) -> Node:
        """A county node by node name (`cty-akto`) or unit (`akto`)."""
        for node in self.counties:
            if name_or_unit in (node.name, node.unit):
                return node
        known = ", ".join(n.unit for n in self.counties)
        raise ConfigError(f"{name_or_unit!r} is not a county of this federation; counties: {known}")

    def hub_client_urls(self) -> list[str]:
        """Client URLs of every hub node (a client fails over between them)."""
        return [n.client_url for n in self.hub_nodes]

    def with_uplink(self, unit: str, *, enabled: bool) -> Plan:
        """A copy with a leaf's uplink enabled or disabled (the outage drill)."""
        disabled = set(self.uplinks_disabled)
        (disabled.discard if enabled else disabled.add)(unit)
        return replace(self, uplinks_disabled=tuple(sorted(disabled)))

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (read back by `load`)."""
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the plan atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Plan | None:
        """The saved plan, or None if this home is not federated."""
        if not path.exists():
            return None
        text = read_text(path, "the federation plan", error=ConfigError)
        data = parse_json(text, str(path), error=ConfigError)
        with tomlconfig.in_file(str(path)):
            return tomlconfig.load(cls, data)


def local_plan(
    scenario: Scenario, *, hub_nodes: int = 1, county_max_bytes: int = DEFAULT_COUNTY_BUDGET
) -> Plan:
    """The plan of a one-machine topology on free loopback ports."""
    if hub_nodes not in (1, 3):
        raise ConfigError(f"--hub-nodes must be 1 or 3, not {hub_nodes}")
    leaf_units = [(u, COUNTY_ROLE) for u in scenario.county_units]
    if scenario.upstream_unit:
        leaf_units.append((scenario.upstream_unit, REGION_ROLE))
    ports = iter(free_ports(hub_nodes * 4 + len(leaf_units) * 2))
    hubs = []
    for i in range(hub_nodes):
        client, monitor, leaf, cluster = (next(ports) for _ in range(4))
        hubs.append(
            Node(
                name="hub" if hub_nodes == 1 else f"hub-{i + 1}",
                role=HUB_ROLE,
                domain=HUB_DOMAIN,
                units=(scenario.hub_unit,),
                client_port=client,
                monitor_port=monitor,
                leaf_port=leaf,
                cluster_port=cluster if hub_nodes > 1 else 0,
            )
        )
    leafs = tuple(
        Node(
            name=county_domain(unit) if role == COUNTY_ROLE else f"region-{unit}",
            role=role,
            domain=county_domain(unit) if role == COUNTY_ROLE else None,
            units=(unit,),
            client_port=next(ports),
            monitor_port=next(ports),
        )
        for unit, role in leaf_units
    )
    return Plan(
        scenario=scenario.name,
        hub_unit=scenario.hub_unit,
        upstream_unit=scenario.upstream_unit,
        hub_nodes=tuple(hubs),
        leafs=leafs,
        county_max_bytes=county_max_bytes,
    )


def production_plan(
    scenario: Scenario,
    *,
    hub_nodes: int = 3,
    dns_suffix: str = "gov.example",
    county_max_bytes: int = 200 * 1024**3,
) -> Plan:
    """The plan of a real deployment: one host per node, standard ports."""
    local = local_plan(scenario, hub_nodes=hub_nodes, county_max_bytes=county_max_bytes)

    def host(node: Node) -> Node:
        return replace(
            node,
            host=f"{node.name}.{dns_suffix}",
            client_port=4222,
            monitor_port=8222,
            leaf_port=7422 if node.role == HUB_ROLE else 0,
            cluster_port=6222 if node.role == HUB_ROLE and hub_nodes > 1 else 0,
        )

    return replace(
        local,
        hub_nodes=tuple(host(n) for n in local.hub_nodes),
        leafs=tuple(host(n) for n in local.leafs),
    )
