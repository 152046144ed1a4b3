"""End to end with real ZooKeeper and real Prometheus shards configured from the template.

Sidecars run as `fleet-discovery run` processes; hosts are small processes that serve
/metrics and register themselves (like `fleet-exporter --zk`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from discovery.cli import main
from discovery.promconfig import render_shard_config
from discovery.sharding import assign
from discovery.sidecar import Sidecar
from tests.harness.servers import RepoCommand as Proc
from tests.harness.servers import free_port, wait_until

FLEET_DISCOVERY = str(Path(sys.executable).parent / "fleet-discovery")


@pytest.fixture
def procs(tmp_path):
    started: list[Proc] = []

    def make(name: str, argv: list[str], port: int) -> Proc:
        p = Proc(tmp_path / name, name, argv, port)
        started.append(p)
        return p.start(timeout=30)

    yield make
    for p in started:
        p.stop()


def targets_by_instance(prom) -> dict[str, dict]:
    return {t["labels"].get("instance"): t for t in prom.targets() if t["labels"].get("job") == "fleet"}


def test_registration_to_scraped_target_in_the_right_shard(zk_server, zk_root, tmp_path, prometheus_factory,
                                                          procs):
    shards = ["s1", "s2"]
    proms, sidecar_ports = {}, {}
    for s in shards:
        sidecar_ports[s] = free_port()
        wd = tmp_path / f"prom-{s}"
        wd.mkdir()
        cfg = render_shard_config(s, "r1", str(tmp_path / f"targets-{s}.json"), f"127.0.0.1:{sidecar_ports[s]}",
                                  prometheus_address="127.0.0.1:1", rules_dir=str(wd / "rules"),
                                  scrape_interval="1s")
        proms[s] = prometheus_factory(cfg, name=f"prometheus-{s}", workdir=wd, start=False)
        assert subprocess.run([shutil.which("promtool") or "promtool", "check", "config",
                               str(proms[s].config_path)], capture_output=True).returncode == 0
        proms[s].start()
    sidecars = {}
    for s in shards:
        sidecars[s] = procs(f"sidecar-{s}", [FLEET_DISCOVERY, "run", "--zk", zk_server.hosts, "--root", zk_root, "--shard", s,
                               "--replica", "r1", "--output", str(tmp_path / f"targets-{s}.json"),
                               "--listen", f"127.0.0.1:{sidecar_ports[s]}", "--prometheus-url", proms[s].url,
                               "--debounce", "0.2", "--session-timeout", "4", "--log-level", "debug"],
                            sidecar_ports[s])
    # One host for each shard, as rendezvous hashing over the two live shards places them.
    names = {}
    for i in range(100):
        names.setdefault(assign(f"web-{i}", shards), f"web-{i}")
    hosts = {}
    for s, name in names.items():
        port = free_port()
        hosts[s] = procs(f"host-{name}", [sys.executable, "-m", "tests.discovery.fake_host", zk_server.hosts,
                                          zk_root, name, str(port), "role=web", "datacenter=dc1"], port)

    def up_in(s: str, name: str, health: str):
        t = targets_by_instance(proms[s]).get(name)
        return t if t and t["health"] == health else None

    for s, name in names.items():
        other = next(o for o in shards if o != s)
        t = wait_until(lambda s=s, name=name: up_in(s, name, "up"), 45, what=f"{name} scraped by {s}")
        assert t["labels"]["role"] == "web" and t["labels"]["datacenter"] == "dc1"
        assert name not in targets_by_instance(proms[other])
        proms[s].wait_for_query(f'fake_host_up{{instance="{name}",role="web"}} == 1', timeout=20)
        proms[s].wait_for_query(f'fleetmon_discovery_agent_alive{{instance="{name}"}} == 1', timeout=20)
    res = proms["s1"].query('fleetmon_discovery_shard_hosts')
    assert res and res[0]["metric"]["shard"] == "s1" and res[0]["value"][1] == "1"

    # The global writer lists each shard's Prometheus for federation.
    gl = Sidecar(zk_server.hosts, tmp_path / "global.json", root=zk_root, listen=None, mode="global",
                 replica="global", debounce=0.1).start()
    try:
        wait_until(lambda: (tmp_path / "global.json").exists()
                   and len(json.loads((tmp_path / "global.json").read_text())) == 2, 20)
        got = json.loads((tmp_path / "global.json").read_text())
        assert {(g["labels"]["shard"], g["targets"][0]) for g in got} == \
            {(s, proms[s].url.removeprefix("http://")) for s in shards}
    finally:
        gl.stop()

    # Host crash: the target stays and goes down; the sidecar says its agent is gone.
    s, name = "s1", names["s1"]
    hosts[s].kill()
    wait_until(lambda: up_in(s, name, "down"), 30, what=f"{name} down")
    proms[s].wait_for_query(f'up{{job="fleet",instance="{name}"}} == 0', timeout=20)
    proms[s].wait_for_query(f'fleetmon_discovery_agent_alive{{instance="{name}"}} == 0', timeout=30)
    assert name in targets_by_instance(proms[s])

    # Deregister: the target leaves.
    res = CliRunner().invoke(main, ["deregister", "--zk", zk_server.hosts, "--root", zk_root, name])
    assert res.exit_code == 0, res.output
    wait_until(lambda: name not in targets_by_instance(proms[s]), 30, what=f"{name} to leave {s}")
    assert up_in("s2", names["s2"], "up")
    res = CliRunner().invoke(main, ["deregister", "--zk", zk_server.hosts, "--root", zk_root, name])
    assert res.exit_code == 1 and "not registered" in res.output

    # Shard s2's sidecar stops: its host moves to s1's Prometheus and is scraped there.
    sidecars["s2"].stop()
    wait_until(lambda: up_in("s1", names["s2"], "up"), 30, what=f"{names['s2']} to move to s1")
    assert targets_by_instance(proms["s1"]).keys() == {names["s2"]}
