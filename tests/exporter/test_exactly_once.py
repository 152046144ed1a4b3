"""Exactly-once counts across restarts: a real fleet-exporter process is stopped by
SIGTERM or killed by SIGKILL at random points while lines are written and the log is
rotated by rename and by copytruncate (while it runs and while it is down), and while
entries are appended to a journal file it follows (cursor saved with the counters). Counter
values are saved atomically with the offsets, so after every restart the counters
continue exactly where reading continues: total counted == lines written, never
more (double count) and never less (loss)."""

from __future__ import annotations

import os
import random
import shutil
import signal
from pathlib import Path

from tests.exporter.conftest import ExporterProcess, parse_samples, value
from tests.exporter.test_journald import JOURNAL_REMOTE, Journal
from tests.harness.servers import wait_until


def line(i: int) -> str:
    # The sequence number leads the line, so every file's first bytes differ (what
    # identifies a copytruncate copy).
    status = (200, 200, 200, 404, 500)[i % 5]
    return f'{i}.0.0.1 - - [28/Nov/2026:07:37:18 +0000] "GET /item/{i} HTTP/1.1" {status} {i % 977} "-" "t" 0.{i % 1000:03d}\n'


class Writer:
    def __init__(self, log: Path):
        self.log = log
        self.n = 0
        self.rotations = 0

    def write(self, count: int, path: Path | None = None) -> None:
        with open(path or self.log, "a") as fh:
            fh.write("".join(line(self.n + i) for i in range(count)))
        self.n += count

    def rename(self, rnd: random.Random) -> None:
        """logrotate create: rename, the writer appends to the old file until it reopens."""
        self.rotations += 1
        old = self.log.with_name(f"access.log.{self.rotations}")
        os.rename(self.log, old)
        self.write(rnd.randint(0, 50), old)
        self.log.write_text("")

    def copytruncate(self, rnd: random.Random) -> None:
        self.rotations += 1
        self.write(rnd.randint(1, 50))  # lands after the exporter's last read, before the copy
        shutil.copyfile(self.log, self.log.with_name(f"access.log.c{self.rotations}"))
        with open(self.log, "r+") as fh:
            fh.truncate(0)


def scrape(p: ExporterProcess) -> dict:
    return parse_samples(p.metrics_text())


def test_sigterm_and_sigkill_at_random_points_across_rotation_count_every_line_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("EXACTLY_ONCE_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    logdir = tmp_path / "logs"
    logdir.mkdir()
    log = logdir / "access.log"
    log.write_text("")
    journal = Journal(tmp_path / "journal") if os.path.exists(JOURNAL_REMOTE) else None
    journal_src = (f"  - {{type: journald, name: journal, directory: {journal.dir}, start_at: beginning}}\n"
                   if journal else "")
    cfg = tmp_path / "exporter.yml"
    cfg.write_text(f"""
collectors: {{cpu: false, filesystem: false, diskstats: false, netdev: false}}
logs:
  - {{path: {log}, type: nginx_access, name: web, start_at: beginning}}
{journal_src}tailing: {{state_file: {tmp_path / "state.json"}, poll_interval: 0.05, rotate_grace: 3600}}
""")
    w = Writer(log)
    # Known limit: lines written to a file last seen empty and copied away before the next
    # look exist only in the copy with nothing to recognise it by; the first line avoids it.
    w.write(1)
    proc: ExporterProcess | None = None
    starts = 0

    def start() -> ExporterProcess:
        nonlocal starts
        starts += 1
        return ExporterProcess(tmp_path / f"run{starts}", ["--config", str(cfg)]).start(timeout=60)

    def counted(p: ExporterProcess) -> float:
        return value(scrape(p), "fleetmon_log_lines_total", log="web") or 0.0

    def journal_entries() -> int:
        return journal.n if journal else 0

    def journal_counted(p: ExporterProcess) -> float:
        return value(scrape(p), "fleetmon_log_lines_total", log="journal") or 0.0

    def caught_up(p: ExporterProcess) -> None:
        wait_until(lambda: counted(p) >= w.n and (not journal or journal_counted(p) >= journal.n), timeout=90,
                   what=f"{w.n} lines and {journal_entries()} journal entries counted (seed {seed})")
        s = scrape(p)
        if journal:
            assert value(s, "fleetmon_log_lines_total", log="journal") == journal.n, f"journal (seed {seed})"
            sev = sum(v for ls, v in s.get("fleetmon_syslog_messages_total", {}).items() if ("log", "journal") in ls)
            assert sev == journal.n
        assert value(s, "fleetmon_log_lines_total", log="web") == w.n, f"double count (seed {seed})"
        reqs = sum(s.get("fleetmon_http_requests_total", {}).values())
        assert reqs == w.n, f"requests {reqs} != lines {w.n} (seed {seed})"
        assert value(s, "fleetmon_log_parse_errors_total", log="web") == 0

    kills = {"SIGTERM": 0, "SIGKILL": 0}
    try:
        proc = start()
        for rnd_no in range(8):
            caught_up(proc)
            w.write(rnd.randint(2000, 20000))
            rotated = rnd.choice(["rename", "copytruncate", None])
            if rotated == "rename":
                w.rename(rnd)
            elif rotated == "copytruncate":
                w.copytruncate(rnd)
            w.write(rnd.randint(1, 3000))
            if journal:
                journal.append(rnd.randint(1, 300))
            # A random point: right away (before it has seen the rotation), or once it has
            # counted a random share of what is written (mid-read, mid-file).
            if rnd.random() < 0.5:
                target = counted(proc) + rnd.random() * (w.n - counted(proc))
                wait_until(lambda t=target, p=proc: counted(p) >= t, timeout=90, what="a random share counted")
            sig = rnd.choice(["SIGTERM", "SIGKILL"]) if rnd_no else "SIGKILL"
            print(f"round {rnd_no}: written {w.n} rotated {rotated} counted {counted(proc)} {sig}")
            kills[sig] += 1
            if sig == "SIGTERM":
                proc.stop(timeout=30)
                assert proc.proc.returncode == 0, proc.log_tail()
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.proc.wait(timeout=30)
            # While down: more lines, and a rotation if none is pending (two renames while
            # down would skip the file between them: a documented limit).
            w.write(rnd.randint(0, 2000))
            if journal:
                journal.append(rnd.randint(1, 100))  # read after the saved cursor on restart
            if rotated is None:
                down_rot = rnd.choice(["rename", "copytruncate", None])
                if down_rot == "rename":
                    w.rename(rnd)
                elif down_rot == "copytruncate":
                    w.copytruncate(rnd)
                w.write(rnd.randint(1, 500))
                print(f"  while down: {down_rot}, written {w.n}")
            proc = start()
        caught_up(proc)
        s = scrape(proc)
        assert value(s, "fleetmon_log_state_restored_total") == 8
        assert kills["SIGKILL"] >= 1
    finally:
        if proc is not None:
            proc.stop()
