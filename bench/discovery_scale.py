"""Discovery at fleet scale: 25,000 hosts, 4 then 5 shards, real ZooKeeper and Prometheus.

Run from the repo root:  .venv/bin/python -m bench.discovery_scale [--hosts 25000]
                          [--watcher fleetmon|treecache] [--prom-samples 0]

Prints, beside each fleetmon figure, the reference measured in the same run:
registration with one-at-a-time kazoo creates vs the Registrar's pipelined
create_async; hosts moved 4 -> 5 shards by rendezvous vs Prometheus hashmod.
``--watcher treecache`` runs the sidecars with kazoo's TreeCache recipe in place of
fleetmon's bucket watcher (bench/discovery_treecache.py): run both back to back to compare
sidecar RSS, registration -> file latency and ZooKeeper watches.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from discovery import layout
from discovery.promconfig import render_shard_config
from discovery.registry import Registrar
from discovery.sharding import assign, hashmod_assign
from discovery.watcher import load_view
from fleetmon.zk import make_client
from tests.harness.servers import (
    PrometheusServer,
    RepoCommand,
    ZooKeeperServer,
    free_port,
    wait_until,
)

FLEET_DISCOVERY = str(Path(sys.executable).parent / "fleet-discovery")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class SidecarProc(RepoCommand):
    """A ``fleet-discovery run`` sidecar (or the TreeCache variant) for one shard, its log in
    ``workdir/<shard>.log``, started at once (ready when its port answers)."""

    def __init__(self, workdir: Path, zk: str, root: str, shard: str, debounce: float,
                 watcher: str = "fleetmon"):
        self.shard = shard
        port = free_port()
        self.output = workdir / f"{shard}.json"
        cmd = [FLEET_DISCOVERY] if watcher == "fleetmon" else [sys.executable, "-m", "bench.discovery_treecache"]
        super().__init__(workdir, shard, [
            *cmd, "run", "--zk", zk, "--root", root, "--shard", shard, "--replica", "r1",
            "--output", str(self.output), "--listen", f"127.0.0.1:{port}", "--retention", "0",
            "--debounce", str(debounce), "--log-level", "warning"], port)
        self.start(timeout=30)

    def names(self) -> set[str]:
        try:
            return {g["labels"]["instance"] for g in json.loads(self.output.read_text())}
        except (OSError, ValueError):
            return set()

    def contains(self, name: str) -> bool:
        try:
            return f'"instance":"{name}"'.encode() in self.output.read_bytes()
        except OSError:
            return False

    def metric(self, name: str) -> float:
        """One un-labelled-by-instance sidecar metric from its /metrics."""
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(f"fleetmon_discovery_{name}{{"):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)


class _SkipProm(Exception):
    """--prom-samples 0: leave out the Prometheus pickup part."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=25_000)
    ap.add_argument("--sync-sample", type=int, default=2_000, help="hosts registered one create at a time")
    ap.add_argument("--file-samples", type=int, default=40, help="of each kind (isolated, back-to-back)")
    ap.add_argument("--prom-samples", type=int, default=8)
    ap.add_argument("--debounce", type=float, default=0.5)
    ap.add_argument("--cold-timeout", type=float, default=600.0,
                    help="seconds to wait for complete shard files after starting sidecars")
    ap.add_argument("--watcher", choices=("fleetmon", "treecache"), default="fleetmon",
                    help="the sidecars' watcher: fleetmon's bucket watcher or kazoo's TreeCache")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-discovery-"))
    zk = ZooKeeperServer(work / "zk")
    zk.start()
    root = f"/bench-{uuid.uuid4().hex[:8]}"
    sidecars: list[SidecarProc] = []
    prom: PrometheusServer | None = None
    reg: Registrar | None = None
    results: dict[str, object] = {}
    try:
        client = make_client(zk.hosts, role="admin")  # writes the reference tree as well as reading
        client.start(timeout=15)
        names = [f"host-{i:05d}.dc{i % 4}.example.net" for i in range(args.hosts)]

        # --- reference: one synchronous create at a time (inventory + liveness per host)
        sync_root = root + "-sync"
        t0 = time.monotonic()
        for n in names[: args.sync_sample]:
            client.create(layout.host_path(sync_root, n), layout.make_host(n, "10.0.0.1:9847").to_json(),
                          makepath=True)
            client.create(layout.host_alive_path(sync_root, n), b"", ephemeral=True, makepath=True)
        sync_rate = args.sync_sample / (time.monotonic() - t0)

        # --- fleetmon: Registrar.add_many, pipelined create_async, one session
        reg = Registrar(zk.hosts, root=root, session_timeout=30.0, agent="bench").start()
        t0 = time.monotonic()
        reg.add_many([(n, f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9847",
                       {"datacenter": f"dc{i % 4}", "role": ("web", "db", "cache")[i % 3], "env": "prod"})
                      for i, n in enumerate(names)])
        assert reg.wait(600), reg.status()
        reg_seconds = time.monotonic() - t0
        results["register"] = (reg_seconds, args.hosts / reg_seconds, args.hosts / sync_rate, sync_rate)

        # --- full read of the tree (what a sidecar does at start and after every reconnect)
        t0 = time.monotonic()
        view = load_view(client, root)
        load_seconds = time.monotonic() - t0
        assert len(view.hosts) == args.hosts

        # --- 4 shard sidecars (processes), cold start to complete files
        shards4 = ["shard-1", "shard-2", "shard-3", "shard-4"]
        t0 = time.monotonic()
        sidecars = [SidecarProc(work, zk.hosts, root, s, args.debounce, args.watcher) for s in shards4]
        expected4 = {s: 0 for s in shards4}
        for n in names:
            expected4[assign(n, shards4)] += 1
        wait_until(lambda: all(len(sc.names()) == expected4[sc.shard] for sc in sidecars), args.cold_timeout,
                   interval=0.5, what="4 complete shard files")
        cold4 = time.monotonic() - t0
        resync = [sc.metric("resync_duration_seconds") for sc in sidecars]
        rss4 = [rss_mib(sc.pid) for sc in sidecars]
        watches4 = zk.four_letter("wchs").strip().splitlines()[-1]
        before = {n: sc.shard for sc in sidecars for n in sc.names()}
        assert len(before) == args.hosts

        # --- registration -> file latency (one registration at a time)
        lat_file, lat_stream = [], []
        extra = Registrar(zk.hosts, root=root, session_timeout=30.0, agent="bench-probe").start()
        try:
            for i in range(2 * args.file_samples):
                # Even samples: isolated (the sidecar has not written for > debounce); odd ones
                # follow the previous write at once and so wait for the throttle window.
                isolated = i % 2 == 0
                if isolated:
                    time.sleep(args.debounce + 0.1)
                n = f"probe-{i:04d}.example.net"
                target = next(sc for sc in sidecars if sc.shard == assign(n, shards4))
                t0 = time.monotonic()
                extra.add(n, "10.255.0.1:9847", {"role": "probe"})
                wait_until(lambda n=n, target=target: target.contains(n), 30, interval=0.005)
                (lat_file if isolated else lat_stream).append(time.monotonic() - t0)

            # --- registration -> Prometheus /api/v1/targets (one real shard Prometheus)
            lat_prom = []
            if args.prom_samples <= 0:
                raise _SkipProm
            pw = work / "prom"
            pw.mkdir()
            sc0 = sidecars[0]
            cfg = render_shard_config(sc0.shard, "r1", str(sc0.output), f"127.0.0.1:{sc0.port}",
                                      prometheus_address="127.0.0.1:1", rules_dir=str(pw / "rules"),
                                      scrape_interval="60s", scrape_timeout="5s")
            prom = PrometheusServer(pw, cfg, name="prometheus-bench")
            prom.start()

            def prom_has(n: str) -> bool:
                r = requests.get(f"{prom.url}/api/v1/targets", params={"state": "active"}, timeout=10)
                return f'"instance":"{n}"' in r.text

            wait_until(lambda: prom_has(next(iter(sorted(n for n, s in before.items() if s == sc0.shard)))),
                       60, interval=0.5, what="Prometheus to load the shard file")
            lat_prom: list[float] = []
            i = 0
            while len(lat_prom) < args.prom_samples:
                n = f"prom-probe-{i:04d}.example.net"
                i += 1
                if assign(n, shards4) != sc0.shard:
                    continue
                t0 = time.monotonic()
                extra.add(n, "10.255.0.2:9847", {"role": "probe"})
                wait_until(lambda n=n: prom_has(n), 60, interval=0.2)
                lat_prom.append(time.monotonic() - t0)
        except _SkipProm:
            pass
        finally:
            extra.stop(deregister=True)
        wait_until(lambda: sum(len(sc.names()) for sc in sidecars) == args.hosts, 60, interval=0.5)

        # --- 4 -> 5 shards: time until all five files are consistent, fraction moved
        shards5 = [*shards4, "shard-5"]
        expected5 = {s: 0 for s in shards5}
        for n in names:
            expected5[assign(n, shards5)] += 1
        t0 = time.monotonic()
        sidecars.append(SidecarProc(work, zk.hosts, root, "shard-5", args.debounce, args.watcher))
        wait_until(lambda: all(len(sc.names()) == expected5[sc.shard] for sc in sidecars), args.cold_timeout,
                   interval=0.25, what="5 complete shard files")
        rebuild5 = time.monotonic() - t0
        after = {n: sc.shard for sc in sidecars for n in sc.names()}
        assert len(after) == args.hosts and sum(len(sc.names()) for sc in sidecars) == args.hosts
        moved = sum(1 for n in names if before[n] != after[n]) / args.hosts
        moved_hashmod = sum(1 for n in names if hashmod_assign(n, shards4) != hashmod_assign(n, shards5)) \
            / args.hosts
        rss = [rss_mib(sc.pid) for sc in sidecars]
        watches = zk.four_letter("wchs").strip().splitlines()[-1]

        # --- report
        print(f"\nfleetmon discovery at {args.hosts} hosts, sidecar watcher: {args.watcher} "
              "(ZooKeeper 3.8 standalone, this machine)")
        r_s, r_rate, s_s, s_rate = results["register"]  # type: ignore[misc]
        print(f"register {args.hosts} hosts (inventory + liveness): Registrar pipelined {r_s:.1f} s "
              f"({r_rate:.0f} hosts/s); reference one-at-a-time kazoo creates {s_rate:.0f} hosts/s "
              f"(measured on {args.sync_sample}) -> {s_s:.1f} s projected; ratio {s_s / r_s:.1f}x")
        for label, lat in (("isolated", lat_file), ("back-to-back", lat_stream)):
            print(f"registration -> shard file, {label} (debounce {args.debounce}s, n={len(lat)}): "
                  f"median {statistics.median(lat) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms, "
                  f"max {max(lat) * 1000:.0f} ms")
        if lat_prom:
            print(f"registration -> Prometheus /api/v1/targets (n={len(lat_prom)}): "
                  f"median {statistics.median(lat_prom):.2f} s, p99 {pct(lat_prom, 99):.2f} s")
        print(f"full tree read (load_view) of {args.hosts} hosts: {load_seconds:.2f} s")
        print(f"cold start of 4 sidecars to complete files: {cold4:.1f} s; each sidecar's first full "
              f"read: {', '.join(f'{x:.1f}' for x in resync)} s; ZooKeeper watches then: {watches4}; "
              f"sidecar RSS then (MiB): {', '.join(f'{x:.0f}' for x in rss4)}")
        print(f"4 -> 5 shards: all five files consistent {rebuild5:.1f} s after the 5th sidecar started")
        print(f"hosts moved 4 -> 5: rendezvous {moved * 100:.1f}% (ideal 20%); hashmod {moved_hashmod * 100:.1f}%")
        print(f"sidecar RSS (MiB): {', '.join(f'{x:.0f}' for x in rss)}  (shards {', '.join(shards5)})")
        print(f"ZooKeeper watches (wchs): {watches}")
    finally:
        for sc in sidecars:
            sc.stop()
        if prom is not None:
            prom.stop()
        if reg is not None:
            reg.stop()
        zk.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
