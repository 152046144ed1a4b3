"""Benchmark: webhook notifications accepted per second with durable storage, and accept latency.

Posts Alertmanager 0.25's real grouped payload (25 alerts per notification, fresh
fingerprints each time so every POST stores 25 new rows) to a real `alert-router serve`:

1. fixed rate 500 alerts/s (20 notifications/s) for DURATION s: p50/p99 accept latency;
2. closed loop with CONCURRENCY clients: the most alerts/s it sustains.

Reference measured in the same run: Alertmanager 0.25's own alert intake
(POST /api/v2/alerts with the same 25 alerts, in memory, not durable), and the router with
synchronous=NORMAL (no fsync per commit) to show what FULL costs.

    .venv/bin/python -m bench.router_accept [--duration 15] [--concurrency 4]

``--transport`` instead compares the router over HTTPS (cheroot, TLS 1.3, keep-alive
connections as Alertmanager keeps them) with plain HTTP (waitress), same durable settings.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.router_common import TOKEN, Router, grouped_payload, load, summary, unique_copy
from tests.harness.servers import AlertmanagerServer, HttpSink


def fixed_rate(post, rate: float, duration: float, start_n: int = 0) -> tuple[list[float], int]:
    """Open loop: one request every 1/rate s (from a pool, so a slow one does not delay the next)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def one(n: int) -> None:
        t0 = time.perf_counter()
        ok = post(n)
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)
            if not ok:
                errors[0] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        n = 0
        while (now := time.perf_counter()) - start < duration:
            target = start + n / rate
            if now < target:
                time.sleep(target - now)
            pool.submit(one, start_n + n)
            n += 1
    return lat, errors[0]


def closed_loop(post, concurrency: int, duration: float, offset: int) -> tuple[int, list[float], int]:
    lat: list[float] = []
    count = [0]
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            ok = post(offset + w * 1_000_000 + i)
            dt = time.perf_counter() - t0
            i += 1
            with lock:
                lat.append(dt)
                count[0] += 1
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0], lat, errors[0]


def router_poster(router: Router, base: dict):
    local = threading.local()

    def post(n: int) -> bool:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
            s.headers.update({"Authorization": f"Bearer {TOKEN}"})
        # verify per request: a Session's own verify loses to REQUESTS_CA_BUNDLE (requests#3829)
        r = s.post(f"{router.url}/api/v1/alerts", json=unique_copy(base, n), timeout=30, verify=router.verify)
        return r.status_code == 200
    return post


def am_poster(am: AlertmanagerServer, base: dict):
    local = threading.local()

    def post(n: int) -> bool:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        alerts = [{"labels": {**a["labels"], "bench": str(n)}, "annotations": a["annotations"],
                   "startsAt": a["startsAt"]} for a in base["alerts"]]
        return s.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=30).status_code == 200
    return post


def run(name: str, post, rate: float, duration: float, concurrency: int, per: int) -> dict:
    fixed_rate(post, rate / per, 2.0, start_n=50_000_000)  # warm-up (connections, first delivery), not measured
    lat, err = fixed_rate(post, rate / per, duration)
    n, lat2, err2 = closed_loop(post, concurrency, duration, offset=10_000_000)
    res = {"name": name, "fixed": summary(lat), "fixed_errors": err,
           "max_rate": n * per / duration, "closed": summary(lat2), "closed_errors": err2}
    print(f"{name}\n  at {rate:.0f} alerts/s: {res['fixed']} errors={err}\n"
          f"  closed loop x{concurrency}: {res['max_rate']:.0f} alerts/s ({n / duration:.1f} notifications/s) "
          f"{res['closed']} errors={err2}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rate", type=float, default=500.0, help="alerts/s for the fixed-rate phase")
    ap.add_argument("--transport", action="store_true",
                    help="compare HTTPS (served by the router) with plain HTTP instead")
    args = ap.parse_args()
    if args.transport:
        compare_transport(args)
        return
    base = grouped_payload()
    per = len(base["alerts"])
    print(f"payload: real Alertmanager 0.25 grouped notification, {per} alerts, "
          f"{len(str(base))} bytes; {args.duration:.0f}s per phase\n", flush=True)
    results = []
    with HttpSink() as sink:
        recipients = {"default": [f"json://127.0.0.1:{sink.port}/hook"]}
        for sync in ("FULL", "NORMAL"):
            router = Router(recipients, synchronous=sync)
            router.start()
            try:
                results.append(run(f"alert-router (SQLite WAL, synchronous={sync})", router_poster(router, base),
                                   args.rate, args.duration, args.concurrency, per))
            finally:
                router.stop()
        import tempfile
        from pathlib import Path

        am = AlertmanagerServer(Path(tempfile.mkdtemp(prefix="am-bench-")), {
            "route": {"receiver": "null", "group_by": ["..."]}, "receivers": [{"name": "null"}]})
        am.start()
        try:
            results.append(run("reference: Alertmanager 0.25 POST /api/v2/alerts (in memory)", am_poster(am, base),
                               args.rate, args.duration, args.concurrency, per))
        finally:
            am.stop()
    r0 = results[0]
    ref = results[-1]
    print(f"\nratio router(FULL)/Alertmanager max alerts/s: {r0['max_rate'] / ref['max_rate']:.2f}")
    print(f"load average at the end (2-core machine shared with other work): {load()}")


def compare_transport(args: argparse.Namespace) -> None:
    """Accept latency at ``--rate`` over HTTP and over HTTPS; the issue asks for HTTPS p99 within 1.5x."""
    base = grouped_payload()
    per = len(base["alerts"])
    print(f"payload: real Alertmanager 0.25 grouped notification, {per} alerts; {args.duration:.0f}s per phase; "
          f"synchronous=FULL\n", flush=True)
    results = {}
    with HttpSink() as sink:
        recipients = {"default": [f"json://127.0.0.1:{sink.port}/hook"]}
        # HTTP first, HTTPS second, HTTP again: a machine whose load drifts shows up as two HTTP figures.
        for label, tls in (("http", False), ("https", True), ("http-again", False)):
            router = Router(recipients, tls=tls)
            router.start()
            try:
                name = f"alert-router over {'HTTPS (cheroot)' if tls else 'plain HTTP (waitress)'}"
                results[label] = run(name, router_poster(router, base), args.rate, args.duration,
                                     args.concurrency, per)
            finally:
                router.stop()

    def p99(label: str) -> float:
        lat = results[label]["fixed"]
        return float(lat.split("p99=")[1].split("ms")[0])

    http = (p99("http") + p99("http-again")) / 2
    print(f"\np99 at {args.rate:.0f} alerts/s: HTTP {p99('http'):.1f} / {p99('http-again'):.1f} ms, "
          f"HTTPS {p99('https'):.1f} ms; ratio HTTPS / mean HTTP = {p99('https') / http:.2f} (target <= 1.5)")
    print(f"max alerts/s closed loop: HTTP {results['http']['max_rate']:.0f}, HTTPS {results['https']['max_rate']:.0f}")
    print(f"load average at the end (2-core machine shared with other work): {load()}")


if __name__ == "__main__":
    main()
