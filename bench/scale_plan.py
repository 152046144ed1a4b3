"""Capacity plan from measured per-unit costs: shards, memory and CPU per shard, global
view size and ZooKeeper size for the fleet now and each year to year 5.

Reads the JSON written by ``python -m bench.scale --zk --json FILE`` (the fitted bytes per
series, samples/s per core, federated series per host, ZooKeeper figures) and prints the
plan as markdown. Nothing here is measured: it is arithmetic on what bench.scale measured,
with every assumption a flag.

    .venv/bin/python -m bench.scale_plan --json scale.json [--series-per-host 1000]
        [--hosts 10000] [--growth 0.2] [--years 5] [--budget 2500000] [--interval 15]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

GIB = 1024 ** 3


def limit(xs: list[float], ys: list[float], ceiling: float) -> tuple[float, float, float | None]:
    """Fit y = a + b x and return (a, b, the x where y reaches ``ceiling``, None if it never does)."""
    from bench.scale import fit

    a, b = fit(xs, ys)
    return a, b, ((ceiling - a) / b if b > 0 else None)


def fit2(rows: list[dict]) -> tuple[float, float]:
    """cores = alpha * samples/s + beta * head series (least squares, no intercept): ingestion
    per sample, and what every series costs each cycle (rule evaluation, federation, head GC)."""
    xs = [(r["samples_per_s"], r["head_series"]) for r in rows]
    ys = [r["cpu_cores"] for r in rows]
    sxx = sum(a * a for a, _ in xs)
    sxy = sum(a * b for a, b in xs)
    syy = sum(b * b for _, b in xs)
    sxz = sum(a * c for (a, _), c in zip(xs, ys, strict=True))
    syz = sum(b * c for (_, b), c in zip(xs, ys, strict=True))
    det = sxx * syy - sxy * sxy
    return (sxz * syy - syz * sxy) / det, (syz * sxx - sxz * sxy) / det


def plan(result: dict, hosts0: int, growth: float, years: int, series_per_host: int, budget: int,
         interval: float, headroom: float) -> str:
    fits = result["fits"]
    b_series = fits["rss_bytes_per_series"]
    base = fits["rss_base_bytes"]
    rows = result["rows"]
    alpha, beta = fit2(rows)
    # Rule groups run concurrently, rules within a group in sequence: the slowest group must stay
    # well inside the evaluation interval (half of it here, so a slow cycle does not skip the next).
    # Rule cost follows the raw series the rules read, so fit it per head series.
    r_a, r_b, rule_series = limit([r["head_series"] for r in rows],
                                  [r["rule_slowest_group_median_ms"] / 1000 for r in rows], interval / 2)
    rule_hosts = rule_series / series_per_host if rule_series else None
    feds = [r for r in rows if "federation" in r]
    fed_per_host = max(r["federation"]["series_per_host"] for r in feds) if feds else None
    # The global's federate scrape must stay well inside its 12 s scrape_timeout (half of it).
    f_a, f_b, fed_hosts = (limit([r["hosts"] for r in feds], [r["federation"]["federate_ms_median"] / 1000
                                                             for r in feds], 6.0) if len(feds) > 1
                           else (0.0, 0.0, None))
    zk = result.get("zk")
    series_hosts = budget / series_per_host
    caps = {"series budget": series_hosts}
    if rule_hosts:
        caps["rule evaluation"] = rule_hosts
    if fed_hosts:
        caps["federation"] = fed_hosts
    binding = min(caps, key=caps.get)
    out = [f"Assumptions: {series_per_host} series per host, scrape every {interval:.0f} s, a shard holds at most "
           f"{budget:,} head series; memory = {base / GIB:.2f} GiB + {b_series:,.0f} B/series and CPU = "
           f"{1000 * alpha:.4f} cores per 1k samples/s + {1e6 * beta:.3f} cores per 1M head series (fits from "
           f"bench.scale), x{headroom:g} headroom on both for queries, "
           f"compaction and spikes; slowest rule group = {r_a:.2f} s + {1e6 * r_b:.2f} s per 1M head series (fit), kept under "
           f"half the {interval:.0f} s evaluation interval; /federate of one shard = {f_a:.2f} s + {1000 * f_b:.3f} ms "
           f"per host (fit), kept under half the global's 12 s scrape timeout; every shard is an HA pair; growth "
           f"{growth:.0%}/year.\n",
           "Hosts one shard can take, by each limit: " + "; ".join(f"{k} {v:,.0f}" for k, v in caps.items())
           + f" -> **{binding}** binds at {caps[binding]:,.0f} hosts per shard.\n",
           "| year | hosts | head series | samples/s | shards (HA pairs) | Prometheus processes | hosts per shard "
           "| RSS per shard GiB (fit / planned) | cores per shard (fit / planned) "
           "| slowest rule group s | /federate s | global series (federated) | znodes |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for y in range(years + 1):
        hosts = round(hosts0 * (1 + growth) ** y)
        series = hosts * series_per_host
        shards = max(1, math.ceil(hosts / caps[binding]))
        hps = hosts / shards
        rss = base + b_series * hps * series_per_host
        cores = alpha * hps * series_per_host / interval + beta * hps * series_per_host
        glob = f"{hosts * fed_per_host:,.0f}" if fed_per_host else "-"
        znodes = f"{hosts * zk['znodes'] / zk['hosts']:,.0f}" if zk else "-"
        out.append(f"| {y} | {hosts:,} | {series:,} | {series / interval:,.0f} | {shards} | {2 * shards} "
                   f"| {hps:,.0f} | {rss / GIB:.1f} / {headroom * rss / GIB:.1f} "
                   f"| {cores:.2f} / {headroom * cores:.1f} | {r_a + r_b * hps * series_per_host:.2f} | {f_a + f_b * hps:.2f} "
                   f"| {glob} | {znodes} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, required=True, help="output of bench.scale --json")
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--growth", type=float, default=0.2)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--series-per-host", type=int, default=None,
                    help="default: what the simulated hosts served in the run")
    ap.add_argument("--budget", type=int, default=2_500_000, help="head series per shard")
    ap.add_argument("--interval", type=float, default=15.0, help="production scrape interval, seconds")
    ap.add_argument("--headroom", type=float, default=2.0)
    args = ap.parse_args()
    result = json.loads(args.json.read_text())
    sph = args.series_per_host or round(result["rows"][0]["samples_per_host_scrape"])
    print(plan(result, args.hosts, args.growth, args.years, sph, args.budget, args.interval, args.headroom))


if __name__ == "__main__":
    main()
