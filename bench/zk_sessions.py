"""Per-host ZooKeeper sessions: client cost, server load, and what a failover does.

Two parts (issue 18, docs/capacity.md "Sessions"):

``clients``  how one process holds thousands of sessions. The same N sessions (one session
             and one ephemeral node each) with kazoo's threading handler (the default), kazoo
             on gevent, kazoo on eventlet, and aiozk (asyncio): client RSS, threads, CPU while
             idle (pings only), time to establish. Against a standalone ZooKeeper.

``load``     at each fleet size, on a real 3-node ensemble: the simulator holding one session
             per host (``--sessions per-host``, gevent workers) plus two discovery sidecars.
             ZooKeeper CPU/RSS/mntr latency, ping load, sidecar CPU; then kill the leader and,
             separately, restart a follower: time until every session is back, expired
             sessions, hosts the sidecars saw not alive and for how long, hosts lost from the
             targets files. Fits cost per session and extrapolates to 25,000.

    .venv/bin/python -m bench.zk_sessions clients [--sessions 1000]
    .venv/bin/python -m bench.zk_sessions load [--sizes 2500,5000,10000] [--session-timeout 10]

This machine (2 cores) is shared with other engineers' tests while these run: figures are
upper bounds for an idle machine, and the report says what the load average was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.scale_common import cpu_seconds, rss_bytes
from tests.faults.sessions_stack import (
    Recorder,
    mntr,
    sessions_status,
    sidecar,
    simulator,
    target_names,
    tuned_ensemble,
)
from tests.harness.servers import ZooKeeperServer, wait_until

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

# One child per client kind: opens N sessions, each with one ephemeral node, prints READY
# with the time it took, then idles (pings only) until stdin closes.
CHILD = r'''
import select, sys, time
def idle():
    # select, not a blocking read: gevent and eventlet patch it, so their hub keeps pinging.
    while not select.select([sys.stdin], [], [], 1.0)[0]:
        pass
kind, n, zk = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "gevent":
    from gevent import monkey; monkey.patch_all()
elif kind == "eventlet":
    import eventlet; eventlet.monkey_patch()
t0 = time.time()
if kind == "aiozk":
    import asyncio, aiozk
    async def main():
        clients = []
        async def one(i):
            c = aiozk.ZKClient(zk, session_timeout=10)
            await c.start()
            await c.create(f"/bench-clients/{kind}-{i}", ephemeral=True)
            clients.append(c)
        root = aiozk.ZKClient(zk); await root.start(); await root.ensure_path("/bench-clients")
        for i in range(0, n, 100):
            await asyncio.gather(*(one(j) for j in range(i, min(n, i + 100))))
        print("READY", time.time() - t0, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, idle)
    asyncio.run(main())
else:
    from discovery.registry import Registrar
    from fleetmon.zk import make_client
    handler = None
    if kind == "gevent":
        from kazoo.handlers.gevent import SequentialGeventHandler; handler = SequentialGeventHandler()
    elif kind == "eventlet":
        from kazoo.handlers.eventlet import SequentialEventletHandler; handler = SequentialEventletHandler()
    regs = []
    for i in range(n):
        c = make_client(zk, handler=handler, role="registrar")
        r = Registrar(zk, root="/bench-clients", client=c, idle_wakeup=5.0)
        c.start_async(); r.start(); r.add(f"{kind}-{i}", "127.0.0.1:1")
        regs.append(r)
    for r in regs:
        r.wait(120)
    print("READY", time.time() - t0, flush=True)
    idle()
'''


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure_client(kind: str, n: int, zk: str, idle: float = 20.0) -> dict[str, Any]:
    """Start a CHILD of ``kind`` with ``n`` sessions; its cost once they are all up."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(n), zk], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            return {"kind": kind, "sessions": n, "error": f"child exited {proc.poll()} before READY"}
        setup = float(line.split()[1])
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle)  # bench: measuring idle cost over a fixed window, not waiting for a state
        cpu = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
        rss = rss_bytes(proc.pid)
        return {"kind": kind, "sessions": n, "setup_s": round(setup, 1), "rss_mib": round(rss / MIB, 1),
                "kib_per_session": round(rss / n / 1024, 1), "threads": threads_of(proc.pid),
                "idle_cpu_percent": round(100 * cpu, 1)}
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_clients(n: int, kinds: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        zk = ZooKeeperServer(Path(d) / "zk")
        zk.config_path.write_text(zk.config_path.read_text() + "maxClientCnxns=0\n")
        zk.start()
        try:
            rows = []
            for kind in kinds:
                row = measure_client(kind, n, zk.hosts)
                row["load_avg"] = load_average()
                print(json.dumps(row), flush=True)
                rows.append(row)
                # The previous child's sessions are closed; wait until the server agrees.
                wait_until(lambda: int(mntr(zk).get("zk_num_alive_connections", "0")) <= 2, timeout=60,
                           what="sessions closed")
            return rows
        finally:
            zk.stop()


# ------------------------------------------------------------------ load + failover


def zk_figures(nodes: list[ZooKeeperServer]) -> list[dict[str, Any]]:
    rows = []
    for n in nodes:
        if not n.running():
            continue
        m = mntr(n)
        rows.append({"member": n.name, "state": m.get("zk_server_state", "?"),
                     "connections": int(m.get("zk_num_alive_connections", 0)),
                     "avg_latency_ms": float(m.get("zk_avg_latency", 0)),
                     "max_latency_ms": float(m.get("zk_max_latency", 0)),
                     "outstanding": int(m.get("zk_outstanding_requests", 0)),
                     "packets_received": int(m.get("zk_packets_received", 0)),
                     "rss_mib": round(rss_bytes(n.pid) / MIB) if n.pid else 0})
    return rows


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def steady_state(ens: Any, sim: Any, sidecars: list[Any], window: float) -> dict[str, Any]:
    """CPU of each part and the ping load over ``window`` seconds with nothing changing."""
    workers = sessions_status(sim)["pids"]
    zk_pids = [n.pid for n in ens.nodes if n.running()]
    sc_pids = [s.pid for s in sidecars]
    for n in ens.nodes:
        try:
            n.four_letter("srst")  # reset latency figures so they describe this window only
        except OSError:
            pass
    before = {n.name: int(mntr(n).get("zk_packets_received", 0)) for n in ens.nodes}
    c_zk, c_w, c_sc, t0 = cpu_of(zk_pids), cpu_of(workers), cpu_of(sc_pids), time.monotonic()
    time.sleep(window)  # bench: a fixed measurement window
    dt = time.monotonic() - t0
    figs = zk_figures(ens.nodes)
    packets = sum(f["packets_received"] - before.get(f["member"], 0) for f in figs)
    return {"zk_cpu_percent": round(100 * (cpu_of(zk_pids) - c_zk) / dt, 1),
            "zk_rss_mib": sum(f["rss_mib"] for f in figs),
            "zk_avg_latency_ms": max(f["avg_latency_ms"] for f in figs),
            "zk_max_latency_ms": max(f["max_latency_ms"] for f in figs),
            "zk_outstanding": max(f["outstanding"] for f in figs),
            "connections": [f["connections"] for f in figs],
            "requests_per_s": round(packets / dt),
            "client_cpu_percent": round(100 * (cpu_of(workers) - c_w) / dt, 1),
            "client_rss_mib": round(sum(rss_bytes(p) for p in workers) / MIB),
            "sidecar_cpu_percent": round(100 * (cpu_of(sc_pids) - c_sc) / dt, 1) / max(1, len(sc_pids)),
            "sidecar_rss_mib": round(max(rss_bytes(p) for p in sc_pids) / MIB)}


def disruption(ens: Any, sim: Any, files: list[Path], ports: list[int], names: set[str], what: str,
               timeout: float) -> dict[str, Any]:
    """Kill the leader (``what="leader"``) or restart a follower; measure until all is back."""
    st0 = sessions_status(sim)
    rec = Recorder(files, ports, names).start()
    t0 = time.monotonic()
    if what == "leader":
        victim = ens.leader()
        victim.kill()
    else:
        victim = next(n for n in ens.nodes if n.running() and n.mode() == "follower")
        victim.stop()
    n = len(names)
    # Back: every session connected again and every liveness node in place.
    wait_until(lambda: (s := sessions_status(sim))["connected"] == n and s["synced"] == n
               and s["reconnects"] >= s["disconnects"] and s["disconnects"] > st0["disconnects"],
               timeout=timeout, interval=0.25, what="every session back")
    back = time.monotonic() - t0
    # Let the sidecars show what they saw, then restore the victim for the next round.
    wait_until(lambda: rec.not_alive_since == {}, timeout=timeout, interval=0.5, what="all hosts alive")
    rec.stop()
    st1 = sessions_status(sim)
    victim.start(timeout=120)  # back in the ensemble for the next round
    lost_targets = sorted(rec.missing_from_targets)
    durations = sorted(rec.not_alive_seconds.values())
    return {"event": f"{what} {'killed' if what == 'leader' else 'restarted'}",
            "all_sessions_back_s": round(back, 1),
            "max_session_outage_s": round(st1.get("max_outage_s", 0.0), 1),
            "sessions_disconnected": st1["disconnects"] - st0["disconnects"],
            "sessions_expired": st1["expired"] - st0["expired"],
            "hosts_seen_not_alive": len(rec.not_alive_seconds),
            "not_alive_max_s": round(durations[-1], 1) if durations else 0.0,
            "hosts_lost_from_targets": len(lost_targets),
            "files_present_in_all_samples": all(target_names(f) is not None for f in files)}


def run_load(size: int, session_timeout: float, window: float, procs: int | None) -> dict[str, Any]:
    root = f"/bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        ens = tuned_ensemble(work / "zk", heap_mb=1024).start()
        sim = None
        scs: list[Any] = []
        try:
            files, ports = [], []
            for shard in ("shard-a", "shard-b"):
                sc, out = sidecar(work, ens.hosts, root, shard, session_timeout)
                scs.append(sc.start(timeout=60))
                files.append(out)
                ports.append(sc.port)
            sim = simulator(work / "sim", ens.hosts, root, size, session_timeout, procs=procs)
            t0 = time.monotonic()
            sim.start(timeout=60)
            wait_until(lambda: sessions_status(sim)["synced"] == size, timeout=120 + size / 10, interval=1,
                       what=f"{size} sessions registered")
            names = {h["name"] for h in json.loads(_get(f"http://127.0.0.1:{sim.port}/hosts"))}
            wait_until(lambda: sum(len(target_names(f) or ()) for f in files) == size, timeout=120,
                       interval=1, what="targets files complete")
            row: dict[str, Any] = {"sessions": size, "register_s": round(time.monotonic() - t0, 1),
                                   "load_avg": load_average()}
            row.update(steady_state(ens, sim, scs, window))
            row["failovers"] = [disruption(ens, sim, files, ports, names, "leader", 120 + size / 100),
                                disruption(ens, sim, files, ports, names, "follower", 120 + size / 100)]
            return row
        finally:
            if sim is not None:
                sim.stop(timeout=60)
            for sc in scs:
                sc.stop()
            ens.stop()


def _get(url: str) -> str:
    import requests

    return requests.get(url, timeout=30).text


def fit(rows: list[dict[str, Any]], key: str, at: int = 25_000) -> tuple[float, float, float]:
    """Least-squares line ``a + b * sessions`` through ``key``; returns (a, b, value at ``at``)."""
    xs = [r["sessions"] for r in rows]
    ys = [float(r[key]) for r in rows]
    if len(xs) < 2:
        return ys[0], 0.0, ys[0]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    return a, b, a + b * at


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clients", help="client cost per session, by handler")
    c.add_argument("--sessions", type=int, default=1000)
    c.add_argument("--kinds", default="threading,gevent,eventlet,aiozk")
    ld = sub.add_parser("load", help="ensemble load and failovers at each size")
    ld.add_argument("--sizes", default="2500,5000,10000")
    ld.add_argument("--session-timeout", type=float, default=10.0)
    ld.add_argument("--window", type=float, default=20.0, help="steady-state measurement window, s")
    ld.add_argument("--procs", type=int, default=None, help="simulator session workers")
    ld.add_argument("--json", type=Path, default=None, help="also write the rows here")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv or ["load"])  # `python -m bench zk_sessions`: the load part
    if args.cmd == "clients":
        run_clients(args.sessions, args.kinds.split(","))
        return
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        row = run_load(size, args.session_timeout, args.window, args.procs)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    for key in ("zk_cpu_percent", "zk_rss_mib", "requests_per_s", "client_cpu_percent", "client_rss_mib",
                "sidecar_cpu_percent"):
        a, b, at = fit(rows, key)
        print(f"fit {key}: {a:.1f} + {b * 1000:.3f} per 1,000 sessions -> {at:.1f} at 25,000")


if __name__ == "__main__":
    main()
