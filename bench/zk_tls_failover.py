"""Leader kill under N per-host sessions, TLS on or off: how fast every session is back.

A secured (or, with ``--insecure``, plain) 3-node ``tuned_ensemble``, N sessions through
``simulator.sessions.SessionPool`` (gevent workers, as ``--sessions per-host``), the leader
SIGKILLed; prints the sessions' counts as they change, when a new leader answers, when all
are back, and the CPU seconds of the surviving members and the workers meanwhile. No
Prometheus or sidecars: tests/faults/test_zk_failover.py is the whole picture.

    .venv/bin/python -m bench.zk_tls_failover [--sessions 2000] [--procs 2] [--insecure]

This machine (2 cores) is shared with other engineers' tests: figures are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.scale_common import cpu_seconds
from simulator.sessions import SessionPool
from tests.faults.sessions_stack import ZK_TUNING, tuned_ensemble


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--insecure", action="store_true", help="plain ZooKeeper (the reference)")
    ap.add_argument("--watch", type=float, default=90.0)
    args = ap.parse_args()
    n = args.sessions
    with tempfile.TemporaryDirectory(prefix="bench-zktlsfo-") as tmp:
        ens = tuned_ensemble(Path(tmp) / "zk")
        if args.insecure:
            for node in ens.nodes:
                node.insecure, node.security_dir = True, None
                node._write_config()
                node.config_path.write_text(node.config_path.read_text() + "\n".join(ZK_TUNING) + "\n")
            os.environ["FLEETMON_ZK_INSECURE"] = "true"
        ens.start()
        pool = SessionPool(ens.hosts, "/bench", 30.0, procs=args.procs)
        try:
            t = time.monotonic()
            pool.add_many([{"name": f"h{i:05d}", "address": f"127.0.0.1:{10000 + i}", "labels": {}}
                           for i in range(n)])
            while pool.status().get("synced", 0) < n and time.monotonic() - t < 600:
                time.sleep(0.5)
            print(f"{'plain' if args.insecure else 'TLS'}: {n} sessions in {args.procs} workers registered in "
                  f"{time.monotonic() - t:.1f}s", flush=True)
            before = pool.status()
            leader = ens.leader()
            survivors = [m for m in ens.nodes if m is not leader]
            pids = {m.name: m.proc.pid for m in survivors}
            pids.update({f"worker{i}": w.proc.pid for i, w in enumerate(pool._workers)})
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            leader.kill()
            elected, last = None, None
            while time.monotonic() - t0 < args.watch:
                s = pool.status()
                row = (s.get("connected"), s.get("down_now"), s.get("disconnects", 0) - before.get("disconnects", 0),
                       s.get("expired", 0) - before.get("expired", 0))
                if row != last:
                    print(f"{time.monotonic() - t0:6.1f}s connected={row[0]} down={row[1]} disconnects={row[2]} "
                          f"expired={row[3]}", flush=True)
                    last = row
                if elected is None and any(m.mode() == "leader" for m in survivors):
                    elected = time.monotonic() - t0
                    print(f"{elected:6.1f}s new leader answers", flush=True)
                if s.get("connected") == n and s.get("synced") == n and s.get("down_now") == 0 and row[2] > 0:
                    print(f"all back in {time.monotonic() - t0:.1f}s, longest outage {s.get('max_outage_s', 0):.1f}s",
                          flush=True)
                    break
                time.sleep(0.25)
            took = time.monotonic() - t0
            cpu = {k: round(cpu_seconds(p) - cpu0[k], 1) for k, p in pids.items()}
            print(f"CPU seconds over {took:.1f}s: {cpu}; load average {os.getloadavg()[0]:.1f}")
        finally:
            pool.stop(timeout=30)
            ens.stop()


if __name__ == "__main__":
    main()
