"""Simulator cost: CPU per host scrape, and the share of one core 10,000 hosts take at 15 s.

Starts `fleet-simulator --hosts N` as a subprocess, then
1. paced: scrapes every host once per interval (default 15 s, N/15 requests/s) over
   keep-alive connections, as Prometheus does, for one or more intervals, and reads the
   simulator's CPU time from /proc: that is the figure the issue asks for;
2. burst: scrapes all hosts as fast as it can (max hosts/s on one core);
and the same for the reference, prometheus-node-exporter 1.5 (one real host per process),
scraped in the same run. The load generator runs in this process on the other core.

    .venv/bin/python -m bench.sim_cost [--hosts 10000] [--interval 15] [--intervals 1]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.exporter_common import Proc
from bench.scale_common import cpu_seconds, rss_bytes
from tests.harness.servers import RepoCommand, free_port


def rss_mib(pid: int) -> float:
    return rss_bytes(pid) / 2**20


async def fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {head[:40]!r}")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            await reader.readexactly(length)
            return length
    total = 0  # chunked (node_exporter)
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        await reader.readexactly(size + 2)
        total += size
        if size == 0:
            return total


async def scrape_all(port: int, paths: list[str], interval: float | None, conns: int) -> tuple[list[float], int]:
    """Scrape every path once; paced evenly over ``interval`` seconds, or as fast as possible."""
    lat: list[float] = []
    total = 0
    queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    t0 = time.monotonic()
    for i, p in enumerate(paths):
        queue.put_nowait((p, t0 + (interval * i / len(paths) if interval else 0.0)))

    async def worker() -> None:
        nonlocal total
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    path, due = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                s = time.perf_counter()
                n = await fetch(reader, writer, path)  # not `total += await ...`: lost updates
                total += n
                lat.append(time.perf_counter() - s)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return lat, total


def measure(pid: int, port: int, paths: list[str], interval: float | None, rounds: int, conns: int) -> dict:
    c0, w0 = cpu_seconds(pid), time.monotonic()
    lat: list[float] = []
    size = 0
    for _ in range(rounds):
        latency, total = asyncio.run(scrape_all(port, paths, interval, conns))
        lat += latency
        size += total
    wall, cpu = time.monotonic() - w0, cpu_seconds(pid) - c0
    lat.sort()
    return {"scrapes": len(lat), "wall": wall, "cpu": cpu, "cpu_per_scrape_ms": 1000 * cpu / len(lat),
            "core_share": cpu / wall, "median_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "body_kb": size / len(lat) / 1024,
            "rss_mib": rss_mib(pid)}


def register_time(n: int, workdir: Path) -> None:
    """Seconds from starting `simulate --zk` to every inventory and liveness znode present."""
    from fleetmon.zk import make_client
    from tests.harness.servers import ZooKeeperServer, wait_until

    zk = ZooKeeperServer(workdir / "zk")
    zk.start()
    port = free_port()
    client = make_client(zk.hosts)
    client.start(timeout=15)

    def count(kind: str) -> int:
        base = f"/fleetmon/{kind}"
        if not client.exists(base):
            return 0
        return sum(len(client.get_children(f"{base}/{b}")) for b in client.get_children(base))

    t0 = time.monotonic()
    sim = RepoCommand(workdir, "simulator", [sys.executable, "-m", "simulator", "--hosts", str(n), "--listen",
                                             f"127.0.0.1:{port}", "--zk", zk.hosts], port).start()
    try:
        wait_until(lambda: count("hosts") == n and count("alive") == n, timeout=300, interval=0.5,
                   what=f"{n} hosts registered")
        print(f"registration: {n} hosts (inventory + liveness znodes) {time.monotonic() - t0:.1f}s "
              f"from simulator start")
    finally:
        sim.stop()
        client.stop()
        client.close()
        zk.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--intervals", type=int, default=1, help="paced rounds (each one interval long)")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--register", action="store_true",
                    help="also time registering every host in a real ZooKeeper (discovery's Registrar)")
    args = ap.parse_args()
    wd = Path(tempfile.mkdtemp(prefix="sim-cost-"))
    try:
        measure_all(args, wd)
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def measure_all(args: argparse.Namespace, wd: Path) -> None:
    if args.register:
        register_time(args.hosts, wd)

    port = free_port()
    sim = Proc("simulator", [sys.executable, "-m", "simulator", "--hosts", str(args.hosts),
                             "--listen", f"127.0.0.1:{port}"], port, wd).start(60)
    try:
        import requests

        hosts = [h["metrics_path"] for h in requests.get(f"http://127.0.0.1:{port}/hosts", timeout=30).json()]
        text = requests.get(f"http://127.0.0.1:{port}{hosts[0]}", timeout=5).text
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        paced = measure(sim.pid, port, hosts, args.interval, args.intervals, args.conns)
        burst = measure(sim.pid, port, hosts, None, 1, 8)
    finally:
        sim.stop()

    ne = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    ref = None
    if ne:
        nport = free_port()
        node = Proc("node_exporter", [
            ne, f"--web.listen-address=127.0.0.1:{nport}", "--collector.disable-defaults",
            *(f"--collector.{c}" for c in ("cpu", "meminfo", "filesystem", "diskstats", "loadavg",
                                           "netdev", "stat", "uname", "vmstat", "netstat", "time"))], nport, wd).start(60)
        try:
            ref = measure(node.pid, nport, ["/metrics"] * 300, None, 1, 1)
        finally:
            node.stop()

    print(f"simulator: {args.hosts} hosts, {series} series per host")
    print(f"  paced at {args.interval:.0f}s ({args.hosts / args.interval:.0f} scrapes/s, {paced['scrapes']} scrapes): "
          f"{100 * paced['core_share']:.1f}% of one core, {paced['cpu_per_scrape_ms']:.3f} ms CPU per host scrape, "
          f"latency median {paced['median_ms']:.2f} ms p99 {paced['p99_ms']:.2f} ms, "
          f"body {paced['body_kb']:.1f} KiB, RSS {paced['rss_mib']:.0f} MiB")
    print(f"  burst: {burst['scrapes'] / burst['wall']:.0f} host scrapes/s, "
          f"{burst['cpu_per_scrape_ms']:.3f} ms CPU per scrape -> one core serves "
          f"{1000 / burst['cpu_per_scrape_ms'] * args.interval:.0f} hosts at {args.interval:.0f}s")
    if ref:
        print(f"reference prometheus-node-exporter (one real host, {ref['scrapes']} scrapes): "
              f"{ref['cpu_per_scrape_ms']:.3f} ms CPU per scrape, median {ref['median_ms']:.2f} ms, "
              f"body {ref['body_kb']:.1f} KiB, RSS {ref['rss_mib']:.0f} MiB")
        print(f"  simulator CPU per host scrape / node_exporter CPU per scrape: "
              f"{paced['cpu_per_scrape_ms'] / ref['cpu_per_scrape_ms']:.2f}")


if __name__ == "__main__":
    main()
