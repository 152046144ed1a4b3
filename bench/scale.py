"""Scale benchmark: what a Prometheus shard costs per host and per series, measured on
simulated fleets of several sizes, plus the global federation cost per shard.

For each fleet size N it starts the simulator (``fleet-simulator --hosts N
--series-per-host S --file-sd``), a real Prometheus 2.42 shard scraping every simulated
host through file_sd with the shipped recording rules (prometheus/rules/recording.yml),
and a global Prometheus federating the shard's recorded series exactly as
prometheus/global.yml does. After a warm-up (all targets up, head series settled) it
measures over a window:

- head series (prometheus_tsdb_head_series) and RSS per head series;
- CPU per 1,000 samples/s ingested (process CPU / prometheus_tsdb_head_samples_appended_total);
- rule evaluation time per group (prometheus_rule_group_last_duration_seconds, max in window);
- scrape duration distribution over every target's scrapes in the window;
- the simulator's CPU per host scrape (to show it is not the bottleneck);
- federation: scrape duration and samples per federate of the global, and a timed /federate.

The scrape interval defaults to 5 s to raise samples/s on a small fleet, and is stretched
for big fleets so ingestion stays under --max-rate samples/s (this machine has 2 cores).
Figures from /work/shared/FACTS.md (reference Prometheus run) and a prometheus-node-exporter
started in the same run are printed beside ours. ZooKeeper + sidecar cost at 25,000
registrations is bench/scale_zk.py (run with --zk here to include it).

    .venv/bin/python -m bench.scale [--sizes 500,1000,2000,5000] [--series-per-host 500]
                                    [--interval 5] [--window 60] [--max-rate 100000]
                                    [--zk] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.exporter_common import Proc, ours
from bench.scale_common import (
    REF_BYTES_PER_SERIES,
    REF_NODE_EXPORTER_SERIES,
    REF_SAMPLES_PER_CORE,
    REPO,
    Simulator,
    VictoriaMetrics,
    cpu_seconds,
    metric_sum,
    quantiles,
    rss_bytes,
    self_metrics,
    wait_for,
)
from tests.harness.servers import PrometheusServer, free_port

RULES_DIR = REPO / "prometheus" / "rules"
SHARD_RULES = ["recording.yml"]
GLOBAL_RULES = ["fleet.yml"]
GLOBAL_CONFIG = REPO / "prometheus" / "global.yml"
EVALUATION_INTERVAL = 15


def copy_rules(names: list[str], dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    found = []
    for n in names:
        if (RULES_DIR / n).exists():
            shutil.copy(RULES_DIR / n, dest / n)
            found.append(n)
    return found


def shard_config(interval: int, targets_file: Path, rules: list[str], vm_url: str | None = None) -> dict:
    cfg = {
        "global": {"scrape_interval": f"{interval}s", "scrape_timeout": f"{min(interval - 1, 10)}s",
                   "evaluation_interval": f"{EVALUATION_INTERVAL}s",
                   "external_labels": {"shard": "s0", "replica": "a"}},
        "rule_files": [f"rules/{r}" for r in rules],
        "scrape_configs": [
            {"job_name": "fleet", "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}]},
        ],
    }
    if vm_url:
        # The shipped fragment, unchanged but for the URL.
        rw = yaml.safe_load((REPO / "prometheus" / "remote_write" / "shard.yml").read_text())["remote_write"]
        rw[0]["url"] = f"{vm_url}/api/v1/write"
        cfg["remote_write"] = rw
    return cfg


def federate_job() -> dict:
    """The shipped global's federation job (prometheus/global.yml), its match[] unchanged."""
    cfg = yaml.safe_load(GLOBAL_CONFIG.read_text())
    return next(j for j in cfg["scrape_configs"] if j.get("metrics_path") == "/federate")


def global_config(shard_address: str, rules: list[str]) -> dict:
    job = dict(federate_job())
    job.pop("file_sd_configs", None)
    job["static_configs"] = [{"targets": [shard_address], "labels": {"shard": "s0", "replica": "a"}}]
    return {"global": {"scrape_interval": "15s", "evaluation_interval": "15s",
                       "external_labels": {"fleetmon": "global"}},
            "rule_files": [f"rules/{r}" for r in rules], "scrape_configs": [job]}


def range_values(prom: PrometheusServer, expr: str, at: float) -> list[float]:
    data = prom.api("query", query=expr, time=f"{at:.3f}")
    return [float(v) for series in data["result"] for _, v in series.get("values", [])]


def series_served(proc: Proc) -> int | None:
    """Series on ``proc``'s /metrics once it answers; None if it never does."""
    try:
        proc.start(timeout=30)
        text = requests.get(proc.url, timeout=5).text
        return sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    except RuntimeError:
        return None
    finally:
        proc.stop()


def node_exporter_series(workdir: Path) -> int | None:
    """Series exposed by Debian's prometheus-node-exporter on this machine (reference)."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not binary:
        return None
    port = free_port()
    return series_served(Proc("node_exporter", [binary, f"--web.listen-address=127.0.0.1:{port}",
                                                "--no-collector.systemd"], port, workdir))


def exporter_series(workdir: Path) -> int | None:
    """Series served by our own fleet-exporter on this machine (no logs configured)."""
    return series_served(ours(workdir, ["--state-file", str(workdir / "fleet-exporter-state.json")]))


def run_size(n: int, series_per_host: int, interval: int, window: int, workdir: Path,
             federation: bool, remote_write: bool = False) -> dict[str, Any]:
    wd = workdir / f"n{n}"
    wd.mkdir(parents=True)
    targets = wd / "targets.json"
    sim = Simulator(n, series_per_host, free_port(), targets, wd).start()
    shard = glob = vm = None
    row: dict[str, Any] = {"hosts": n, "interval_s": interval, "window_s": window, "remote_write": remote_write}
    t_start = time.monotonic()
    try:
        row["series_per_host_served"] = sim.series_in_one_host()
        rules = copy_rules(SHARD_RULES, wd / "shard" / "rules")
        row["shard_rule_files"] = rules
        if remote_write:
            vm = VictoriaMetrics(wd / "victoria-metrics", free_port()).start()
        shard = PrometheusServer(wd / "shard", shard_config(interval, targets, rules, vm.url if vm else None),
                                 name=f"shard-{n}")
        shard.start(timeout=120)
        # Warm-up: every host scraped and up, then head series settled (two reads within 1%).
        wait_for(lambda: float((shard.query('count(up{job="fleet"} == 1)') or [{"value": [0, "0"]}])[0]["value"][1])
                 >= n, 60 + 3 * interval, f"all {n} targets up")
        last = [0.0]

        def settled() -> bool:
            cur = metric_sum(self_metrics(shard.url), "prometheus_tsdb_head_series")
            ok = last[0] > 0 and abs(cur - last[0]) <= 0.01 * cur
            last[0] = cur
            return ok

        wait_for(settled, 120, "head series to settle", interval=interval)
        row["warmup_s"] = round(time.monotonic() - t_start, 1)
        if federation:
            grules = copy_rules(GLOBAL_RULES, wd / "global" / "rules")
            glob = PrometheusServer(wd / "global", global_config(f"127.0.0.1:{shard.port}", grules),
                                    name=f"global-{n}")
            glob.start(timeout=60)

        m0, c0, s0, w0 = self_metrics(shard.url), cpu_seconds(shard.pid), cpu_seconds(sim.pid), time.time()
        v0 = cpu_seconds(vm.pid) if vm else 0.0
        rule_seen: dict[str, list[float]] = {}
        rss_max = 0
        while time.time() - w0 < window:
            time.sleep(min(interval, 5))
            m = self_metrics(shard.url)
            for labels, v in m.get("prometheus_rule_group_last_duration_seconds", []):
                g = labels.get("rule_group", "").split(";")[-1]
                rule_seen.setdefault(g, []).append(v)
            rss_max = max(rss_max, rss_bytes(shard.pid))
        m1, c1, s1, w1 = self_metrics(shard.url), cpu_seconds(shard.pid), cpu_seconds(sim.pid), time.time()
        v1 = cpu_seconds(vm.pid) if vm else 0.0
        row["loadavg_1m_end"] = float(Path("/proc/loadavg").read_text().split()[0])
        wall = w1 - w0

        head = metric_sum(m1, "prometheus_tsdb_head_series")
        samples = metric_sum(m1, "prometheus_tsdb_head_samples_appended_total") - metric_sum(
            m0, "prometheus_tsdb_head_samples_appended_total")
        cpu = c1 - c0
        rss = metric_sum(m1, "process_resident_memory_bytes")
        rate = samples / wall
        durations = range_values(shard, f'scrape_duration_seconds{{job="fleet"}}[{int(wall)}s]', w1)
        scraped = shard.query('avg(scrape_samples_scraped{job="fleet"})')
        missed = metric_sum(m1, "prometheus_rule_group_iterations_missed_total") - metric_sum(
            m0, "prometheus_rule_group_iterations_missed_total")
        rule_failures = metric_sum(m1, "prometheus_rule_evaluation_failures_total")
        sim_scrapes = len(durations)
        rule_max = {g: max(v) for g, v in rule_seen.items()}
        rule_median = {g: sorted(v)[len(v) // 2] for g, v in rule_seen.items()}
        row.update({
            "head_series": int(head),
            "samples_per_host_scrape": float(scraped[0]["value"][1]) if scraped else float("nan"),
            "samples_per_s": round(rate),
            "rss_bytes": int(rss), "rss_max_bytes": int(rss_max),
            "rss_per_series_bytes": round(rss / head, 1),
            "heap_inuse_per_series_bytes": round(metric_sum(m1, "go_memstats_heap_inuse_bytes") / head, 1),
            "cpu_cores": round(cpu / wall, 3),
            "samples_per_s_per_core": round(rate / (cpu / wall)) if cpu else None,
            "cpu_ms_per_1k_samples": round(1000 * cpu / samples * 1000, 3) if samples else None,
            "scrape_duration_ms": {k: round(1000 * v, 1) for k, v in quantiles(durations).items()},
            "scrapes_in_window": len(durations),
            "up": int(float((shard.query('count(up{job="fleet"} == 1)') or [{"value": [0, "0"]}])[0]["value"][1])),
            "rule_group_max_ms": {g: round(1000 * v, 1) for g, v in sorted(rule_max.items())},
            "rule_eval_max_total_ms": round(1000 * sum(rule_max.values()), 1),
            "rule_group_median_ms": {g: round(1000 * v, 1) for g, v in sorted(rule_median.items())},
            "rule_eval_median_total_ms": round(1000 * sum(rule_median.values()), 1),
            # Groups are evaluated concurrently; the slowest must finish within the interval.
            "rule_slowest_group_median_ms": round(1000 * max(rule_median.values(), default=0.0), 1),
            "rule_iterations_missed": int(missed), "rule_evaluation_failures": int(rule_failures),
            "sim_cpu_cores": round((s1 - s0) / wall, 3),
            "sim_cpu_ms_per_host_scrape": round(1000 * (s1 - s0) / sim_scrapes, 3) if sim_scrapes else None,
            "sim_rss_bytes": rss_bytes(sim.pid),
        })
        if vm is not None:
            vm_up = vm.query('count(up{job="fleet"})')
            vm_series = metric_sum(self_metrics(vm.url), "vm_cache_entries", type="storage/hour_metric_ids")
            row["victoriametrics"] = {
                "hosts_seen": int(float(vm_up[0]["value"][1])) if vm_up else 0,
                "active_series": int(vm_series),
                "rss_bytes": rss_bytes(vm.pid),
                "rss_per_series_bytes": round(rss_bytes(vm.pid) / vm_series, 1) if vm_series else None,
                "cpu_cores": round((v1 - v0) / wall, 3),
                "shard_samples_pending": int(metric_sum(m1, "prometheus_remote_storage_samples_pending")),
                "shard_samples_failed": int(metric_sum(m1, "prometheus_remote_storage_samples_failed_total")),
                "shard_queue_shards": int(metric_sum(m1, "prometheus_remote_storage_shards")),
            }
        if glob is not None:
            fed = federate_job()
            params = [("match[]", m) for m in fed["params"]["match[]"]]
            timings, sizes, counts = [], [], []
            for _ in range(3):
                t = time.perf_counter()
                r = requests.get(f"{shard.url}/federate", params=params, timeout=60)
                timings.append(time.perf_counter() - t)
                sizes.append(len(r.content))
                counts.append(sum(1 for line in r.text.splitlines() if line and not line.startswith("#")))
            gd = glob.query('scrape_duration_seconds{job="fleetmon-federate"}')
            gs = glob.query('scrape_samples_scraped{job="fleetmon-federate"}')
            gm = self_metrics(glob.url)
            row["federation"] = {
                "series_per_federate": max(counts),
                "series_per_host": round(max(counts) / n, 1),
                "federate_ms_median": round(1000 * sorted(timings)[1], 1),
                "federate_bytes": max(sizes),
                "global_scrape_duration_ms": round(1000 * float(gd[0]["value"][1]), 1) if gd else None,
                "global_samples_scraped": int(float(gs[0]["value"][1])) if gs else None,
                "global_head_series": int(metric_sum(gm, "prometheus_tsdb_head_series")),
                "global_rss_bytes": int(metric_sum(gm, "process_resident_memory_bytes")),
                "global_rule_files": GLOBAL_RULES,
            }
    finally:
        for p in (glob, shard):
            if p is not None:
                p.stop(timeout=30)
        if vm is not None:
            vm.stop()
        sim.stop()
        shutil.rmtree(wd, ignore_errors=True)
    row["run_s"] = round(time.monotonic() - t_start, 1)
    return row


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x; returns (a, b)."""
    n = len(xs)
    if n < 2:
        return (0.0, ys[0] / xs[0] if xs and xs[0] else float("nan"))
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else float("nan")
    return my - b * mx, b


def report(rows: list[dict], ne_series: int | None, ex_series: int | None, series_per_host: int) -> tuple[dict, str]:
    """The figures as markdown tables (printed, and written by --markdown), and the fits."""
    mib = 1024 * 1024
    out: list[str] = []
    rules = ", ".join(rows[0].get("shard_rule_files", [])) or "none"
    out.append(f"Prometheus 2.42 shard scraping `fleet-simulator --series-per-host {series_per_host}`; "
               f"rules: {rules} every {EVALUATION_INTERVAL}s.\n")
    out.append("| hosts | scrape interval | series/host | head series | samples/s | RSS MiB | RSS B/series "
               "| heap B/series | CPU cores | samples/s per core | ms CPU per 1k samples | scrape p50 / p99 / max ms "
               "| rule eval median / max ms | sim ms CPU/scrape | up | load avg (2 cores) |")
    out.append("|" + "---:|" * 16)
    for r in rows:
        sd = r["scrape_duration_ms"]
        out.append(
            f"| {r['hosts']} | {r['interval_s']} s | {r['samples_per_host_scrape']:.0f} | {r['head_series']:,} "
            f"| {r['samples_per_s']:,} | {r['rss_bytes'] / mib:,.0f} | {r['rss_per_series_bytes']:,.0f} "
            f"| {r['heap_inuse_per_series_bytes']:,.0f} | {r['cpu_cores']:.2f} | {r['samples_per_s_per_core'] or 0:,} "
            f"| {r['cpu_ms_per_1k_samples'] or 0:.2f} | {sd['p50']} / {sd['p99']} / {sd['max']} "
            f"| {r['rule_eval_median_total_ms']} / {r['rule_eval_max_total_ms']} "
            f"| {r['sim_cpu_ms_per_host_scrape']} | {r['up']} | {r.get('loadavg_1m_end', '')} |")
    out.append(f"| reference | | {ne_series or REF_NODE_EXPORTER_SERIES} (node_exporter 1.5, now) | 512,000 | 34,000 "
               f"| | {REF_BYTES_PER_SERIES:,} | | | {REF_SAMPLES_PER_CORE:,} | {1e6 / REF_SAMPLES_PER_CORE:.2f} "
               "| | | | | |")
    out.append("\nReference row: FACTS.md (Prometheus 2.42 on this kind of machine, 512k series, 14 min run); "
               "series/host measured in this run from prometheus-node-exporter 1.5 (systemd collector off)"
               + (f"; our fleet-exporter (no logs configured) serves {ex_series} series." if ex_series else "."))
    a_mem, b_mem = fit([r["head_series"] for r in rows], [r["rss_bytes"] for r in rows])
    a_cpu, b_cpu = fit([r["samples_per_s"] for r in rows], [r["cpu_cores"] for r in rows])
    fits = {"rss_base_bytes": round(a_mem), "rss_bytes_per_series": round(b_mem, 1),
            "cpu_base_cores": round(a_cpu, 4), "cpu_cores_per_1k_samples_s": round(1000 * b_cpu, 5),
            "samples_per_s_per_core_marginal": round(1 / b_cpu) if b_cpu > 0 else None}
    out.append(f"\nLeast-squares fit over the {len(rows)} sizes: **RSS = {a_mem / mib:.0f} MiB + {b_mem:,.0f} B x head "
               f"series** (reference {REF_BYTES_PER_SERIES:,} B/series); **CPU = {a_cpu:.3f} cores + "
               f"{1000 * b_cpu:.4f} cores per 1k samples/s** (= {fits['samples_per_s_per_core_marginal'] or 0:,} "
               f"samples/s per core at the margin; reference {REF_SAMPLES_PER_CORE:,}).")
    out.append("\nRule groups, evaluation time in the window, median / max (ms):\n")
    groups = sorted({g for r in rows for g in r["rule_group_max_ms"]})
    out.append("| hosts | " + " | ".join(groups) + " | missed iterations | failures |")
    out.append("|" + "---:|" * (len(groups) + 3))
    for r in rows:
        out.append(f"| {r['hosts']} | " + " | ".join(
            f"{r['rule_group_median_ms'].get(g, '-')} / {r['rule_group_max_ms'].get(g, '-')}" for g in groups)
            + f" | {r['rule_iterations_missed']} | {r['rule_evaluation_failures']} |")
    out.append("\nSimulator (one Python process serving every host):\n")
    out.append("| hosts | host scrapes/s | CPU cores | ms CPU per host scrape | RSS MiB |")
    out.append("|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(f"| {r['hosts']} | {r['hosts'] / r['interval_s']:.0f} | {r['sim_cpu_cores']:.2f} "
                   f"| {r['sim_cpu_ms_per_host_scrape']} | {r['sim_rss_bytes'] / mib:.0f} |")
    vms = [r for r in rows if "victoriametrics" in r]
    if vms:
        out.append("\nThe same shard remote_writing everything to VictoriaMetrics 1.79 with prometheus/remote_write/ "
                   "as shipped:\n")
        out.append("| hosts | hosts seen in VM | VM active series | VM RSS MiB | VM B/series | VM CPU cores "
                   "| shard CPU cores | shard RSS MiB | samples pending at end | failed | queue shards |")
        out.append("|" + "---:|" * 11)
        for r in vms:
            v = r["victoriametrics"]
            out.append(f"| {r['hosts']} | {v['hosts_seen']} | {v['active_series']:,} | {v['rss_bytes'] / mib:,.0f} "
                       f"| {v['rss_per_series_bytes']} | {v['cpu_cores']} | {r['cpu_cores']} "
                       f"| {r['rss_bytes'] / mib:,.0f} | {v['shard_samples_pending']:,} | {v['shard_samples_failed']} "
                       f"| {v['shard_queue_shards']} |")
    feds = [r for r in rows if "federation" in r]
    if feds:
        out.append("\nGlobal Prometheus federating one shard with prometheus/global.yml's `match[]` "
                   "(rules: fleet.yml), 15 s interval:\n")
        out.append("| hosts in shard | series per federate | per host | body KiB | /federate ms (direct, median of 3) "
                   "| global scrape_duration ms | global head series | global RSS MiB |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in feds:
            f = r["federation"]
            out.append(f"| {r['hosts']} | {f['series_per_federate']:,} | {f['series_per_host']} "
                       f"| {f['federate_bytes'] / 1024:,.0f} | {f['federate_ms_median']} "
                       f"| {f['global_scrape_duration_ms']} | {f['global_head_series']:,} "
                       f"| {f['global_rss_bytes'] / mib:.0f} |")
    text = "\n".join(out) + "\n"
    print("\n" + text)
    return fits, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="500,1000,2000,5000")
    ap.add_argument("--series-per-host", type=int, default=500)
    ap.add_argument("--interval", type=int, default=5, help="base scrape interval, seconds")
    ap.add_argument("--max-rate", type=int, default=100_000,
                    help="stretch the interval so hosts*series/interval stays under this")
    ap.add_argument("--window", type=int, default=60, help="measurement window after warm-up, seconds")
    ap.add_argument("--no-federation", action="store_true")
    ap.add_argument("--remote-write", action="store_true",
                    help="also remote_write to a VictoriaMetrics with prometheus/remote_write/ as shipped")
    ap.add_argument("--zk", action="store_true", help="also run bench.scale_zk (25,000 registrations)")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    ap.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    command = ".venv/bin/python -m bench.scale " + " ".join(sys.argv[1:])
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleetmon-scale-") as tmp:
        ne = node_exporter_series(Path(tmp) / "node_exporter")
        ex = exporter_series(Path(tmp) / "fleet-exporter")
        for n in sizes:
            interval = max(args.interval, math.ceil(n * args.series_per_host / args.max_rate))
            window = max(args.window, 4 * interval)
            print(f"[{time.strftime('%H:%M:%S')}] {n} hosts x {args.series_per_host} series, "
                  f"scrape every {interval}s, window {window}s ...", file=sys.stderr, flush=True)
            try:
                rows.append(run_size(n, args.series_per_host, interval, window, Path(tmp), not args.no_federation,
                                     args.remote_write))
            except Exception as exc:  # noqa: BLE001 - one size failing must not lose the others' figures
                print(f"  {n} hosts FAILED: {exc!r}", file=sys.stderr, flush=True)
                continue
            print(f"  done in {rows[-1]['run_s']}s: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps({"command": command, "partial": True, "rows": rows}))
    if not rows:
        raise SystemExit("no fleet size completed")
    fits, text = report(rows, ne, ex, args.series_per_host)
    result: dict[str, Any] = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime(t0)),
                              "node_exporter_series": ne, "fleet_exporter_series": ex, "rows": rows, "fits": fits}
    if args.zk:
        from bench.scale_zk import run as run_zk

        try:
            result["zk"] = run_zk()
            text += "\n" + result["zk"].pop("markdown", "")
        except Exception as exc:  # noqa: BLE001 - keep the Prometheus figures
            print(f"bench.scale_zk FAILED: {exc!r}", file=sys.stderr)
    result["total_s"] = round(time.time() - t0, 1)
    print(f"\ntotal {result['total_s']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.markdown:
        args.markdown.write_text(f"Command: `{result['command']}` (started {result['started']}, "
                                 f"took {result['total_s']} s)\n\n" + text)


if __name__ == "__main__":
    main()
