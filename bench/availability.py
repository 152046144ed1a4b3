"""Availability of the alert path: the fault sequence of tests/faults, longer, with figures.

Real processes on loopback (tests/faults/alert_path.py): a 3-node ZooKeeper ensemble, two
Prometheus replicas of one shard, an Alertmanager gossip cluster, two alert-routers with
``--zk``, an SMTP server. Probes (one alert each, its own Alertmanager group) are switched
on and off every ``--every`` seconds throughout; each phase applies one fault for
``--hold`` seconds (SMTP: ``--smtp-down``, ZooKeeper: ``--zk-down``), restores it, and waits
until every state change is in the inbox (or ``--settle`` seconds: the rest is lost).

Per phase: state changes sent (firing + resolved), delivered, lost, duplicated emails,
firing -> inbox p50 / p95 / max (from the earliest ``activeAt`` of the two replicas: the
alert firing in Prometheus) and switch -> inbox max (from the probe's value changing:
adds the scrape and evaluation intervals). Reference in the same run: the no-fault phase.

Timing (``--timing shipped``, the default): Alertmanager group_wait 5 s, group_interval 15 s,
peer timeout 15 s (prometheus/alertmanager.yml, deploy/alertmanager); router session timeout
10 s, recheck 2 s (deploy/alertmanager/alert-router-ha.yml); scrape and evaluation 15 s.
``--timing test`` uses the fault tests' 2 s / 1 s intervals.

    .venv/bin/python -m bench.availability [--timing shipped] [--hold 30] [--smtp-down 60] [--zk-down 30]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.faults.alert_path import AlertPath, FiringWatch, Ledger
from tests.harness.servers import wait_until

TIMINGS = {
    "shipped": {"scrape_interval": "15s", "eval_interval": "15s", "group_wait": "5s", "group_interval": "15s",
                "peer_timeout": "15s", "zk_session_timeout": 10.0, "claim_recheck": "2s"},
    "test": {"scrape_interval": "2s", "eval_interval": "2s", "group_wait": "1s", "group_interval": "2s",
             "peer_timeout": "2s", "zk_session_timeout": 6.0, "claim_recheck": "1s"},
}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


class Traffic:
    """Every ``every`` seconds, switches ``width`` new probes on and the previous ones off, in
    a thread; the probes of a step are spread over its first half, so they reach Prometheus
    at different points of the scrape and evaluation cycles."""

    def __init__(self, ledger: Ledger, prefix: str, every: float, width: int = 4):
        self.ledger, self.prefix, self.every, self.width = ledger, prefix, every, width
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        prev: list[str] = []
        step = 0
        while True:
            cur = [f"{self.prefix}-{step}-{j}" for j in range(self.width)]
            for j, probe in enumerate(cur):
                self.ledger.fire(probe)
                if j < len(prev):
                    self.ledger.resolve(prev[j])
                if self._stop.wait(self.every / (2 * self.width)):
                    break
            prev, step = cur, step + 1
            if self._stop.wait(self.every / 2):
                break
        # Probes switched on just now stay on one scrape interval at least (every/2), or
        # Prometheus would never see them: that would be the benchmark's loss, not the path's.
        threading.Event().wait(self.every / 2)
        resolved = {p for p, state in self.ledger.expected if state == "RESOLVED"}
        for probe in list(self.ledger.fired_at):
            if probe.startswith(f"{self.prefix}-") and probe not in resolved:
                self.ledger.resolve(probe)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def phase(path: AlertPath, watch: FiringWatch, name: str, fault: Callable[[], None] | None,
          restore: Callable[[], None] | None, hold: float, every: float, settle: float) -> dict:
    ledger = Ledger(path.sink, path.probes)
    watch.ledgers.append(ledger)
    dups_before = sum(r.metric("alert_router_duplicate_sends_total") for r in path.routers if r.running())
    t0 = time.monotonic()
    with Traffic(ledger, name, every):
        # Warm: one full probe cycle on a healthy path, then the fault for ``hold`` seconds.
        threading.Event().wait(every)
        if fault:
            fault()
        threading.Event().wait(hold)
        if restore:
            restore()
        threading.Event().wait(every)
    try:
        ledger.wait_all(timeout=settle)
    except TimeoutError:
        pass
    # Duplicates trail the last delivery by at most a takeover or a retry: look once more then.
    threading.Event().wait(2 * path.zk_session_timeout)
    received = ledger.received()
    lat = list(ledger.latencies("firing").values())
    sw = list(ledger.latencies("switch").values())
    counted = sum(r.metric("alert_router_duplicate_sends_total") for r in path.routers if r.running()) - dups_before
    return {"phase": name, "sent": len(ledger.expected), "delivered": sum(1 for e in ledger.expected if received[e]),
            "lost": len(ledger.missing()), "duplicated": ledger.duplicates(), "counted_dups": int(counted),
            "p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "max": max(lat) if lat else float("nan"),
            "switch_max": max(sw) if sw else float("nan"), "seconds": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timing", choices=sorted(TIMINGS), default="shipped")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds each kill lasts before the restart")
    ap.add_argument("--smtp-down", type=float, default=60.0)
    ap.add_argument("--zk-down", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=None, help="probe period (default: 2 scrape intervals)")
    ap.add_argument("--settle", type=float, default=120.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--phases", default=None, help="comma-separated phase names to run (default: all)")
    args = ap.parse_args()
    # SIGTERM (timeout, Ctrl-C from a wrapper) still stops every server by PID.
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(143))
    timing = TIMINGS[args.timing]
    every = args.every or 2 * float(timing["scrape_interval"].rstrip("s"))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetmon-availability-"))
    path = AlertPath(workdir, **timing)
    print(f"starting the alert path in {workdir} ({args.timing} timing) ...", flush=True)
    path.start()
    watch = FiringWatch(path.proms, []).start()
    rows = []
    try:
        am, prom = path.ams.first(), path.proms[0]  # the notifying member (position 0)
        victims: dict = {}

        def kill_router() -> None:
            # Mid-send: hold the next email at the mail server, kill whichever router sends it.
            path.sink.stall_next(1)
            path.sink.stalled.wait(120)
            victims["router"] = wait_until(path.router_sending, timeout=30, what="the router holding the send")
            victims["router"].kill()
            path.sink.release()

        def kill_zk_leader() -> None:
            victims["zk"] = path.zk.leader()
            victims["zk"].kill()

        def zk_back() -> None:
            path.zk.start()

        phases = [
            ("no-fault", None, None, args.hold),
            ("kill-alertmanager", am.kill, lambda: (am.start(timeout=60), path.ams.wait_joined()), args.hold),
            ("kill-router-mid-send", kill_router, lambda: victims["router"].start(timeout=60), args.hold),
            ("kill-prometheus-replica", prom.kill, lambda: prom.start(timeout=60), args.hold),
            ("kill-zookeeper-leader", kill_zk_leader, lambda: victims["zk"].start(timeout=90), args.hold),
            ("smtp-down", path.sink.stop, path.sink.start, args.smtp_down),
            ("zookeeper-down", path.zk.stop, zk_back, args.zk_down),
        ]
        if args.phases:
            wanted = set(args.phases.split(","))
            phases = [p for p in phases if p[0] in wanted]
        for name, fault, restore, hold in phases:
            print(f"phase {name} ...", flush=True)
            rows.append(phase(path, watch, name, fault, restore, hold, every, args.settle))
            r = rows[-1]
            print(f"  {r['sent']} sent, {r['delivered']} delivered, {r['lost']} lost, {r['duplicated']} duplicated "
                  f"({r['counted_dups']} counted), firing->inbox p50 {r['p50']:.1f} s p95 {r['p95']:.1f} s "
                  f"max {r['max']:.1f} s, switch->inbox max {r['switch_max']:.1f} s ({r['seconds']:.0f} s)",
                  flush=True)
    finally:
        watch.stop()
        path.stop()
    print("\n| fault | state changes sent | delivered | lost | duplicated (counted by routers) "
          "| firing -> inbox p50 / p95 / max | value change -> inbox max |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['sent']} | {r['delivered']} | {r['lost']} | {r['duplicated']} ({r['counted_dups']}) "
              f"| {r['p50']:.1f} / {r['p95']:.1f} / {r['max']:.1f} s | {r['switch_max']:.1f} s |")
    base = rows[0] if rows else None
    if base:
        ok = base["p95"] < 20 and all(r["lost"] == 0 for r in rows) and all(r["p95"] < 30 for r in rows)
        print(f"\ngoals (0 lost, p95 < 30 s with every fault, p95 < 20 s without): "
              f"{'met' if ok else 'NOT met'}; no-fault p95 {base['p95']:.1f} s")


if __name__ == "__main__":
    main()
