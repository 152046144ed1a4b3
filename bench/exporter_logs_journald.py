"""The journald source: (a) entries/s through fleet-exporter (journalctl child, JSON
parsing, counting by priority) vs ``journalctl -o json`` alone dumping the same journal
to /dev/null, in the same run; (b) CPU and RSS while tailing an access log at 1,000
lines/s plus the journal at 200 entries/s, scraped every 15 s, with mtail tailing the
same access log beside it (mtail cannot read the journal).

The journal is a real journal file written by systemd-journal-remote from journal export
format. CPU is read from /proc for fleet-exporter and, separately, its journalctl child.

    .venv/bin/python -m bench.exporter_logs_journald [--entries 200000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import time
from pathlib import Path

import requests

from bench.exporter_common import metric_sum, mtail, nginx_lines, ours, workdir
from bench.exporter_logs_common import journal_append, journal_export


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_of(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def dump(cmd: list[str]) -> tuple[float, float]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=900)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def throughput(wd: Path, n: int) -> None:
    jdir = wd / "journal"
    jdir.mkdir()
    jfile = jdir / "bench.journal"
    t0 = time.perf_counter()
    for s in range(0, n, 50_000):
        journal_append(jfile, journal_export(s, min(50_000, n - s)))
    print(f"(a) {n} journal entries written by systemd-journal-remote in {time.perf_counter() - t0:.1f} s "
          f"({jfile.stat().st_size / 2**20:.0f} MiB journal)")
    base = ["journalctl", "--directory", str(jdir), "--merge", "--no-pager", "-o", "json"]
    rows = []
    for label, cmd in (("journalctl -o json (all fields)", base),
                       ("journalctl -o json --output-fields=PRIORITY", [*base, "--output-fields=PRIORITY"])):
        wall, cpu = dump(cmd)
        rows.append((label, wall, cpu))
    cfg = wd / "journal.yml"
    cfg.write_text(f"logs:\n  - {{type: journald, name: journal, directory: {jdir}, start_at: beginning}}\n"
                   "collectors: {filesystem: false}\ntailing: {poll_interval: 0.05}\n")
    p = ours(wd, ["--config", str(cfg)])
    t0 = time.perf_counter()
    p.start()
    try:
        child_cpu = 0.0
        first: tuple[float, float] | None = None
        while (got := metric_sum(p.url, "fleetmon_log_lines_total")) < n:
            if got and first is None:
                first = (time.perf_counter(), got)
            for c in children(p.pid):
                try:
                    child_cpu = max(child_cpu, cpu_of(c))
                except OSError:
                    pass
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        if first is not None:
            steady = (n - first[1]) / (time.perf_counter() - first[0])
        for c in children(p.pid):
            child_cpu = max(child_cpu, cpu_of(c))
        rows.append(("fleet-exporter (from process start)", wall, p.cpu_seconds() + child_cpu))
        sev = metric_sum(p.url, "fleetmon_syslog_messages_total")
    finally:
        p.stop()
    print(f"{'reader':48} {'seconds':>8} {'entries/s':>10} {'cpu s':>6}")
    for label, wall, cpu in rows:
        print(f"{label:48} {wall:8.2f} {n / wall:10.0f} {cpu:6.2f}")
    print(f"fleet-exporter counted {sev:.0f} entries by severity (cpu includes its journalctl child "
          f"{child_cpu:.2f} s and Python start-up); from the first entry counted to the last: "
          f"{steady if first else float('nan'):.0f} entries/s")
    print(f"entries/s, fleet-exporter / journalctl -o json alone: {rows[0][1] / rows[2][1]:.2f}x from process start, "
          f"{steady / (n / rows[0][1]) if first else float('nan'):.2f}x steady")


def resources(wd: Path, seconds: float, rate: int, jrate: int) -> None:
    jdir = wd / "journal-res"
    jdir.mkdir()
    jfile = jdir / "live.journal"
    journal_append(jfile, journal_export(0, 1))
    logs = {"fleet-exporter": wd / "access-ours.log", "mtail": wd / "access-mtail.log"}
    for f in logs.values():
        f.write_text("")
    cfg = wd / "res.yml"
    cfg.write_text(f"logs:\n  - {{path: {logs['fleet-exporter']}, type: nginx_access, name: web}}\n"
                   f"  - {{type: journald, name: journal, directory: {jdir}}}\n")
    procs = {"fleet-exporter": ours(wd, ["--config", str(cfg), "--state-file", str(wd / "state.json")]),
             "mtail": mtail(wd, [logs["mtail"]])}
    try:
        for p in procs.values():
            p.start()
        time.sleep(1.0)
        kids = children(procs["fleet-exporter"].pid)
        cpu0 = {k: p.cpu_seconds() for k, p in procs.items()}
        kid0 = sum(cpu_of(c) for c in kids)
        rss_max = dict.fromkeys([*procs, "journalctl"], 0)
        handles = {k: open(v, "a") for k, v in logs.items()}
        t0 = time.monotonic()
        n = j = scrapes = 0
        next_scrape = t0
        while time.monotonic() - t0 < seconds:
            lines = "".join(nginx_lines(rate // 10, n))
            for fh in handles.values():
                fh.write(lines)
                fh.flush()
            n += rate // 10
            journal_append(jfile, journal_export(1 + j, jrate // 10))
            j += jrate // 10
            now = time.monotonic()
            if now >= next_scrape:
                for k, p in procs.items():
                    requests.get(p.url, timeout=10)
                    rss_max[k] = max(rss_max[k], p.rss_bytes())
                rss_max["journalctl"] = max([rss_max["journalctl"], *[rss_of(c) for c in kids]])
                scrapes += 1
                next_scrape += 15.0
            time.sleep(max(0.0, n / rate - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t0
        for fh in handles.values():
            fh.close()
        deadline = time.monotonic() + 30
        while (got := metric_sum(procs["fleet-exporter"].url, "fleetmon_log_lines_total")) < n + j \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"(b) {n} access lines ({rate}/s) + {j} journal entries ({jrate}/s) for {elapsed:.0f} s, "
              f"{scrapes} scrapes; fleet-exporter counted {got:.0f} of {n + j}")
        print(f"{'process':34} {'cpu s':>6} {'% of a core':>11} {'max RSS MiB':>11}")
        rows = [("fleet-exporter (file + journal)", procs["fleet-exporter"].cpu_seconds() - cpu0["fleet-exporter"],
                 rss_max["fleet-exporter"]),
                ("  its journalctl child", sum(cpu_of(c) for c in kids) - kid0, rss_max["journalctl"]),
                ("mtail (file only)", procs["mtail"].cpu_seconds() - cpu0["mtail"], rss_max["mtail"])]
        for label, cpu, rss in rows:
            print(f"{label:34} {cpu:6.2f} {100 * cpu / elapsed:11.2f} {rss / 2**20:11.1f}")
    finally:
        for p in procs.values():
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--journal-rate", type=int, default=200)
    args = ap.parse_args()
    wd = workdir("bench-journald-")
    try:
        if args.entries:
            throughput(wd, args.entries)
        if args.seconds:
            resources(wd, args.seconds, args.rate, args.journal_rate)
    finally:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
