"""One real fleet for the end-to-end tests: ZooKeeper, simulator, discovery sidecar, Prometheus
with rulesync-compiled rules, Alertmanager, alert-router and an SMTP sink.

Intervals are short (scrape/eval 1 s, group_wait 1 s) because these tests are about the
behaviour of the chain; bench/alert_latency.py measures it with the shipped intervals.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleetmon.zk import make_client
from tests.e2e.parts import router_for_rules, rulesync, sidecar
from tests.harness.servers import AlertmanagerServer, PrometheusServer, SmtpSink, ZooKeeperServer, wait_until
from tests.simulator.simproc import SimulatorProcess

RULES = """\
version: 1
scrape_interval: 1s
rules:
  - alert: HighCpuUsage
    metric: cpu_usage_percent
    aggregation: avg
    window: 20s
    above: 80
    for: 0s
    severity: critical
    notify: [oncall]
    summary: "CPU above 80% on {{ $labels.instance }}"
  - alert: HostDown
    metric: host_down
    aggregation: last
    window: 5s
    for: 0s
    severity: critical
    notify: [oncall]
    summary: "{{ $labels.instance }} is not answering scrapes"
recipients:
  oncall: ["@MAILTO@"]
"""


@dataclass
class Fleet:
    sim: SimulatorProcess
    prom: PrometheusServer
    am: AlertmanagerServer
    smtp: SmtpSink


@pytest.fixture(scope="module")
def fleet(zk_server: ZooKeeperServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("e2e")
    root = f"/e2e-{secrets.token_hex(4)}"
    started: list = []
    smtp = SmtpSink().start()
    try:
        router, token = router_for_rules(tmp, RULES, smtp.mailto_url(to="oncall@example.test"))
        started.append(router.start(timeout=30))
        am = AlertmanagerServer(tmp / "alertmanager", {
            "route": {"receiver": "router", "group_by": ["alertname", "notify", "severity"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "router", "webhook_configs": [{
                "url": f"http://127.0.0.1:{router.port}/api/v1/alerts", "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token)}}}]}],
        })
        started.append(am.start())
        pdir = tmp / "prometheus"
        (pdir / "rules").mkdir(parents=True)
        (pdir / "targets.json").write_text("[]")
        prom = PrometheusServer(pdir, {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "external_labels": {"shard": "a", "replica": "r1"}},
            "rule_files": ["rules/*.yml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]},
            "scrape_configs": [{"job_name": "fleet", "file_sd_configs": [
                {"files": ["targets.json"], "refresh_interval": "1s"}]}],
        })
        started.append(prom.start())
        started.append(sidecar(tmp / "sidecar", zk_server.hosts, root, "a", pdir / "targets.json", prom.url,
                               pdir / "rules").start(timeout=30))
        # rulesync apply waits for the shards that are live: let the sidecar join first.
        zk = make_client(zk_server.hosts)
        zk.start(timeout=15)
        try:
            wait_until(lambda: zk.exists(f"{root}/shards/a/r1"), timeout=20, what="shard a registered")
        finally:
            zk.stop()
            zk.close()
        sim = SimulatorProcess(tmp / "sim", hosts=12, args=["--zk", zk_server.hosts, "--zk-root", root,
                                                            "--seed", "11"])
        started.append(sim.start())
        out = rulesync("apply", str(tmp / "rules.yaml"), "--zk", zk_server.hosts, "--root", root, "--timeout", "30")
        assert "a/r1: loaded" in out, out
        prom.wait_for_query('count(up{job="fleet"} == 1) == 12', timeout=40)
        yield Fleet(sim, prom, am, smtp)
    finally:
        for p in reversed(started):
            p.stop()
        smtp.stop()
