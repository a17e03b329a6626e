"""Production deployment files for a federation: `govhub ops gen-config --out DIR`.

```
DIR/plan.json                        the production plan (host names, ports, limits)
DIR/<node>/nats.conf                 from hub/federation/nats_config.py, TLS on everywhere
DIR/<node>/auth.conf                 users from the registry (public nkeys; no secrets)
DIR/<node>/uplink.conf               a leaf's uplink seed (0600; ship it to that county only)
DIR/<node>/nats-server.service       systemd unit (reload = SIGHUP, no restart)
DIR/<hub node>/govhub-serve.service  the hub services
DIR/prometheus/prometheus.yml        scrape config; alerts.yml: source lag, leaf down
DIR/tls/                             only with --dev-certs: a throwaway CA and node certs
```

The configs use the same generator as the local topology, so what the test suite runs is
what production runs, with host names, TLS files and production paths swapped in.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.federation.credentials import service_nkey
from hub.federation.nats_config import (
    AUTH_FILE,
    UPLINK_FILE,
    NodeFiles,
    Style,
    Tls,
    server_config,
    uplink_secret,
)
from hub.federation.permissions import auth_config, node_users
from hub.federation.plan import HUB_ROLE, Node, Plan
from hub.home import Home
from hub.userfiles import write_private

ETC = "/etc/nats"
STORE = "/var/lib/nats/jetstream"
PID = "/run/nats/nats.pid"
SERVE_PORT = 8480
PROD = "prod-"


def production_files() -> NodeFiles:
    """Where a production node keeps data and pid; logs go to journald."""
    return NodeFiles(store_dir=STORE, pid_file=PID, log_file=None)


def node_tls(tls_dir: str, node: Node) -> Tls:
    """A node's TLS files: `<tls_dir>/<node>.crt|.key` and the prefecture CA."""
    return Tls(
        ca_file=f"{tls_dir}/ca.crt",
        cert_file=f"{tls_dir}/{node.name}.crt",
        key_file=f"{tls_dir}/{node.name}.key",
    )


def production_services(home: Home, plan: Plan) -> dict[str, str]:
    """Public nkeys of the production service, node admin and uplink users.

    Kept apart from the local topology's keys (`prod-` prefix) so a lab home never shares
    a credential with production.
    """
    names = ["service"] + [f"node-{n.name}" for n in plan.nodes]
    names += [f"uplink-{leaf.unit}" for leaf in plan.leafs]
    return {name: service_nkey(home, PROD + name).public for name in names}


def nats_unit(node: Node) -> str:
    """The systemd unit of a node's nats-server."""
    return f"""[Unit]
Description=NATS server {node.name} ({node.role}) for govhub
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=nats
Group=nats
RuntimeDirectory=nats
StateDirectory=nats
ExecStart=/usr/local/bin/nats-server -c {ETC}/nats.conf
# Config changes (a revoked participant, a disabled uplink) apply without a restart.
ExecReload=/bin/kill -HUP $MAINPID
# Lame-duck mode on stop: clients move to the other hub nodes first.
ExecStop=/bin/kill -SIGUSR2 $MAINPID
TimeoutStopSec=60
Restart=on-failure
RestartSec=5
LimitNOFILE=800000
Environment=GOMEMLIMIT=3GiB

[Install]
WantedBy=multi-user.target
"""


def serve_unit(plan: Plan) -> str:
    """The systemd unit of the hub services on a hub node."""
    return f"""[Unit]
Description=govhub hub services (audit, directory, federation monitor, ...)
After=network-online.target nats-server.service
Wants=network-online.target

[Service]
Type=simple
User=govhub
Group=govhub
# GOVHUB_PG_DSN and GOVHUB_KEY_PASSPHRASE_FILE live in this file (mode 0600).
EnvironmentFile=/etc/govhub/serve.env
Environment=GOVHUB_NATS_URL={",".join(plan.hub_client_urls())}
Environment=GOVHUB_FEDERATION_PLAN=/etc/govhub/plan.json
Environment=GOVHUB_NATS_NKEY_FILE=/etc/govhub/service.nk
Environment=GOVHUB_HOME=/var/lib/govhub
ExecStart=/usr/local/bin/govhub serve --http 0.0.0.0:{SERVE_PORT}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def prometheus_config(plan: Plan) -> str:
    """Scrape the hub services' /metrics on every hub node."""
    targets = ", ".join(f'"{n.host}:{SERVE_PORT}"' for n in plan.hub_nodes)
    return f"""# Prometheus scrape config for govhub ({plan.scenario}).
global:
  scrape_interval: 15s
rule_files: ["alerts.yml"]
scrape_configs:
  - job_name: govhub
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
"""


ALERTS = """groups:
  - name: govhub-federation
    rules:
      - alert: CountyUplinkDown
        expr: max by (node) (govhub_federation_leaf_up) == 0
        for: 10m
        annotations:
          summary: "{{ $labels.node }} has no uplink to the hub for 10 minutes"
      - alert: CountySourceLagging
        expr: max by (county) (govhub_federation_source_lag) > 10000
        for: 15m
        annotations:
          summary: "the hub is more than 10,000 events behind {{ $labels.county }}"
      - alert: CountySourceError
        expr: max by (county) (govhub_federation_source_error) == 1
        for: 5m
        annotations:
          summary: "the hub's source of {{ $labels.county }} reports an error"
"""


def dev_certificates(folder: Path, nodes: Iterable[Node]) -> None:
    """A throwaway CA and one certificate per node, for a lab: never for production."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "govhub lab CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for node in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(node.host), x509.DNSName("localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node.host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{node.name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_private(
            folder / f"{node.name}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def generate(
    home: Home,
    plan: Plan,
    out: Path,
    participants: Iterable[tuple[str, str]],
    *,
    tls_dir: str = f"{ETC}/tls",
    files: NodeFiles | None = None,
) -> list[Path]:
    """Write every deployment file; returns the node config paths (for `nats-server -t`)."""
    people = list(participants)
    services = production_services(home, plan)
    files = files or production_files()
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out / "plan.json")
    configs = []
    for node in plan.nodes:
        folder = out / node.name
        folder.mkdir(parents=True, exist_ok=True)
        style = Style(
            listen_host="0.0.0.0",
            tls=node_tls(tls_dir, node),
            compression="s2_auto",
            reconnect="5s",
        )
        (folder / "nats.conf").write_text(server_config(plan, node, files, style))
        (folder / AUTH_FILE).write_text(auth_config(node, node_users(plan, node, people, services)))
        if node.role != HUB_ROLE:
            seed = service_nkey(home, f"{PROD}uplink-{node.unit}").seed
            write_private(folder / UPLINK_FILE, uplink_secret(seed).encode())
        (folder / "nats-server.service").write_text(nats_unit(node))
        if node.role == HUB_ROLE:
            (folder / "govhub-serve.service").write_text(serve_unit(plan))
        configs.append(folder / "nats.conf")
    prometheus = out / "prometheus"
    prometheus.mkdir(exist_ok=True)
    (prometheus / "prometheus.yml").write_text(prometheus_config(plan))
    (prometheus / "alerts.yml").write_text(ALERTS)
    return configs
