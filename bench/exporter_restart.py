"""Lines lost across a restart while the log keeps growing: fleet-exporter vs mtail.

For each tool: start it on an empty log, write at ~2,000 lines/s for 2 s, let it
catch up and read its count (c1), stop it (SIGTERM), keep writing for 2 s while it
is down, start it again, write for 2 s more, wait until its count is stable (c2).
lost = lines written - c1 - c2. fleet-exporter's counters continue across restarts
(saved with its offsets), so its c2 is its count after the restart minus c1; mtail
starts from 0.

    .venv/bin/python -m bench.exporter_restart
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.exporter_common import metric_sum, mtail, nginx_lines, ours, workdir

RATE = 2000


def write_for(path: Path, seconds: float, start: int) -> int:
    n = 0
    t0 = time.monotonic()
    with open(path, "a") as fh:
        while time.monotonic() - t0 < seconds:
            fh.write("".join(nginx_lines(100, start + n)))
            fh.flush()
            n += 100
            time.sleep(max(0.0, n / RATE - (time.monotonic() - t0)))
    return n


def stable_count(url: str, expect: int, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        n = metric_sum(url, "fleetmon_log_lines_total")
        if n >= expect:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 2.0:
            return n
        time.sleep(0.1)
    return last


def run(tool: str, wd: Path) -> tuple[int, float, float, int]:
    log = wd / f"access-{tool}.log"
    log.write_text("")

    def make():
        if tool == "mtail":
            return mtail(wd, [log])
        cfg = wd / "exporter.yml"
        cfg.write_text(f"logs:\n  - {{path: {log}, type: nginx_access, name: bench}}\n"
                       "collectors: {filesystem: false}\n")
        return ours(wd, ["--config", str(cfg), "--state-file", str(wd / "state.json")])

    p = make().start()
    time.sleep(1.0)  # let it open the file
    written = write_for(log, 2.0, 0)
    c1 = stable_count(p.url, written)
    p.stop()
    down = write_for(log, 2.0, written)
    written += down
    p2 = make()
    p2.start()
    try:
        written += write_for(log, 2.0, written)
        if tool == "mtail":
            c2 = stable_count(p2.url, written - c1)
        else:
            c2 = stable_count(p2.url, written) - c1
    finally:
        p2.stop()
    return written, c1, c2, down


def main() -> None:
    wd = workdir("bench-restart-")
    try:
        print(f"{'tool':16} {'written':>8} {'before stop':>11} {'after restart':>13} {'written while down':>18} "
              f"{'lost':>6}")
        for tool in ("fleet-exporter", "mtail"):
            written, c1, c2, down = run(tool, wd)
            print(f"{tool:16} {written:8d} {c1:11.0f} {c2:13.0f} {down:18d} {written - c1 - c2:6.0f}")
    finally:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
