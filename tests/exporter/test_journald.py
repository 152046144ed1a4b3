"""The journald source against real journal files: ``systemd-journal-remote -o
FILE.journal -`` writes them from journal export format, before and while the
exporter runs; journalctl (the real one) follows them. Priorities, matches, the
bounded unit label, start positions, restarts at the saved cursor after SIGTERM and
SIGKILL, and journalctl missing or dying."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.logs.manager import LogManager, LogSource, source_from_config
from tests.exporter.conftest import ExporterProcess, parse_samples, value
from tests.harness.servers import wait_until

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
pytestmark = pytest.mark.skipif(not os.path.exists(JOURNAL_REMOTE),
                                reason="systemd-journal-remote is not installed (make install installs it)")

UNITS = ("nginx.service", "sshd.service", "cron.service")


class Journal:
    """A journal file in a directory, appended to with systemd-journal-remote."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "test.journal"
        self.n = 0
        self.by_priority: dict[int, int] = {}
        self.by_unit: dict[str, int] = {}

    def append(self, count: int, unit: str | None = None) -> None:
        out = []
        for i in range(self.n, self.n + count):
            pri = i % 8
            u = unit or UNITS[i % len(UNITS)]
            self.by_priority[pri] = self.by_priority.get(pri, 0) + 1
            self.by_unit[u] = self.by_unit.get(u, 0) + 1
            out.append(f"__REALTIME_TIMESTAMP={1764300000000000 + i}\n_SYSTEMD_UNIT={u}\nPRIORITY={pri}\n"
                       f"SYSLOG_IDENTIFIER=app\nMESSAGE=entry {i} with some words\n\n")
        self.n += count
        subprocess.run([JOURNAL_REMOTE, "-o", str(self.file), "-"], input="".join(out).encode(),
                       check=True, capture_output=True, timeout=60)


SEV = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def counted(m: LogManager, name: str) -> int:
    m.poll()
    return m.counters[name].lines


def test_priorities_matches_unit_label_and_entries_appended_while_running(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    j.append(40)
    sources = [
        LogSource(path="", type="journald", name="all", directory=str(j.dir), start_at="beginning"),
        LogSource(path="", type="journald", name="nginx", directory=str(j.dir), start_at="beginning",
                  matches=("_SYSTEMD_UNIT=nginx.service",)),
        LogSource(path="", type="journald", name="units", directory=str(j.dir), start_at="beginning",
                  unit_label=True),
        LogSource(path="", type="journald", name="new", directory=str(j.dir)),  # start_at end
    ]
    m = LogManager(sources, label_cap=2, journal_backoff=(0.05, 0.5)).start_journals()
    try:
        wait_until(lambda: counted(m, "all") >= 40 and counted(m, "units") >= 40, timeout=60, what="40 entries")
        j.append(24)  # while journalctl follows the file
        wait_until(lambda: counted(m, "all") >= 64 and m.counters["nginx"].lines >= 22
                   and m.counters["units"].lines >= 64 and m.counters["new"].lines >= 24,
                   timeout=60, what="appended entries")
        m.poll()
        a = m.counters["all"]
        assert a.lines == 64 and a.parse_errors == 0
        assert a.severities == {SEV[p]: n for p, n in j.by_priority.items()}
        assert m.counters["nginx"].lines == j.by_unit["nginx.service"] == 22
        assert m.counters["new"].lines == 24  # the 40 entries before the start were skipped
        # The unit label is bounded by label_cap (2): the third unit folds into "other".
        units = m.counters["units"].unit_severities
        per_unit: dict[str, int] = {}
        for (u, _), n in units.items():
            per_unit[u] = per_unit.get(u, 0) + n
        assert per_unit == {"nginx.service": 22, "sshd.service": 21, "other": 21}
    finally:
        m.stop()


def _config(tmp_path: Path, jdir: Path, extra: str = "") -> Path:
    cfg = tmp_path / "exporter.yml"
    cfg.write_text(f"""
collectors: {{cpu: false, filesystem: false, diskstats: false, netdev: false}}
logs:
  - {{type: journald, name: journal, directory: {jdir}{extra}}}
tailing: {{state_file: {tmp_path / "state.json"}, poll_interval: 0.05}}
""")
    return cfg


def test_restart_resumes_at_the_saved_cursor_after_sigterm_and_sigkill(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    j.append(10)  # before the first start: skipped (start_at: end)
    cfg = _config(tmp_path, j.dir)
    written_before_start = j.n
    proc = None
    try:
        for run, sig in enumerate((signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, None)):
            proc = ExporterProcess(tmp_path / f"run{run}", ["--config", str(cfg)]).start(timeout=60)

            def lines(p: ExporterProcess = proc) -> float:
                return value(parse_samples(p.metrics_text()), "fleetmon_log_lines_total", log="journal") or 0

            j.append(30 + run)  # while running
            want = j.n - written_before_start
            wait_until(lambda w=want: lines() >= w, timeout=60, what=f"{want} entries")
            s = parse_samples(proc.metrics_text())
            assert value(s, "fleetmon_log_lines_total", log="journal") == want
            total = sum(v for ls, v in s["fleetmon_syslog_messages_total"].items() if ("log", "journal") in ls)
            assert total == want
            if sig is None:
                break
            os.kill(proc.pid, sig)
            proc.proc.wait(timeout=30)
            j.append(7)  # while down: read after the cursor on restart
        assert value(s, "fleetmon_log_state_restored_total") == 3
    finally:
        if proc is not None:
            proc.stop()


def test_journalctl_missing_or_dying_is_counted_and_retried(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    j.append(5)
    missing = LogSource(path="", type="journald", name="missing", journalctl=str(tmp_path / "no-journalctl"))
    # A journalctl that dies on its first two runs (after printing what there is, without
    # following), then works.
    flaky = tmp_path / "flaky-journalctl"
    flaky.write_text(f"""#!/bin/sh
n=$(cat {tmp_path}/runs 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/runs
if [ "$n" -lt 2 ]; then
  for a in "$@"; do shift; [ "$a" = "--follow" ] || set -- "$@" "$a"; done
  journalctl "$@"; echo "journal corrupted" >&2; exit 3
fi
exec journalctl "$@"
""")
    flaky.chmod(flaky.stat().st_mode | stat.S_IXUSR)
    dying = LogSource(path="", type="journald", name="dying", directory=str(j.dir), start_at="beginning",
                      journalctl=str(flaky))
    m = LogManager([missing, dying], journal_backoff=(0.05, 0.2)).start_journals()
    try:
        wait_until(lambda: counted(m, "dying") >= 5 and m.journals["missing"].restarts >= 3,
                   timeout=60, what="entries through the flaky journalctl")
        j.append(6)
        wait_until(lambda: counted(m, "dying") >= 11 and m.journals["dying"].restarts >= 2
                   and m.journals["dying"].proc is not None, timeout=60, what="entries after restarts")
        m.poll()
        assert m.counters["dying"].lines == 11  # resumed after the cursor each time: no double count
        assert m.journals["dying"].restarts == 2 and m.counters["dying"].read_errors == 2
        assert m.counters["missing"].read_errors >= 3 and m.counters["missing"].lines == 0
        names = {f.name for f in m.families()}
        assert "fleetmon_journald_restarts_total" in names
    finally:
        m.stop()


def test_syslog_falls_back_to_the_journal_when_the_file_does_not_exist(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    cfg = parse_config(f"""
logs:
  - {{path: {tmp_path}/no-syslog, type: syslog, name: syslog, fallback: journald, directory: {j.dir}}}
  - {{path: {tmp_path}/syslog, type: syslog, name: file, fallback: journald, directory: {j.dir}}}
""", "c.yml")
    (tmp_path / "syslog").write_text("")
    sources = [source_from_config(e) for e in cfg.logs]
    assert [(s.name, s.type) for s in sources] == [("syslog", "journald"), ("file", "syslog")]
    m = LogManager(sources).start_journals()
    try:
        j.append(3)
        wait_until(lambda: counted(m, "syslog") >= 3, timeout=60, what="journal entries")
    finally:
        m.stop()


def test_bad_journald_config_names_line_and_field() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config("logs:\n  - {type: journald, matches: [nginx]}\n"
                     "  - {type: journald, name: j2, path: /var/log/x}\n"
                     "  - {type: journald, name: j3, unit_label: 1}\n"
                     "  - {type: syslog, path: /x, fallback: files}\n", "c.yml")
    text = "\n".join(ei.value.problems)
    assert 'c.yml:2: logs[0].matches[0]: must be a journalctl match like "_SYSTEMD_UNIT=nginx.service"' in text
    assert "c.yml:3: logs[1].path: not used by journald sources" in text
    assert "c.yml:4: logs[2].unit_label: must be true or false" in text
    assert "c.yml:5: logs[3].fallback: must be journald" in text


def test_log_flag_and_corrupt_saved_counters(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from exporter.cli import main
    from exporter.config import parse_log_flag

    assert parse_log_flag("journald")["type"] == "journald"
    assert parse_log_flag(f"journald:{tmp_path}")["directory"] == str(tmp_path)
    r = CliRunner().invoke(main, ["--log", "journald:"])
    assert r.exit_code == 2 and "expected journald or journald:DIRECTORY" in r.output, r.output
    # Saved counters that do not fit are dropped whole, never half-restored.
    state = tmp_path / "state.json"
    state.write_text('{"version": 2, "files": {}, "sources": {"j": {"type": "journald", "lines": 5, '
                     '"parse_errors": "x", "rotations": 0, "read_errors": 0}}}')
    m = LogManager([LogSource(path="", type="journald", name="j", directory=str(tmp_path))],
                   state_file=str(state))
    assert m.counters["j"].lines == 0 and m.state_restored == 1
