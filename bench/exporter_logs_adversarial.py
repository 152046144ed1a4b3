"""CPU per byte on scanner-style access log lines vs normal ones: fleet-exporter and
mtail, each following its own file, in the same run.

Three corpora are appended in turn (each after the previous one is fully counted):
normal nginx combined lines, long scanner lines (8 KB runs of letters in the request,
TLS handshakes, unbalanced quotes, path traversal, ~8 KB each) and short scanner lines
(20-200 bytes). CPU seconds of each process (from /proc) per MiB and per 1,000 lines
are compared with the normal corpus: a backtracking parser shows a blow-up here.
The in-process parse cost (no I/O) is printed as well.

    .venv/bin/python -m bench.exporter_logs_adversarial [--normal 200000] [--long 4000] [--short 200000]
"""

from __future__ import annotations

import argparse
import shutil
import time

from bench.exporter_common import metric_sum, mtail, nginx_lines, ours, workdir
from bench.exporter_logs_common import scanner_lines, short_scanner_lines


def corpus(kind: str, n: int) -> bytes:
    if kind == "normal":
        return "".join(nginx_lines(n)).encode()
    if kind == "long scanner":
        return "".join(scanner_lines(n)).encode()
    return "".join(short_scanner_lines(n)).encode()


def wait_lines(url: str, target: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while metric_sum(url, "fleetmon_log_lines_total") < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: fewer than {target} lines after {timeout} s")
        time.sleep(0.05)


def in_process(data: dict[str, bytes]) -> dict[str, float]:
    from exporter.logs.counters import SourceCounters

    out = {}
    for kind, blob in data.items():
        lines = blob.split(b"\n")[:-1]
        best = float("inf")
        for _ in range(3):
            c = SourceCounters("x", "nginx_access")
            t0 = time.process_time()
            for i in range(0, len(lines), 2000):
                c.feed(lines[i:i + 2000])
            best = min(best, time.process_time() - t0)
        out[kind] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--normal", type=int, default=200_000)
    ap.add_argument("--long", type=int, default=4_000)
    ap.add_argument("--short", type=int, default=200_000)
    args = ap.parse_args()
    sizes = {"normal": args.normal, "long scanner": args.long, "short scanner": args.short}
    data = {k: corpus(k, n) for k, n in sizes.items()}
    wd = workdir("bench-adv-")
    logs = {"fleet-exporter": wd / "ours.log", "mtail": wd / "mtail.log"}
    for p in logs.values():
        p.write_text("")
    cfg = wd / "exporter.yml"
    cfg.write_text(f"logs:\n  - {{path: {logs['fleet-exporter']}, type: nginx_access, name: web}}\n"
                   "collectors: {filesystem: false}\ntailing: {poll_interval: 0.05}\n")
    procs = {"fleet-exporter": ours(wd, ["--config", str(cfg), "--state-file", str(wd / "state.json")]),
             "mtail": mtail(wd, [logs["mtail"]])}
    res: dict[str, dict[str, tuple[float, float]]] = {k: {} for k in procs}
    try:
        for p in procs.values():
            p.start()
        time.sleep(1.0)  # both have opened their (empty) file
        for tool, p in procs.items():
            total = 0
            for kind, blob in data.items():
                cpu0 = p.cpu_seconds()
                t0 = time.perf_counter()
                with open(logs[tool], "ab") as fh:
                    fh.write(blob)
                total += sizes[kind]
                wait_lines(p.url, total)
                res[tool][kind] = (p.cpu_seconds() - cpu0, time.perf_counter() - t0)
        inproc = in_process(data)
    finally:
        for p in procs.values():
            p.stop()
        shutil.rmtree(wd, ignore_errors=True)
    print("corpora: " + ", ".join(f"{k} {sizes[k]} lines / {len(v) / 2**20:.1f} MiB" for k, v in data.items()))
    print(f"{'tool':16} {'corpus':14} {'cpu s':>6} {'wall s':>7} {'cpu ms/MiB':>10} {'x normal':>8} "
          f"{'cpu us/line':>11} {'x normal':>8}")
    for tool, rows in [*res.items(), ("in-process", {k: (v, v) for k, v in inproc.items()})]:
        base_b = rows["normal"][0] / len(data["normal"])
        base_l = rows["normal"][0] / sizes["normal"]
        for kind, (cpu, wall) in rows.items():
            per_b = cpu / len(data[kind])
            per_l = cpu / sizes[kind]
            print(f"{tool:16} {kind:14} {cpu:6.2f} {wall:7.2f} {per_b * 2**20 * 1000:10.1f} {per_b / base_b:8.2f} "
                  f"{per_l * 1e6:11.1f} {per_l / base_l:8.2f}")
    print("(process CPU includes reading the file and serving /metrics polls every 50 ms while waiting)")


if __name__ == "__main__":
    main()
