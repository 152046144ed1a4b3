"""`make run` / `make status` / `make stop`: the whole stack on free ports in a temp dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import requests

from fleetmon.stack import DEFAULT_PORTS, port_env
from tests.e2e.parts import REPO, repo_env
from tests.harness.servers import free_port, wait_until


def stack(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetmon.stack", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"


def test_start_status_second_start_stop(tmp_path):
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env = repo_env({port_env(n): str(p) for n, p in ports.items()})
    # 90 hosts so that stack/scenario.yaml's web-0042 exists; 2 s intervals so its CPU alert
    # (the seed's rule, from stack/rules.yaml) reaches the mailbox within the test's budget.
    env.update({"FLEETMON_RUN_DIR": str(tmp_path / "run"), "FLEETMON_SIM_HOSTS": "90",
                "FLEETMON_SCRAPE_INTERVAL": "2s", "FLEETMON_EVAL_INTERVAL": "2s"})
    # A port in use: refused up front, naming the component and the variable that moves it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports["alertmanager"]))
        s.listen()
        res = stack(env, "start")
    assert res.returncode == 1
    assert f"alertmanager: 127.0.0.1:{ports['alertmanager']} is in use" in res.stderr
    assert "FLEETMON_PORT_ALERTMANAGER" in res.stderr

    res = stack(env, "start")
    pids = {}
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        for name in ("prometheus-a", "prometheus-b", "alertmanager", "mailbox", "simulator"):
            assert f"http://127.0.0.1:{ports[name]}/" in res.stdout, name
        assert "loaded" in res.stdout  # rulesync apply reached both shards
        for pf in (tmp_path / "run" / "pids").glob("*.pid"):
            info = json.loads(pf.read_text())
            pids[info["name"]] = info["pid"]
        assert {"zookeeper", "prometheus-a", "prometheus-b", "prometheus-global", "sidecar-a", "sidecar-b",
                "discovery-global", "alertmanager", "alert-router", "mailbox", "exporter", "simulator"} <= set(pids)
        # No single point of failure on the alert path (issue 15): shard a as a pair, two
        # Alertmanagers gossiping, two routers.
        assert {"prometheus-a2", "sidecar-a2", "alertmanager-2", "alert-router-2"} <= set(pids)

        st = stack(env, "status")
        assert st.returncode == 0 and "all up" in st.stdout, st.stdout
        assert "alert-router-2: claims on (ZooKeeper connected)" in st.stdout, st.stdout

        again = stack(env, "start")
        assert again.returncode == 1 and "already running" in again.stderr

        # The shards split the fleet (90 simulated hosts + this machine's exporter) between them.
        def scraped() -> bool:
            n = 0
            for shard in ("a", "b"):
                r = requests.get(f"http://127.0.0.1:{ports['prometheus-' + shard]}/api/v1/targets", timeout=5)
                n += sum(1 for t in r.json()["data"]["activeTargets"] if t["labels"]["job"] == "fleet")
            return n == 91
        wait_until(scraped, timeout=40, what="91 fleet targets over both shards")

        def pair_agrees() -> bool:
            n = [sum(1 for t in requests.get(f"http://127.0.0.1:{ports[p]}/api/v1/targets", timeout=5)
                     .json()["data"]["activeTargets"] if t["labels"]["job"] == "fleet")
                 for p in ("prometheus-a", "prometheus-a2")]
            return n[0] == n[1] > 0
        wait_until(pair_agrees, timeout=40, what="both replicas of shard a scraping the same hosts")
        for am in ("alertmanager", "alertmanager-2"):
            wait_until(lambda am=am: len(requests.get(f"http://127.0.0.1:{ports[am]}/api/v2/status", timeout=5)
                                         .json()["cluster"]["peers"]) == 2, timeout=30,
                       what=f"{am} in a 2-member cluster")
        assert "alertmanager cluster: 2 member(s) gossiping, 2 of 2 running" in stack(env, "status").stdout
        rules = requests.get(f"http://127.0.0.1:{ports['prometheus-a']}/api/v1/rules", timeout=5).json()
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert "HighCpuUsage" in names
        assert requests.get(f"http://127.0.0.1:{ports['mailbox']}/", timeout=5).status_code == 200
        # The scenario's CPU alert goes all the way to the stack's mailbox (Maildir + page).
        def mailed() -> bool:
            msgs = requests.get(f"http://127.0.0.1:{ports['mailbox']}/api/messages", timeout=5).json()
            # Alerts firing together are grouped (this machine's own exporter may be busy too).
            return any("HighCpuUsage" in m["subject"] and "Instance:    web-0042" in m["body"] for m in msgs)
        wait_until(mailed, timeout=90, interval=1, what="HighCpuUsage email for web-0042 in the mailbox")
        assert list((tmp_path / "run" / "mail" / "new").iterdir())
        # The alert path above ran over HTTPS (issue 14): the router serves TLS with the stack's CA,
        # and the global Prometheus scrapes it with that CA.
        ca = tmp_path / "run" / "tls" / "fleetmon-stack-ca.crt"
        router = f"127.0.0.1:{ports['alert-router']}"
        assert requests.get(f"https://{router}/healthz", verify=str(ca), timeout=5).status_code == 200
        def router_scraped() -> bool:
            r = requests.get(f"http://127.0.0.1:{ports['prometheus-global']}/api/v1/targets", timeout=5).json()
            return any(t["labels"]["job"] == "fleetmon-alert-router" and t["health"] == "up"
                       and t["scrapeUrl"].startswith("https://") for t in r["data"]["activeTargets"])
        wait_until(router_scraped, timeout=60, what="the global Prometheus scraping the router over HTTPS")
        consoles = requests.get(f"http://127.0.0.1:{ports['prometheus-global']}/consoles/index.html", timeout=10)
        assert consoles.status_code == 200
    finally:
        res = stack(env, "stop")
    assert res.returncode == 0 and "stopped" in res.stdout
    assert pids and not [n for n, pid in pids.items() if alive(pid)]
    assert stack(env, "status").returncode == 3


def test_failed_start_names_the_part_and_stops_the_rest(tmp_path):
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env = repo_env({port_env(n): str(p) for n, p in ports.items()})
    # An interval Prometheus rejects: the first shard fails after four parts are already up.
    env.update({"FLEETMON_RUN_DIR": str(tmp_path / "run"), "FLEETMON_SCRAPE_INTERVAL": "soon"})
    res = stack(env, "start", timeout=120)
    assert res.returncode == 1
    assert "prometheus-a exited with status" in res.stderr and "soon" in res.stderr
    assert "stopping what was started" in res.stderr
    assert not list((tmp_path / "run" / "pids").glob("*.pid"))
    for name in ("zookeeper", "mailbox", "alertmanager", "alert-router"):  # nobody listens any more
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", ports[name])) != 0, name
