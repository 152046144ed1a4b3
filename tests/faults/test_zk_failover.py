"""Kill the ZooKeeper leader under a fleet of per-host sessions: nothing pages, nothing is lost.

Real processes only: a 3-node ensemble, the simulator holding 2,000 sessions (one per host,
``--sessions per-host``), two discovery sidecars (shard-a, shard-b) writing targets files, and
shard-a's Prometheus (2 s scrape and evaluation) loaded with the shipped liveness rules and a
rulesync-compiled HostDown. The leader is killed; while the fleet reconnects a recorder polls
the targets files, the sidecars' liveness gauges and Prometheus's alerts.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from discovery.promconfig import render_shard_config
from fleetmon.zk import SESSION_TIMEOUT as SHIPPED_SESSION_TIMEOUT
from rulesync.pipeline import compile_paths
from rulesync.write import write_files
from tests.faults.sessions_stack import (
    Recorder,
    sessions_status,
    sidecar,
    simulator,
    target_names,
    tuned_ensemble,
)
from tests.harness.servers import PrometheusServer, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
HOSTS = 2000
# The shipped session timeouts: a host's agent (fleetmon.zk.SESSION_TIMEOUT) and a sidecar
# (fleet-discovery run --session-timeout default).
SESSION_TIMEOUT = SHIPPED_SESSION_TIMEOUT
SIDECAR_SESSION_TIMEOUT = 10.0
# Every session must be back within this after the kill. Measured on this 2-core machine while
# other test suites ran (docs/capacity.md, "Sessions"): 4.1-11.7 s for 2,000-2,500 sessions,
# the election plus at most one 5 s reconnection wait (fleetmon.zk CONNECTION_RETRY). Twice
# the worst measured, and still well inside the session timeout, so none may expire.
# With ZooKeeper's TLS and credentials on (the harness default): 6.5-8.9 s at load 5-12, once
# fleetmon.zk shares one TLS context, resumes sessions and spreads attempts (docs/benchmarks.md,
# "ZooKeeper TLS reconnection"); kazoo's own TLS path never got them all back within 120 s.
BACK_WITHIN = 20.0

# HostDown as a user writes it (rulesync's host_down, on `up`): every scrape failed for 30 s,
# held 30 s more, longer than the measured reconnection (12 s), as the issue asks.
USER_RULES = {"version": 1, "rules": [
    {"alert": "HostDown", "metric": "host_down", "aggregation": "min", "window": "30s", "for": "30s",
     "severity": "critical", "notify": ["oncall"]},
], "recipients": {"oncall": ["mailto://oncall@example.test"]}}

pytestmark = pytest.mark.timeout(420)


class AlertWatch:
    """Polls Prometheus for alerts (pending or firing) and remembers every one it saw."""

    def __init__(self, prom: PrometheusServer):
        self.prom = prom
        self.seen: dict[str, set[str]] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> AlertWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for a in self.prom.api("alerts")["alerts"]:
                    key = f'{a["labels"]["alertname"]}/{a["state"]}'
                    self.seen.setdefault(key, set()).add(a["labels"].get("instance", ""))
                self.polls += 1
            except Exception:  # noqa: BLE001 - a slow answer is retried on the next poll
                pass
            self._stop.wait(0.5)


def test_leader_kill_keeps_every_session_target_and_no_alert(tmp_path):
    root = f"/failover-{uuid.uuid4().hex[:8]}"
    ens = tuned_ensemble(tmp_path / "zk").start()
    started = []
    try:
        files, ports = {}, {}
        for shard in ("shard-a", "shard-b"):
            sc, out = sidecar(tmp_path, ens.hosts, root, shard, SIDECAR_SESSION_TIMEOUT)
            started.append(sc.start(timeout=60))
            files[shard], ports[shard] = out, sc.port

        # shard-a's Prometheus from the shipped template: shipped liveness rules + HostDown.
        pdir = tmp_path / "prom"
        (pdir / "shard-rules").mkdir(parents=True)
        shutil.copy(REPO / "prometheus/rules/liveness.yml", pdir / "shard-rules")
        src = tmp_path / "rules.yaml"
        src.write_text(yaml.safe_dump(USER_RULES))
        spec, generated, problems = compile_paths([src], scrape_interval=2.0)
        assert spec is not None, problems
        write_files(pdir / "rules", generated)
        port = free_port()
        cfg = render_shard_config("shard-a", "r1", str(files["shard-a"]), f"127.0.0.1:{ports['shard-a']}",
                                  prometheus_address=f"127.0.0.1:{port}", rules_dir=str(pdir / "rules"),
                                  scrape_interval="2s", evaluation_interval="2s",
                                  shipped_rules_glob=str(pdir / "shard-rules/*.yml"))
        prom = PrometheusServer(pdir, cfg, port=port)

        # Two session workers, one per core; Prometheus starts once the fleet is registered so
        # that registering does not compete with 1,000 scrapes every 2 s on a loaded machine.
        sim = simulator(tmp_path / "sim", ens.hosts, root, HOSTS, SESSION_TIMEOUT, procs=2)
        started.append(sim.start(timeout=60))
        wait_until(lambda: sessions_status(sim).get("synced") == HOSTS, timeout=240, interval=1,
                   what=f"{HOSTS} per-host sessions registered")
        started.append(prom.start())
        names = {f"{h}" for h in _names(sim)}
        assert len(names) == HOSTS
        wait_until(lambda: set().union(*(target_names(f) or set() for f in files.values())) == names,
                   timeout=60, interval=0.5, what="every host in a targets file")
        in_a = target_names(files["shard-a"]) or set()
        assert 0 < len(in_a) < HOSTS  # both shards hold hosts
        # Prometheus has every shard-a host as a target and scrapes them (on a loaded machine a
        # few 2 s scrapes time out now and then: that is noise HostDown's 30 s window absorbs).
        wait_until(lambda: {t["labels"].get("instance") for t in prom.targets()
                            if t["labels"].get("job") == "fleet"} == in_a, timeout=120, interval=1,
                   what="Prometheus targets = shard-a's file")
        prom.wait_for_query('count(up{job="fleet"} == 1)',
                            lambda r: r and float(r[0]["value"][1]) >= 0.95 * len(in_a), timeout=120)
        prom.wait_for_query("count(fleetmon_discovery_agent_alive == 1)",
                            lambda r: r and float(r[0]["value"][1]) == len(in_a), timeout=60)
        # Both rule groups evaluate (so "no alert" below means something).
        wait_until(lambda: {g["name"] for g in prom.rules() if g.get("lastEvaluation", "").startswith("2")}
                   >= {"fleetmon.liveness"}, timeout=30, what="liveness rules evaluated")

        before = sessions_status(sim)
        rec = Recorder(list(files.values()), list(ports.values()), names).start()
        alerts = AlertWatch(prom).start()
        leader = ens.leader()
        t0 = time.monotonic()
        leader.kill()

        def all_back() -> bool:
            s = sessions_status(sim)
            return (s["disconnects"] > before["disconnects"] and s["connected"] == HOSTS
                    and s["synced"] == HOSTS and s["down_now"] == 0)

        wait_until(all_back, timeout=120, interval=0.25, what="every session back after the leader kill")
        back = time.monotonic() - t0
        after = sessions_status(sim)
        # Keep watching for a while: a flag that dropped shows in Prometheus one scrape and one
        # evaluation later, and HostDown's window is 30 s.
        settle = time.monotonic() + 20
        wait_until(lambda: time.monotonic() >= settle and alerts.polls > 10, timeout=60, interval=0.5,
                   what="the observation window")
        alerts.stop()
        rec.stop()

        report = (f"back in {back:.1f}s, max outage {after['max_outage_s']:.1f}s, "
                  f"disconnected {after['disconnects'] - before['disconnects']}, "
                  f"expired {after['expired'] - before['expired']}, "
                  f"not alive seen {len(rec.not_alive_seconds)}, lost {len(rec.missing_from_targets)}, "
                  f"alerts {alerts.seen}")
        print(report)
        # Most of the fleet was cut off: followers drop their clients while they elect.
        assert after["disconnects"] - before["disconnects"] >= HOSTS // 3, report
        assert back <= BACK_WITHIN, report
        assert after["expired"] == before["expired"], report
        assert not rec.missing_from_targets, report
        assert rec.file_read_failures == 0, report
        assert not rec.not_alive_seconds, report
        # ZooKeeper touches liveness, never `up`: agent-down must not even be pending. HostDown must
        # not fire (a pending one is a host whose 2 s scrapes all timed out for 30 s while 2,000
        # simulated hosts share this machine's cores with the reconnection storm: load, not ZK).
        assert not [k for k in alerts.seen if k.startswith("FleetmonAgentDown/")], report
        assert "HostDown/firing" not in alerts.seen, report
        # Prometheus still has every one of shard-a's hosts as a target (one scrape may time
        # out on a loaded machine: that is `up`, which HostDown's 30 s window absorbs).
        assert float(prom.query('count(up{job="fleet"})')[0]["value"][1]) == len(in_a)
    finally:
        for p in reversed(started):
            p.stop(timeout=60) if p.name == "simulator" else p.stop()
        ens.stop()


def _names(sim) -> list[str]:
    import requests

    return [h["name"] for h in requests.get(f"http://127.0.0.1:{sim.port}/hosts", timeout=30).json()]
