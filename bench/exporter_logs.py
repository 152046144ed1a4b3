"""Log throughput: lines/s on a 1,000,000-line nginx combined log (with request time),
and on 1,000,000 lines of nginx's ``main`` format with fleet-exporter configured by the
format string itself, fleet-exporter vs mtail counting the same things (lines; requests
by method and status; response bytes; for combined a request-duration histogram), in
the same run.

Two measurements, each the same for both tools:
(a) the whole file from its start, timed from process start: mtail --one_shot (reads
    to EOF, prints its metrics, exits) vs fleet-exporter with ``start_at: beginning``
    (until /metrics shows every line, polled every 20 ms);
(b) mtail starts every file at its end, so both tools are started on an empty file and
    the whole log is appended to it in one go; the time runs from the start of the
    append until /metrics shows every line counted (polled every 50 ms).
The in-process parse rate (no I/O, no HTTP) is printed as well.

    .venv/bin/python -m bench.exporter_logs [--lines 1000000] [--formats combined,main]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from bench.exporter_common import MTAIL_PROG, metric_sum, mtail, ours, workdir, write_log
from bench.exporter_logs_common import MTAIL_MAIN_PROG, NGINX_MAIN, write_main_log

APPEND_SECONDS: list[float] = []


def feed_time(proc, target: Path, source: Path, lines: int, name: str) -> tuple[float, float]:
    with open(source, "rb") as src, open(target, "ab") as dst:
        t0 = time.perf_counter()
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
    APPEND_SECONDS.append(time.perf_counter() - t0)
    deadline = t0 + 600
    while True:
        n = metric_sum(proc.url, name)
        if n >= lines:
            return time.perf_counter() - t0, n
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{proc.name}: only {n} of {lines} lines after 600 s")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--formats", default="combined,main")
    args = ap.parse_args()
    for fmt in args.formats.split(","):
        run(args, fmt)
        print()


def run(args: argparse.Namespace, fmt: str) -> None:
    wd = workdir("bench-logs-")
    src = wd / "source.log"
    if fmt == "main":
        write_main_log(src, args.lines)
        prog = MTAIL_MAIN_PROG
        # The format text itself, as a user copies it from nginx.conf (not the preset name).
        extra = ", format: '" + NGINX_MAIN + "'"
    else:
        write_log(src, args.lines)
        prog = MTAIL_PROG
        extra = ""
    size = src.stat().st_size
    try:
        # In-process: the parser and counters alone.
        from exporter.logs.counters import SourceCounters
        from exporter.logs.formats import compile_format

        data = src.read_bytes().split(b"\n")[:-1]
        c = SourceCounters("bench", "nginx_access",
                           parser=compile_format(NGINX_MAIN, "nginx") if fmt == "main" else None)
        t0 = time.perf_counter()
        for i in range(0, len(data), 5000):
            c.feed(data[i:i + 5000])
        inproc = len(data) / (time.perf_counter() - t0)
        assert c.parse_errors == 0 and c.lines == len(data), (c.parse_errors, c.lines)
        del data

        # (a) The whole file from its start: mtail --one_shot (reads to EOF, prints, exits) vs
        # fleet-exporter with start_at: beginning; both timed from process start.
        whole = {}
        progs = wd / "progs"
        progs.mkdir(exist_ok=True)
        (progs / "nginx.mtail").write_text(prog)
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/mtail", "--one_shot", "--one_shot_format", "prometheus", "--progs", str(progs),
                        "--logs", str(src), "--logtostderr", "--emit_prog_label=false"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
        whole["mtail"] = time.perf_counter() - t0
        cfg = wd / "whole.yml"
        cfg.write_text(f"logs:\n  - {{path: {src}, type: nginx_access, name: bench, start_at: beginning{extra}}}\n"
                       "collectors: {filesystem: false}\n")
        p = ours(wd, ["--config", str(cfg)])
        t0 = time.perf_counter()
        p.start()
        try:
            while metric_sum(p.url, "fleetmon_log_lines_total") < args.lines:
                time.sleep(0.02)
            whole["fleet-exporter"] = time.perf_counter() - t0
        finally:
            p.stop()

        # (b) Appended to a followed file while running (mtail starts files at their end).
        res = {}
        for tool in ("fleet-exporter", "mtail"):
            log = wd / f"access-{tool}.log"
            log.write_text("")
            if tool == "mtail":
                p = mtail(wd, [log], prog)
            else:
                cfg = wd / "exporter.yml"
                cfg.write_text(f"logs:\n  - {{path: {log}, type: nginx_access, name: bench{extra}}}\n"
                               "collectors: {filesystem: false}\n")
                p = ours(wd, ["--config", str(cfg), "--state-file", str(wd / "state.json")])
            p.start()
            try:
                time.sleep(1.0)  # let it open the (empty) file
                took, n = feed_time(p, log, src, args.lines, "fleetmon_log_lines_total")
                reqs = metric_sum(p.url, "fleetmon_http_requests_total")
                nbytes = metric_sum(p.url, "fleetmon_http_response_bytes_total")
                hist = metric_sum(p.url, "fleetmon_http_request_duration_seconds_count")
                res[tool] = (took, n, reqs, nbytes, hist, p.cpu_seconds(), p.rss_bytes())
            finally:
                p.stop()
        append_s = max(APPEND_SECONDS)
        what = "nginx main lines, exporter configured by the log_format text" if fmt == "main" else \
            "nginx combined lines with request time"
        print(f"log: {args.lines} {what}, {size / 2**20:.1f} MiB, appended at once")
        print(f"{'tool':16} {'seconds':>8} {'lines/s':>10} {'requests':>9} {'bytes_total':>13} {'hist_count':>10} "
              f"{'cpu s':>6} {'RSS MiB':>8}")
        for tool, (took, n, reqs, nbytes, hist, cpu, rss) in res.items():
            print(f"{tool:16} {took:8.2f} {n / took:10.0f} {reqs:9.0f} {nbytes:13.0f} {hist:10.0f} {cpu:6.1f} "
                  f"{rss / 2**20:8.1f}")
        ratio = res["mtail"][0] / res["fleet-exporter"][0]
        print(f"(b) appended while running: fleet-exporter / mtail throughput: {ratio:.2f}x "
              f"(the append itself took {append_s:.2f} s and is inside both times)")
        print(f"(a) whole file from start, timed from process start: fleet-exporter {whole['fleet-exporter']:.2f} s "
              f"({args.lines / whole['fleet-exporter']:.0f} lines/s), mtail --one_shot {whole['mtail']:.2f} s "
              f"({args.lines / whole['mtail']:.0f} lines/s): {whole['mtail'] / whole['fleet-exporter']:.2f}x")
        print(f"in-process parse+count rate (no I/O): {inproc:.0f} lines/s")
        same = res["mtail"][2:5] == res["fleet-exporter"][2:5]
        print(f"identical request/bytes/histogram counts: {same}")
    finally:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
