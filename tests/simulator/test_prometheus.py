"""A real Prometheus scrapes the simulator and sees each scenario's effect through PromQL."""

from __future__ import annotations

import json

import pytest
import requests
import yaml

from tests.harness.servers import wait_until
from tests.simulator.simproc import SimulatorProcess

CPU = ('100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle",instance="{h}"}}[5s])))')


@pytest.fixture
def sim_and_prom(tmp_path, prometheus_factory):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"version": 1, "events": [
        {"type": "cpu", "hosts": "web-0002", "at": 0, "duration": "10m", "value": 95},
        {"type": "disk_fill", "hosts": "db-0001", "at": 0, "duration": "4s", "value": 97,
         "mountpoint": "/var/lib/postgresql"},
        {"type": "http_5xx", "hosts": "web-000[3-4]", "at": 0, "duration": "10m", "value": 40},
    ]}))
    sd = tmp_path / "targets.json"
    sim = SimulatorProcess(tmp_path / "sim", hosts=30,
                           args=["--scenario", str(scenario), "--file-sd", str(sd), "--seed", "7"]).start()
    prom = prometheus_factory({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "fleet", "file_sd_configs": [{"files": [str(sd)], "refresh_interval": "1s"}]}],
    })
    yield sim, prom
    sim.stop()


def test_prometheus_scrapes_every_host_and_sees_scenarios(sim_and_prom):
    sim, prom = sim_and_prom
    hosts = {h["name"] for h in requests.get(f"{sim.url}/hosts", timeout=5).json()}
    assert len(hosts) == 30
    up = prom.wait_for_query("up == 1", lambda r: len(r) == 30, timeout=40)
    assert {r["metric"]["instance"] for r in up} == hosts
    assert {r["metric"]["role"] for r in up} == {"web", "app", "db", "cache", "lb"}
    # Realistic size per target, as Prometheus counts it.
    sizes = prom.query('scrape_samples_scraped{instance="web-0001"}')
    assert 480 <= float(sizes[0]["value"][1]) <= 520

    # A full 5 s window of samples first: rate() over two samples extrapolates badly.
    prom.wait_for_query('count_over_time(up{instance="web-0002"}[5s]) >= 5', timeout=30)
    # cpu 95% on web-0002 computed by PromQL from node_cpu_seconds_total; others stay normal.
    prom.wait_for_query(CPU.format(h="web-0002"), lambda r: r and float(r[0]["value"][1]) > 93, timeout=30)
    res = prom.query(CPU.format(h="web-0002"))
    assert float(res[0]["value"][1]) == pytest.approx(95, abs=1.5)
    others = prom.query('100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",'
                        'instance!="web-0002"}[5s])))')
    assert others and max(float(r["value"][1]) for r in others) < 70

    # disk of db-0001 fills to 97%.
    prom.wait_for_query(
        '100 * (1 - node_filesystem_avail_bytes{instance="db-0001",mountpoint="/var/lib/postgresql"}'
        ' / node_filesystem_size_bytes) > 96.9', timeout=30)
    # 5xx burst: 40% of web-0003's requests are 5xx.
    ratio = ('sum by (instance) (rate(fleetmon_http_requests_total{{instance="{h}",status=~"5.."}}[5s]))'
             ' / sum by (instance) (rate(fleetmon_http_requests_total{{instance="{h}"}}[5s]))')
    prom.wait_for_query(ratio.format(h="web-0003"), lambda r: r and 0.3 < float(r[0]["value"][1]) < 0.5, timeout=20)

    # A host dies at run time: Prometheus sees it down; it comes back after the event.
    sim.post_event({"type": "host_down", "hosts": "app-0001", "at": 0, "duration": "6s"})
    prom.wait_for_query('up{instance="app-0001"} == 0', timeout=20)
    assert prom.query('up{instance="app-0002"}')[0]["value"][1] == "1"
    prom.wait_for_query('up{instance="app-0001"} == 1', timeout=30)


def test_host_down_deregisters_from_file_sd(tmp_path):
    sd = tmp_path / "targets.json"
    sim = SimulatorProcess(tmp_path / "sim", hosts=5, args=["--file-sd", str(sd)]).start()
    try:
        wait_until(lambda: sd.exists(), timeout=10, what="file_sd written")
        assert len(json.loads(sd.read_text())) == 5
        sim.post_event({"type": "host_down", "hosts": "web-0001", "at": 0, "deregister_after": "1s"})
        wait_until(lambda: len(json.loads(sd.read_text())) == 4, timeout=10, what="web-0001 deregistered")
        assert "web-0001" not in sd.read_text()
        r = requests.post(f"{sim.url}/-/events", json={"type": "cpu", "hosts": "x"}, timeout=5)
        assert r.status_code == 400 and "event.value" in r.json()["error"]
    finally:
        sim.stop()
