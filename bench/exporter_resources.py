"""RSS and CPU while tailing an access log at 1,000 lines/s and being scraped every
15 s: fleet-exporter (all default host collectors + the log) vs mtail (the log only),
side by side on separate files in the same run. The run is short (60 s by default);
CPU per hour is extrapolated linearly from it.

    .venv/bin/python -m bench.exporter_resources [--seconds 60]
"""

from __future__ import annotations

import argparse
import shutil
import time

import requests

from bench.exporter_common import mtail, nginx_lines, ours, workdir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    wd = workdir("bench-res-")
    logs = {"fleet-exporter": wd / "access-ours.log", "mtail": wd / "access-mtail.log"}
    for p in logs.values():
        p.write_text("")
    cfg = wd / "exporter.yml"
    cfg.write_text(f"logs:\n  - {{path: {logs['fleet-exporter']}, type: nginx_access, name: web}}\n")
    procs = {"fleet-exporter": ours(wd, ["--config", str(cfg), "--state-file", str(wd / "state.json")]),
             "mtail": mtail(wd, [logs["mtail"]])}
    try:
        for p in procs.values():
            p.start()
        time.sleep(1.0)
        cpu0 = {k: p.cpu_seconds() for k, p in procs.items()}
        rss_max = dict.fromkeys(procs, 0)
        handles = {k: open(v, "a") for k, v in logs.items()}
        batch = args.rate // 10
        t0 = time.monotonic()
        n = 0
        next_scrape = t0
        scrapes = 0
        while time.monotonic() - t0 < args.seconds:
            lines = "".join(nginx_lines(batch, n))
            for fh in handles.values():
                fh.write(lines)
                fh.flush()
            n += batch
            now = time.monotonic()
            if now >= next_scrape:
                for p in procs.values():
                    requests.get(p.url, timeout=10)
                    rss_max[p.name] = max(rss_max[p.name], p.rss_bytes())
                scrapes += 1
                next_scrape += 15.0
            time.sleep(max(0.0, n / args.rate - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t0
        for fh in handles.values():
            fh.close()
        print(f"{n} lines at {args.rate}/s for {elapsed:.0f} s, {scrapes} scrapes (every 15 s); "
              f"per-hour CPU extrapolated x{3600 / elapsed:.0f}")
        print(f"{'tool':16} {'cpu s':>7} {'% of a core':>11} {'cpu s/hour':>10} {'max RSS MiB':>11}")
        for k, p in procs.items():
            cpu = p.cpu_seconds() - cpu0[k]
            rss_max[k] = max(rss_max[k], p.rss_bytes())
            print(f"{k:16} {cpu:7.2f} {100 * cpu / elapsed:11.2f} {cpu * 3600 / elapsed:10.0f} "
                  f"{rss_max[k] / 2**20:11.1f}")
    finally:
        for p in procs.values():
            p.stop()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
