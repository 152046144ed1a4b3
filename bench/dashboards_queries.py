"""What the recording rules cost and what they save: a Prometheus scraping N simulated hosts
(`fleet-simulator`) with prometheus/rules/recording.yml + fleet.yml loaded.

Prints, each beside its reference measured in the same run:
- rule evaluation time per cycle (all fleetmon groups) vs the evaluation interval;
- series per host: recorded (what the global federates) vs raw (what it would otherwise pull);
- dashboard query latency, median of repeated runs: the recorded-series query the dashboards
  use vs the same figure computed from raw series (what a dashboard without these rules runs);
- /federate for the global: our match[] vs federating every raw series (time and bytes).

    .venv/bin/python -m bench.dashboards_queries [--hosts 500] [--measure 60]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import requests
import yaml

from bench.scale_common import Simulator, wait_for
from fleetmon.filters import FS_MATCHER
from tests.harness.servers import PrometheusServer, free_port

REPO = Path(__file__).resolve().parents[1]
RULES = ("recording.yml", "fleet.yml")
FEDERATE_MATCH = yaml.safe_load((REPO / "prometheus" / "global.yml").read_text())[
    "scrape_configs"][0]["params"]["match[]"]

# (panel, recorded query the dashboards run, the same figure from raw series)
QUERIES = [
    ("fleet CPU p95 by datacenter/role",
     "datacenter_role:cpu_usage_percent:p95",
     'quantile by (datacenter, role) (0.95, 100 * (1 - avg by (datacenter, role, instance) '
     '(rate(node_cpu_seconds_total{mode="idle"}[5m]))))'),
    ("top 10 hosts by CPU",
     "topk(10, instance:cpu_usage:percent)",
     'topk(10, 100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))))'),
    ("top 10 hosts by fullest filesystem",
     "topk(10, instance:disk_usage_max:percent)",
     # The raw side filters file systems exactly as the recorded series do (fleetmon.filters).
     f'topk(10, max by (instance) (100 * (1 - node_filesystem_avail_bytes{{{FS_MATCHER}}} '
     f'/ node_filesystem_size_bytes{{{FS_MATCHER}}})))'),
    ("fleet HTTP 5xx ratio p95 by datacenter/role",
     "datacenter_role:http_5xx_ratio:p95",
     'quantile by (datacenter, role) (0.95, sum by (datacenter, role, instance) '
     '(rate(fleetmon_http_requests_total{status=~"5.."}[5m])) / sum by (datacenter, role, instance) '
     '(rate(fleetmon_http_requests_total[5m])))'),
    ("one host: CPU by mode",
     'instance_mode:cpu_usage:percent{instance="HOST"}',
     '100 * avg by (mode) (rate(node_cpu_seconds_total{instance="HOST"}[5m]))'),
]


def timed(fn, runs: int) -> float:
    """Median wall milliseconds of ``fn()`` over ``runs`` runs (after one warm-up)."""
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def query(prom: PrometheusServer, expr: str, range_s: int = 0):
    if range_s:
        end = time.time()
        data = prom.api("query_range", query=expr, start=end - range_s, end=end, step=15)
    else:
        data = prom.api("query", query=expr)
    assert data["result"], f"no result for {expr}"
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--series-per-host", type=int, default=500)
    ap.add_argument("--interval", default="10s", help="scrape and evaluation interval")
    ap.add_argument("--measure", type=int, default=60, help="seconds of rule evaluation to sample")
    ap.add_argument("--runs", type=int, default=15, help="runs per query timing")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    sim = prom = None
    try:
        sim_port = free_port()
        (tmp / "sim").mkdir()
        sim = Simulator(args.hosts, args.series_per_host, sim_port, tmp / "sim" / "targets.json", tmp / "sim").start()
        (tmp / "prom" / "rules").mkdir(parents=True)
        for name in RULES:
            shutil.copy(REPO / "prometheus" / "rules" / name, tmp / "prom" / "rules" / name)
        prom = PrometheusServer(tmp / "prom", {
            "global": {"scrape_interval": args.interval, "scrape_timeout": args.interval,
                       "evaluation_interval": args.interval},
            "rule_files": [f"rules/{n}" for n in RULES],
            "scrape_configs": [{"job_name": "fleet", "file_sd_configs": [{"files": [str(sim.file_sd)]}]}],
        }, name="prometheus-bench")
        prom.start()
        print(f"{args.hosts} simulated hosts x ~{sim.series_in_one_host()} series, scrape/eval every "
              f"{args.interval}; waiting for every host and the 5m-rate rules ...", flush=True)
        wait_for(lambda: len(prom.targets()) == args.hosts and all(t["health"] == "up" for t in prom.targets()),
                 300, "every simulated host scraped")
        wait_for(lambda: prom.query("count(datacenter_role:http_5xx_ratio:p95)"), 300, "fleet rules producing")

        # Rule evaluation cost: the sum of the fleetmon groups' last evaluation time, sampled.
        cycles = []
        deadline = time.monotonic() + args.measure
        while time.monotonic() < deadline:
            groups = [g for g in prom.rules() if g["name"].startswith("fleetmon.")]
            cycles.append(sum(g["evaluationTime"] for g in groups))
            time.sleep(2)
        per_rule = sorted(((r["evaluationTime"], r.get("name")) for g in groups for r in g["rules"]),
                          reverse=True)[:6]
        interval_s = float(args.interval.rstrip("s"))
        eval_ms = statistics.median(cycles) * 1000
        print(f"\nrule evaluation, all fleetmon groups: {eval_ms:.0f} ms per cycle (median of {len(cycles)}), "
              f"{eval_ms / args.hosts * 1000:.1f} ms per 1,000 hosts; reference: the {interval_s:.0f} s "
              f"evaluation interval -> {eval_ms / (interval_s * 10):.1f}% of one core", flush=True)
        print("  costliest rules (last cycle): " + ", ".join(f"{n} {t * 1000:.0f} ms" for t, n in per_rule))

        raw = float(prom.query('count({job="fleet", __name__!~".+:.+"})')[0]["value"][1])
        rec = float(prom.query('count({__name__=~"instance(_[a-z]+)?:.+", __name__!~"instance_le:.+"})')[0]["value"][1])
        print(f"series per host: {rec / args.hosts:.1f} recorded (federated) vs {raw / args.hosts:.1f} raw "
              f"(reference) -> {raw / rec:.1f}x fewer for the global")

        host = prom.query("topk(1, instance:up:bool)")[0]["metric"]["instance"]
        print(f"\ndashboard queries, median of {args.runs} runs (ms): recorded | from raw series (reference)")
        for title, recorded, raw_q in QUERIES:
            recorded, raw_q = recorded.replace("HOST", host), raw_q.replace("HOST", host)
            for label, range_s in (("instant", 0), ("range 5m", 300)):
                t_rec = timed(lambda q=recorded, r=range_s: query(prom, q, r), args.runs)
                t_raw = timed(lambda q=raw_q, r=range_s: query(prom, q, r), args.runs)
                print(f"  {title:45s} {label:9s} {t_rec:8.1f} | {t_raw:8.1f}   ({t_raw / t_rec:.1f}x)")

        def federate(matchers: list[str]) -> int:
            qs = "&".join("match[]=" + urllib.parse.quote(m) for m in matchers)
            r = requests.get(f"{prom.url}/federate?{qs}", timeout=120)
            r.raise_for_status()
            return len(r.content)

        ours_b, all_b = federate(FEDERATE_MATCH), federate(['{job="fleet"}'])
        t_ours = timed(lambda: federate(FEDERATE_MATCH), 5)
        t_all = timed(lambda: federate(['{job="fleet"}']), 5)
        print(f"\n/federate per scrape of this shard: ours {t_ours:.0f} ms, {ours_b / 1e6:.2f} MB | every raw "
              f"series (reference) {t_all:.0f} ms, {all_b / 1e6:.2f} MB")
        return 0
    finally:
        if prom is not None:
            prom.stop()
        if sim is not None:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
