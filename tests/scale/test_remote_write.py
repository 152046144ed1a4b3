"""The shipped remote_write fragment (prometheus/remote_write/shard.yml) against real
servers: two Prometheus shards (one of them an HA pair) write to Debian's
VictoriaMetrics, and one PromQL query there sees every host of every shard, once."""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from discovery.promconfig import render_shard_config
from tests.harness.servers import wait_until

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = REPO / "prometheus" / "remote_write" / "shard.yml"

HOSTS = {
    "a": ["web-a-01", "web-a-02", "db-a-01"],
    "b": ["web-b-01", "web-b-02", "cache-b-01"],
}


def shard_config(vm_write_url: str, shard: str, replica: str, targets: list[dict]) -> dict:
    """prometheus.yml for one shard replica: our fragment merged with a 1 s scrape job."""
    fragment = yaml.safe_load(FRAGMENT.read_text())
    remote_write = copy.deepcopy(fragment["remote_write"])
    remote_write[0]["url"] = vm_write_url
    labels = dict(fragment["global"]["external_labels"])
    assert set(labels) == {"shard", "replica"}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "external_labels": {"shard": shard, "replica": replica}},
        "scrape_configs": [{"job_name": "fleet", "static_configs": targets}],
        "remote_write": remote_write,
    }


def self_metric(prom, name: str) -> float:
    """Sum of ``name`` on a Prometheus server's own /metrics page (the shards do not scrape themselves)."""
    text = requests.get(f"{prom.url}/metrics", timeout=10).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name)


def by_label(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def start_fleet(victoriametrics_factory, prometheus_factory, fake_hosts, replicas_a: int = 2):
    # Dedup interval equal to the 1 s scrape interval, as the shipped file says
    # (15s for 15s); latency offset short so the test need not wait 10 s per check.
    vm = victoriametrics_factory({"dedup.minScrapeInterval": "1s", "search.latencyOffset": "1s",
                                  "search.disableCache": "true"})
    hosts = fake_hosts(HOSTS["a"] + HOSTS["b"])
    shards = {}
    for shard, names in HOSTS.items():
        targets = [hosts.target(n, {"datacenter": f"dc-{shard}"}) for n in names]
        for r in range(replicas_a if shard == "a" else 1):
            shards[(shard, str(r))] = prometheus_factory(
                shard_config(vm.write_url, shard, str(r), targets), name=f"prometheus-{shard}{r}")
    return vm, hosts, shards


def test_global_query_on_victoriametrics_sees_every_host_of_both_shards_once(
        victoriametrics_factory, prometheus_factory, fake_hosts):
    vm, _, shards = start_fleet(victoriametrics_factory, prometheus_factory, fake_hosts)

    # The global view: one query over both shards (prometheus/remote_write/global-queries.md).
    res = vm.wait_for_query('count(up{job="fleet"} == 1) by (shard)',
                            lambda r: by_label(r, "shard") == {"a": 3.0, "b": 3.0}, timeout=30)
    assert by_label(res, "shard") == {"a": 3.0, "b": 3.0}

    instances = vm.query('count(up{job="fleet"}) by (instance, shard)')
    assert {(r["metric"]["instance"], r["metric"]["shard"]) for r in instances} == {
        (n, s) for s, names in HOSTS.items() for n in names}

    # Shard a is an HA pair and both replicas are writing (each has sent samples), yet
    # VictoriaMetrics holds one series per host metric: the replica label was dropped.
    for key in (("a", "0"), ("a", "1")):
        wait_until(lambda k=key: self_metric(shards[k], "prometheus_remote_storage_samples_total") > 50,
                   timeout=20, what=f"shard {key} to send samples")
    series = requests.get(f"{vm.url}/api/v1/series", params={"match[]": "node_load1"}, timeout=10).json()["data"]
    assert sorted(s["instance"] for s in series) == sorted(HOSTS["a"] + HOSTS["b"])
    assert all("replica" not in s for s in series)

    # Dedup: over the same 8 s window each replica scraped ~8 samples; VictoriaMetrics
    # keeps ~8 for the pair, not ~16.
    expr = 'count_over_time(node_load1{instance="web-a-01"}[8s])'

    def counts() -> tuple[float, float, float] | None:
        t = time.time() - 6  # older than batch_send_deadline: both replicas have sent it
        per_replica = [float(shards[("a", r)].api("query", query=expr, time=f"{t:.3f}")["result"][0]["value"][1])
                       for r in ("0", "1")]
        res = vm.query(expr, time=t)
        in_vm = float(res[0]["value"][1]) if res else 0.0
        return (*per_replica, in_vm) if min(per_replica) >= 6 and in_vm >= min(per_replica) - 2 else None

    r0, r1, in_vm = wait_until(counts, timeout=30, interval=0.5, what="8 s of samples from both replicas")
    assert in_vm <= max(r0, r1) + 1, (r0, r1, in_vm)

    # Aggregates work across shards like on one Prometheus.
    busy = vm.wait_for_query('sum by (datacenter) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))',
                             lambda r: len(r) == 2)
    assert {r["metric"]["datacenter"] for r in busy} == {"dc-a", "dc-b"}
    assert all(float(r["value"][1]) > 0 for r in busy)


def test_victoriametrics_outage_loses_no_samples(victoriametrics_factory, prometheus_factory, fake_hosts):
    vm, hosts, shards = start_fleet(victoriametrics_factory, prometheus_factory, fake_hosts, replicas_a=1)
    shard_b = shards[("b", "0")]
    vm.wait_for_query('count(up{job="fleet"}) by (shard)', lambda r: by_label(r, "shard") == {"a": 3.0, "b": 3.0})

    vm.stop()
    t_down = time.time()
    # The shard keeps scraping into its WAL; wait until remote_write has failed and
    # retried for a few scrape intervals rather than sleeping.
    scraped_at_down = hosts.scrapes["web-b-01"]
    wait_until(lambda: hosts.scrapes["web-b-01"] - scraped_at_down >= 5
               and self_metric(shard_b, "prometheus_remote_storage_samples_retried_total") > 0,
               timeout=20, what="5 scrapes of web-b-01 and a failed remote_write during the outage")
    vm.start()
    t_up = time.time()

    # Everything scraped while VictoriaMetrics was down arrives after it is back.
    window = int(t_up - t_down) - 1
    expr = f'count_over_time(node_load1{{instance="web-b-01"}}[{window}s])'
    in_prometheus = float(shard_b.api("query", query=expr, time=f"{t_up:.3f}")["result"][0]["value"][1])
    assert in_prometheus >= window - 1

    def arrived() -> float | None:
        res = vm.query(expr, time=t_up)
        n = float(res[0]["value"][1]) if res else 0.0
        return n if n >= in_prometheus - 1 else None

    n_vm = wait_until(arrived, timeout=30, interval=0.5, what="the outage window to reach VictoriaMetrics")
    assert n_vm >= in_prometheus - 1
    # And the global view is whole again.
    vm.wait_for_query('count(up{job="fleet"}) by (shard)', lambda r: by_label(r, "shard") == {"a": 3.0, "b": 3.0})


def test_fragment_merges_into_the_rendered_shard_config(tmp_path):
    """The fragment goes into the config `fleet-discovery render-config` writes: same external
    label names, and promtool accepts the merged file."""
    rendered = yaml.safe_load(render_shard_config("s1", "r1", str(tmp_path / "targets.json"), "127.0.0.1:9848",
                                                  rules_dir=str(tmp_path / "rules")))
    fragment = yaml.safe_load(FRAGMENT.read_text())
    assert set(fragment["global"]["external_labels"]) <= set(rendered["global"]["external_labels"])
    rendered["remote_write"] = fragment["remote_write"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered, sort_keys=False))
    (tmp_path / "targets.json").write_text("[]")
    res = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "config", "--syntax-only",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
