"""The one config generator: local and production configs that nats-server accepts, and the
permissions it writes for participants."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hub.embedded import nats_server_binary
from hub.federation.credentials import NKey, participant_nkey, participant_public
from hub.federation.monitor import county_states, parse_duration
from hub.federation.nats_config import server_config
from hub.federation.opsgen import dev_certificates, generate
from hub.federation.permissions import participant_permissions
from hub.federation.plan import local_plan, production_plan
from hub.federation.servers import FederatedServers
from hub.home import Home
from hub.scenario import load_scenario


def _nats_test(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nats_server_binary(), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(config.parent),
        check=False,
    )


def _users(home: Home) -> list[tuple[str, str]]:
    people = ["pref.office", "akto.civil", "xj.office"]
    return [(p, participant_nkey(home, p).public) for p in people]  # type: ignore[union-attr]


@pytest.mark.parametrize("hub_nodes", [1, 3])
def test_the_local_topology_configs_pass_nats_server_t(tmp_path: Path, hub_nodes: int) -> None:
    home = Home(tmp_path)
    servers = FederatedServers.create(
        home, local_plan(load_scenario("kezhou"), hub_nodes=hub_nodes)
    )
    servers.write_configs(_users(home))
    for node in servers.plan.nodes:
        result = _nats_test(servers.node_dir(node) / "nats.conf")
        assert result.returncode == 0, f"{node.name}: {result.stderr}"


def test_production_configs_with_tls_pass_nats_server_t_and_keep_secrets_private(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    plan = production_plan(load_scenario("kezhou"), hub_nodes=3)
    out = tmp_path / "out"
    dev_certificates(out / "tls", plan.nodes)
    configs = generate(home, plan, out, _users(home), tls_dir=str(out / "tls"))
    assert len(configs) == 8  # 3 hub nodes, 4 counties, the region
    for config in configs:
        result = _nats_test(config)
        assert result.returncode == 0, f"{config}: {result.stderr}"
        text = config.read_text()
        assert "sync_interval: always" in text or "region" in config.parent.name
        assert "tls {" in text
    assert (out / "cty-akto" / "uplink.conf").stat().st_mode & 0o077 == 0
    assert not re.search(r'"SU[A-Z2-7]{50,}', (out / "hub-1" / "auth.conf").read_text())
    assert (out / "prometheus" / "prometheus.yml").exists()
    assert "ExecReload=/bin/kill -HUP" in (out / "hub-1" / "nats-server.service").read_text()


def test_a_participant_may_publish_only_its_own_subjects_and_read_through_jetstream() -> None:
    plan = local_plan(load_scenario("kezhou"))
    rights = participant_permissions("akto.civil", plan.node_for_unit("akto"))
    publish = rights["publish"]["allow"]
    assert "evt.akto.civil.>" in publish and "doc.akto.civil.>" in publish
    assert not any(s.startswith(("evt.akto.edu", "evt.pref", "evt.>")) for s in publish)
    assert "$JS.pref.API.CONSUMER.MSG.NEXT.>" in publish  # reads the hub stream
    assert not any("STREAM.DELETE" in s or "STREAM.CREATE" in s for s in publish)
    assert rights["subscribe"]["allow"] == ["_INBOX.>"]


def test_a_county_leaf_config_disables_its_uplink_for_the_outage_drill(tmp_path: Path) -> None:
    plan = local_plan(load_scenario("kezhou")).with_uplink("akto", enabled=False)
    servers = FederatedServers(Home(tmp_path), plan)
    akto = plan.node_for_unit("akto")
    assert "disabled: true" in server_config(plan, akto, servers.files(akto))
    artux = plan.node_for_unit("artux")
    assert "disabled" not in server_config(plan, artux, servers.files(artux))


def test_participant_nkeys_are_private_files_and_the_public_half_is_readable(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path)
    made = participant_nkey(home, "akqi.edu")
    assert made is not None and made.public.startswith("U")
    seed_file = home.keys / "akqi.edu" / "nats.nk"
    assert seed_file.stat().st_mode & 0o077 == 0
    assert participant_public(home, "akqi.edu") == made.public
    assert made.seed not in repr(made)
    assert NKey.from_seed(seed_file.read_text()) == made


def test_the_monitor_reads_source_lag_and_leaf_state_from_the_hub_endpoints() -> None:
    plan = local_plan(load_scenario("kezhou"))
    jsz = {
        "account_details": [
            {
                "stream_detail": [
                    {
                        "name": "GOVHUB",
                        "sources": [
                            {"name": "GOV_AKTO", "lag": 120, "active": 2_500_000_000},
                            {
                                "name": "GOV_AKQI",
                                "lag": 0,
                                "active": -1,
                                "error": {"description": "stream not found"},
                            },
                        ],
                    }
                ]
            }
        ]
    }
    leafz = {"leafs": [{"name": "cty-akto", "rtt": "1.5ms"}]}
    states = {s.county: s for s in county_states(plan, [jsz], [leafz])}
    assert states["akto"].source_lag == 120 and states["akto"].source_idle_s == 2.5
    assert states["akto"].leaf_up and states["akto"].leaf_rtt_s == pytest.approx(0.0015)
    assert states["akqi"].source_error == "stream not found" and not states["akqi"].leaf_up
    assert states["wuqia"].source_lag is None
    assert parse_duration("1m2.5s") == pytest.approx(62.5)
