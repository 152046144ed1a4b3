"""Scrape latency (median, p99) and body size: fleet-exporter vs prometheus-node-exporter
1.5 with the same collectors, scraped alternately in the same run.

    .venv/bin/python -m bench.exporter_scrape [--scrapes 300] [--fixture]

``--fixture`` runs both on the parity test's procfs/sysfs/udev/rootfs/textfile trees
(tests/exporter/nodetree.py) with the textfile collector and every optional family on
(cpu info, softirqs), instead of this host's /proc and /sys.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import time

from bench.exporter_common import Proc, node_exporter, ours, workdir
from tests.harness.servers import free_port

COLLECTORS = ["cpu", "meminfo", "filesystem", "diskstats", "loadavg", "netdev", "stat", "time", "uname"]


def scrape(conn: http.client.HTTPConnection, gzip: bool) -> tuple[float, int, int]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    t0 = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    r = conn.getresponse()
    body = r.read()
    took = time.perf_counter() - t0
    lines = [] if gzip else [ln for ln in body.split(b"\n") if ln and not ln.startswith(b"#")]
    return took, len(body), (len(lines), sum(1 for ln in lines if ln.startswith(b"node_")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--fixture", action="store_true", help="scrape the parity fixture trees, every family on")
    args = ap.parse_args()
    wd = workdir("bench-scrape-")
    if args.fixture:
        from tests.exporter import nodetree  # noqa: PLC0415 - only this mode needs the fixtures

        tree = nodetree.build(wd / "tree")
        collectors = [*COLLECTORS, "textfile"]
        optional = ["--collector.stat.softirq", "--collector.cpu.info", "--collector.cpu.info.flags-include=^avx",
                    "--collector.cpu.info.bugs-include=spectre", "--no-collector.netdev.netlink"]
        port = free_port()
        procs = {"fleet-exporter": ours(wd, [*[f"--collector.{c}" for c in collectors], *tree.our_args(),
                                             *optional]),
                 "node_exporter": Proc("node_exporter", [
                     "/usr/bin/prometheus-node-exporter", "--collector.disable-defaults",
                     *[f"--collector.{c}" for c in collectors], f"--web.listen-address=127.0.0.1:{port}",
                     *tree.node_exporter_args(), *optional], port, wd)}
    else:
        collectors = COLLECTORS
        procs = {"fleet-exporter": ours(wd, [*[f"--collector.{c}" for c in COLLECTORS], "--no-collector.textfile"]),
                 "node_exporter": node_exporter(wd, COLLECTORS)}
    try:
        for p in procs.values():
            p.start()
        results = {}
        for gz in (False, True):
            conns = {k: http.client.HTTPConnection("127.0.0.1", p.port, timeout=10) for k, p in procs.items()}
            lat: dict[str, list[float]] = {k: [] for k in procs}
            size = {}
            for i in range(args.scrapes + 20):
                for k, c in conns.items():  # alternate, so both see the same machine load
                    took, n, series = scrape(c, gz)
                    if i >= 20:  # warm-up
                        lat[k].append(took)
                    size[k] = (n, series)
            results[gz] = (lat, size)
        print(f"scrapes per exporter: {args.scrapes} (after 20 warm-up), keep-alive connection, "
              f"collectors: {','.join(collectors)}{' on the fixture trees' if args.fixture else ''}")
        for gz, (lat, size) in results.items():
            print(f"\n{'gzip' if gz else 'plain'} responses:")
            print(f"{'exporter':16} {'median ms':>10} {'p99 ms':>8} {'body bytes':>11} {'series':>7} {'node_*':>7}")
            for k in procs:
                xs = sorted(lat[k])
                p99 = xs[int(len(xs) * 0.99) - 1]
                series = f"{size[k][1][0]:7d} {size[k][1][1]:7d}" if not gz else ""
                print(f"{k:16} {statistics.median(xs) * 1000:10.2f} {p99 * 1000:8.2f} {size[k][0]:11d} {series}")
            ratio = statistics.median(lat["fleet-exporter"]) / statistics.median(lat["node_exporter"])
            print(f"median ratio fleet-exporter / node_exporter: {ratio:.2f}")
    finally:
        for p in procs.values():
            p.stop()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
