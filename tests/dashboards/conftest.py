"""The live fleetmon pipeline the dashboard and console tests read, started once for the
package (tests/dashboards): every real process of the data path on loopback.

    fleet-exporter (this machine + nginx access/error and syslog files we keep writing,
      registered in ZooKeeper by its own --zk config)
    -> fleet-discovery run (shard s0 sidecar: file_sd + rulesync agent + /metrics)
    -> shard Prometheus (our recording rules, 1 s scrape/eval; scrapes exporter and sidecar)
    -> fleet-discovery global (file_sd of the live shards)
    -> global Prometheus (prometheus/global.yml as shipped: federation + fleet rules, serving
       prometheus/consoles) + alert-router (serve; real webhooks delivered to a local HTTP
       receiver), scraped by it.

A rulesync bundle is published to ZooKeeper and loaded by the sidecar's rule agent, so the
bundle-version panels read what rulesync really writes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.dashboards import procs
from tests.dashboards.promsetup import PROM, copy_rules, global_config
from tests.harness.servers import HttpSink, PrometheusServer, free_port

AM_DATA = Path("/work/shared/data/alertmanager-0.25")
AM_PAYLOADS = ("am025_firing_single.json", "am025_no_endsAt_no_generatorURL_default_route.json")
CONSOLE_ARGS = [f"--web.console.templates={PROM / 'consoles'}",
                f"--web.console.libraries={PROM / 'console_libraries'}"]
HOST = "web-test-1"
HOST_LABELS = {"datacenter": "dc-test", "role": "web", "env": "test"}

# A rule that fires at once for our host, so that the "alerts firing" panels have an alert.
PROBE_RULES = {"groups": [{"name": "dashboard-probe", "rules": [{
    "alert": "DashboardProbe", "expr": "instance:up:bool == 1",
    "labels": {"severity": "info", "notify": "oncall", "rule_id": "dashboard-probe"},
    "annotations": {"summary": "probe alert for the dashboard test"}}]}]}

SAMPLE_RULES = """\
version: 1
rules:
  - alert: HighCpuUsage
    metric: cpu_usage_percent
    aggregation: avg
    window: 5m
    above: 80
    hosts: {role: web}
    severity: critical
    notify: [oncall]
    summary: "CPU above 80% on {{ $labels.instance }}"
recipients:
  oncall: ["mailto://127.0.0.1:2525?from=a@example.test&to=b@example.test&mode=insecure"]
"""


class LogTraffic(threading.Thread):
    """Appends nginx access/error and syslog lines every 0.25 s (bounded: at most 4 minutes)."""

    def __init__(self, access: Path, error: Path, syslog: Path):
        super().__init__(daemon=True)
        self.files = (access, error, syslog)
        self.stop = threading.Event()
        self.batches = 0

    def run(self) -> None:
        access, error, syslog = self.files
        deadline = time.monotonic() + 240
        i = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
            with access.open("a") as f:
                for status, rt in (("200", "0.012"), ("200", "0.080"), ("404", "0.004"),
                                   ("500", "0.250"), ("503", "1.200")):
                    f.write(f'10.0.0.{i % 250} - - [{stamp}] "GET /item/{i} HTTP/1.1" {status} 512 '
                            f'"-" "curl/8.0" {rt}\n')
            estamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
            with error.open("a") as f:
                f.write(f"{estamp} [error] 101#101: *{i} upstream timed out while reading upstream\n")
                f.write(f"{estamp} [warn] 101#101: *{i} an upstream response is buffered\n")
            sstamp = time.strftime("%b %d %H:%M:%S", time.gmtime())
            with syslog.open("a") as f:
                for pri in (11, 10, 12, 14):  # user.err, user.crit, user.warning, user.info
                    f.write(f"<{pri}>{sstamp} {HOST} app[42]: message {i}\n")
            i += 1
            self.batches = i
            self.stop.wait(0.25)


@pytest.fixture(scope="package")
def fleet(zk_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashfleet")
    root = f"/dash-{uuid.uuid4().hex[:10]}"
    started = []

    def start(p):
        started.append(p)
        return p.start(timeout=30)

    sink = HttpSink().start()
    traffic = None
    try:
        # The exporter, tailing log files that appear after it starts (read from the start).
        logs = tmp / "logs"
        logs.mkdir()
        access, error, syslog = logs / "access.log", logs / "error.log", logs / "syslog"
        exp_port = free_port()
        exp_cfg = tmp / "exporter.yml"
        exp_cfg.write_text(yaml.safe_dump({
            "logs": [{"path": str(access), "type": "nginx_access", "name": "nginx"},
                     {"path": str(error), "type": "nginx_error", "name": "nginx_error"},
                     {"path": str(syslog), "type": "syslog", "name": "syslog"}],
            "tailing": {"state_file": str(tmp / "exporter-state.json"), "poll_interval": 0.2},
            "zk": {"hosts": zk_server.hosts, "root": root, "name": HOST,
                   "address": f"127.0.0.1:{exp_port}", "labels": HOST_LABELS},
        }))
        start(procs.exporter(tmp / "exporter", exp_cfg, exp_port))
        traffic = LogTraffic(access, error, syslog)
        traffic.start()

        # Shard s0: Prometheus + its discovery sidecar (with the rulesync agent).
        shard_dir = tmp / "shard-s0"
        copy_rules(shard_dir, ("recording.yml", "fleet.yml"))
        (shard_dir / "rules" / "probe.yml").write_text(yaml.safe_dump(PROBE_RULES))
        (shard_dir / "targets").mkdir()
        (shard_dir / "rulesync").mkdir()
        shard = PrometheusServer(shard_dir, {}, name="prometheus-s0")
        side, side_port = procs.sidecar(tmp / "sidecar", zk_server.hosts, root, "s0", "a",
                                        shard_dir / "targets" / "fleet.json", shard.url, shard_dir / "rulesync")
        shard.write_config({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                       "external_labels": {"shard": "s0", "replica": "a"}},
            "rule_files": ["rules/recording.yml", "rules/fleet.yml", "rules/probe.yml", "rulesync/*.yml"],
            "scrape_configs": [
                {"job_name": "fleet", "file_sd_configs": [{"files": ["targets/fleet.json"],
                                                           "refresh_interval": "1s"}]},
                {"job_name": "fleetmon-discovery", "static_configs": [{"targets": [f"127.0.0.1:{side_port}"]}]},
            ],
        })
        start(shard)
        start(side)

        # `rulesync apply`: publish a bundle; the sidecar's agent writes it, reloads the shard
        # and reports the version back, which apply waits for.
        (tmp / "rules.yaml").write_text(SAMPLE_RULES)
        r = subprocess.run([*procs.console_script("rulesync"), "apply", str(tmp / "rules.yaml"),
                            "--zk", zk_server.hosts, "--root", root, "--timeout", "40"],
                           capture_output=True, text=True, timeout=60, env=procs.script_env())
        assert r.returncode == 0, f"rulesync apply failed:\n{r.stdout}{r.stderr}"

        # The alert router, delivering to a local HTTP receiver.
        router_port = free_port()
        (tmp / "recipients.yml").write_text(yaml.safe_dump(
            {"recipients": {"default": [f"json://127.0.0.1:{sink.port}/hook"],
                            "oncall": [f"json://127.0.0.1:{sink.port}/oncall"]}}))
        token = uuid.uuid4().hex
        (tmp / "router-token").write_text(token + "\n")
        start(procs.alert_router(tmp / "router", router_port, tmp / "recipients.yml", tmp / "router-token"))

        # The global Prometheus, its shard list written by `fleet-discovery global`.
        glob_dir = tmp / "global"
        copy_rules(glob_dir, ("fleet.yml", "global-alerts.yml"))
        (glob_dir / "targets").mkdir()
        (glob_dir / "targets" / "alert-router.json").write_text(
            json.dumps([{"targets": [f"127.0.0.1:{router_port}"]}]))
        start(procs.global_discovery(tmp / "global-discovery", zk_server.hosts, root,
                                     glob_dir / "targets" / "global-shards.json"))
        glob = PrometheusServer(glob_dir, global_config(), name="prometheus-global", extra_args=CONSOLE_ARGS)
        start(glob)

        # One real notification through the router (payload captured from Alertmanager 0.25),
        # sent once the global has scraped the router, so that its counters move in view.
        # A labelled histogram child appears on its first observation, so a rate needs a second
        # delivery after the global has seen the first one.
        glob.wait_for_query('up{job="fleetmon-alert-router"} == 1', timeout=30)
        for i, name in enumerate(AM_PAYLOADS, start=1):
            r = requests.post(f"http://127.0.0.1:{router_port}/api/v1/alerts",
                              json=json.loads((AM_DATA / name).read_text()), timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
            assert r.status_code < 300, r.text
            sink.wait_for(timeout=30, count=i)
            glob.wait_for_query("alert_router_receipt_to_delivery_seconds_count", timeout=30)

        yield {"global": glob, "shard": shard, "traffic": traffic, "sink": sink}
    finally:
        if traffic is not None:
            traffic.stop.set()
            traffic.join(timeout=5)
        for p in reversed(started):
            p.stop()
        sink.stop()
