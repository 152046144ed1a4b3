"""ZooKeeper + discovery sidecar cost at 25,000 registrations (the year-5 fleet).

Complements bench/discovery_scale.py (registration rate, 4 -> 5 shard moves, latencies,
which it measures with 4-5 sidecars) with what capacity planning needs and it does not
print: ZooKeeper's memory, znode count, data size, snapshot size and watch count, and the
cost of ONE sidecar owning the whole fleet (the worst case: a single shard), reusing its
SidecarProc launcher rather than duplicating it.

    .venv/bin/python -m bench.scale_zk [--hosts 25000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.scale_common import (
    REF_ZK_CREATES_PER_S,
    REF_ZK_GET_CHILDREN_MS,
    cpu_seconds,
    rss_bytes,
    self_metrics,
)
from tests.harness.servers import ZooKeeperServer, wait_until


def mntr(zk: ZooKeeperServer) -> dict[str, str]:
    out = {}
    for line in zk.four_letter("mntr").splitlines():
        k, _, v = line.partition("\t")
        out[k.strip()] = v.strip()
    return out


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(hosts: int = 25_000, probes: int = 20) -> dict[str, Any]:
    from bench.discovery_scale import SidecarProc
    from discovery.registry import Registrar

    mib = 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="fleetmon-scale-zk-"))
    zk = ZooKeeperServer(work / "zk")
    zk.start()
    root = f"/scale-{uuid.uuid4().hex[:8]}"
    reg = sidecar = probe = None
    res: dict[str, Any] = {"hosts": hosts}
    try:
        assert zk.proc is not None
        res["zk_rss_idle_bytes"] = rss_bytes(zk.proc.pid)
        names = [f"host-{i:05d}.dc{i % 4}.example.net" for i in range(hosts)]
        reg = Registrar(zk.hosts, root=root, session_timeout=30.0, agent="bench-scale").start()
        t0 = time.monotonic()
        reg.add_many([(n, f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9847",
                       {"datacenter": f"dc{i % 4}", "role": ("web", "db", "cache")[i % 3], "env": "prod"})
                      for i, n in enumerate(names)])
        if not reg.wait(600):
            raise RuntimeError(f"registration did not finish: {reg.status()}")
        res["register_s"] = round(time.monotonic() - t0, 2)
        res["register_hosts_per_s"] = round(hosts / res["register_s"])
        m = mntr(zk)
        res.update({"znodes": int(m["zk_znode_count"]), "zk_data_bytes": int(m["zk_approximate_data_size"]),
                    "ephemerals": int(m["zk_ephemerals_count"]), "zk_rss_bytes": rss_bytes(zk.proc.pid)})

        # One sidecar owning every host: cold start to a complete targets file.
        t0 = time.monotonic()
        sidecar = SidecarProc(work, zk.hosts, root, "s0", 0.5)
        wait_until(lambda: len(sidecar.names()) == hosts, 300, interval=0.5, what="the complete targets file")
        res["sidecar_cold_start_s"] = round(time.monotonic() - t0, 2)
        res["sidecar_cold_cpu_s"] = round(cpu_seconds(sidecar.pid), 2)
        res["targets_file_bytes"] = sidecar.output.stat().st_size
        sm = self_metrics(f"http://127.0.0.1:{sidecar.port}")
        res["sidecar_resync_s"] = round(sum(v for _, v in sm.get("fleetmon_discovery_resync_duration_seconds", [])), 3)

        # Incremental rebuild: one registration -> targets file, one at a time.
        probe = Registrar(zk.hosts, root=root, session_timeout=30.0, agent="bench-probe").start()
        lat = []
        c0 = cpu_seconds(sidecar.pid)
        for i in range(probes):
            n = f"probe-{i:03d}.example.net"
            t0 = time.monotonic()
            probe.add(n, "10.255.0.1:9847", {"role": "probe"})
            wait_until(lambda n=n: sidecar.contains(n), 60, interval=0.01, what=f"{n} in the targets file")
            lat.append(time.monotonic() - t0)
        res["sidecar_change_to_file_ms_median"] = round(1000 * statistics.median(lat))
        res["sidecar_change_to_file_ms_max"] = round(1000 * max(lat))
        res["sidecar_cpu_s_per_change"] = round((cpu_seconds(sidecar.pid) - c0) / probes, 3)
        res["sidecar_rss_bytes"] = rss_bytes(sidecar.pid)
        m = mntr(zk)
        res.update({"zk_watches_with_sidecar": int(m["zk_watch_count"]), "zk_rss_final_bytes": rss_bytes(zk.proc.pid),
                    "zk_snapshot_and_log_bytes": dir_bytes(zk.data_dir)})
    finally:
        for x in (probe, reg):
            if x is not None:
                x.stop(deregister=False)
        if sidecar is not None:
            sidecar.stop()
        zk.stop()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"ZooKeeper 3.8 (standalone, -Xmx256m, tests/harness) + one `fleet-discovery run` sidecar owning all "
        f"{hosts:,} registrations (`python -m bench.scale_zk --hosts {hosts}`):\n",
        "| figure | measured | reference |",
        "|---|---:|---|",
        f"| register {hosts:,} hosts (Registrar.add_many, inventory + liveness) | {res['register_s']} s "
        f"({res['register_hosts_per_s']:,} hosts/s) | ~{REF_ZK_CREATES_PER_S:,} creates/s pipelined (FACTS.md) |",
        f"| znodes / ephemerals | {res['znodes']:,} / {res['ephemerals']:,} | |",
        f"| ZooKeeper data size (mntr approximate_data_size) | {res['zk_data_bytes'] / mib:.1f} MiB | |",
        f"| ZooKeeper RSS idle -> registered -> with sidecar watching | {res['zk_rss_idle_bytes'] / mib:.0f} -> "
        f"{res['zk_rss_bytes'] / mib:.0f} -> {res['zk_rss_final_bytes'] / mib:.0f} MiB | |",
        f"| ZooKeeper data dir (snapshot + txn log, preallocated 64 MiB) | {res['zk_snapshot_and_log_bytes'] / mib:.1f} MiB | |",
        f"| ZooKeeper watches with one sidecar | {res['zk_watches_with_sidecar']:,} | serverset SD: 25,001 per Prometheus (FACTS.md) |",
        f"| sidecar cold start to a complete targets file | {res['sidecar_cold_start_s']} s "
        f"({res['sidecar_cold_cpu_s']} s CPU incl. interpreter start) | |",
        f"| sidecar full tree read (resync_duration_seconds) | {res['sidecar_resync_s']} s "
        f"| get_children of 25,000: ~{REF_ZK_GET_CHILDREN_MS} ms (FACTS.md) |",
        f"| targets file | {res['targets_file_bytes'] / mib:.1f} MiB | |",
        f"| sidecar RSS | {res['sidecar_rss_bytes'] / mib:.0f} MiB | |",
        f"| one registration -> targets file, median / max of {probes} | {res['sidecar_change_to_file_ms_median']} / "
        f"{res['sidecar_change_to_file_ms_max']} ms ({res['sidecar_cpu_s_per_change']} s CPU each) | |",
    ]
    res["markdown"] = "\n".join(lines) + "\n"
    print("\n" + res["markdown"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=25_000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    res = run(args.hosts)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.markdown:
        args.markdown.write_text(res["markdown"])


if __name__ == "__main__":
    main()
