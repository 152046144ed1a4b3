"""Run fleetmon benchmarks: `python -m bench` lists them, `python -m bench NAME...` runs some,
`python -m bench all` runs every one (tens of minutes on 2 cores).

Benchmarks report numbers; they assert nothing. Each prints its figures beside the reference
tool's measured in the same run. Record results in docs/benchmarks.md with the command.
"""

from __future__ import annotations

import runpy
import subprocess
import sys

BENCHMARKS: dict[str, str] = {
    "exporter_scrape": "scrape latency and body size vs prometheus-node-exporter",
    "exporter_logs": "log lines/s on 1M-line nginx combined and main (format string) logs vs mtail",
    "exporter_logs_adversarial": "CPU per byte on scanner-style access lines vs normal ones, vs mtail",
    "exporter_logs_journald": "journal entries/s vs journalctl alone; CPU/RSS at 1,000 lines/s + 200 entries/s",
    "exporter_restart": "lines lost across an exporter restart vs mtail",
    "exporter_resources": "exporter CPU and RSS while tailing 1,000 lines/s",
    "discovery_scale": "25,000 registrations, 4 -> 5 shards, target latency",
    "rulesync_scale": "compile/validate/test 1,000 rules, apply to 2 shards",
    "config_schemas": "RSS and time a config's schema check costs: generated validators vs compiled at start vs jsonschema",
    "router_accept": "alert-router sustained accept rate and p99 latency",
    "router_e2e": "webhook POST -> email in the SMTP sink",
    "dashboards_queries": "panel query cost: recorded vs raw series",
    "sim_cost": "simulator CPU per host at a 15 s scrape interval",
    "alert_latency": "threshold crossed -> alert firing -> email, >= 10 trials",
    "scale": "Prometheus cost per series/sample at several fleet sizes",
    "scale_zk": "ZooKeeper and sidecar cost at 25,000 registrations",
    "security_cost": "registration over TLS + ACLs vs plain; signed vs unsigned rule apply",
    "packaging": ".deb sizes, install times, exporter start/RSS installed vs checkout vs node_exporter",
    "availability": "alert path under faults: lost, duplicated, firing -> inbox per fault",
    "zk_sessions": "per-host ZooKeeper sessions: client cost, ensemble load, leader/follower failover",
}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        for name, what in BENCHMARKS.items():
            print(f"  {name:20s} {what}")
        return 0
    names = list(BENCHMARKS) if argv == ["all"] else argv
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; run `python -m bench` for the list",
              file=sys.stderr)
        return 2
    if len(names) == 1:
        sys.argv = [f"bench.{names[0]}"]
        runpy.run_module(f"bench.{names[0]}", run_name="__main__")
        return 0
    failed = []
    for name in names:
        print(f"\n===== bench.{name}: {BENCHMARKS[name]}", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
