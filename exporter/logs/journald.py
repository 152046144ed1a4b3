"""Following the systemd journal through a ``journalctl`` child, the way Vector's
journald source does: ``journalctl --follow --output=json`` prints one JSON object per
entry, each with its ``__CURSOR``; the cursor of the last entry counted is saved with
the counters, and a restart passes ``--after-cursor`` so no entry is lost or counted
twice.

``--merge`` is passed because journalctl 250+ otherwise limits ``--follow`` to the
current boot (systemd/systemd#27696): entries written before a reboot and after our
cursor would be skipped. ``--output-fields`` keeps the JSON small (journalctl always
adds the cursor and timestamps), which makes parsing it cheap.

journalctl missing, failing to start or dying is logged with its exit status and last
stderr line, counted in ``fleetmon_log_read_errors_total`` and
``fleetmon_journald_restarts_total``, and retried with exponential backoff; the
exporter keeps serving meanwhile.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1024 * 1024


class JournalFollower:
    """One journald source: a journalctl child, its output buffer and our cursor."""

    def __init__(self, name: str, *, journalctl: str = "journalctl", directory: str | None = None,
                 matches: tuple[str, ...] = (), unit_label: bool = False, start_at: str = "end",
                 cursor: str | None = None, backoff: tuple[float, float] = (1.0, 60.0),
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.journalctl = journalctl
        self.directory = directory
        self.matches = tuple(matches)
        self.unit_label = unit_label
        self.start_at = start_at
        self.cursor = cursor
        self.backoff_min, self.backoff_max = backoff
        self.clock = clock
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self._stderr = b""
        self._failures = 0
        self._next_start = 0.0
        self.restarts = 0  # journalctl exits and failed starts
        self.running_since = 0.0
        self.more = False  # the last read stopped at its budget
        self._start_resolved = False

    def _base(self) -> list[str]:
        cmd = [self.journalctl, "--output=json", "--merge", "--no-pager", "--quiet"]
        if self.directory:
            cmd += ["--directory", self.directory]
        return cmd

    def resolve_start(self) -> None:
        """Pin "start at the end" to the journal's last entry now, as a cursor: what is
        written after the exporter started is counted even if journalctl starts later
        (a restart with backoff, a slow first poll)."""
        if self.cursor or self.start_at != "end" or self._start_resolved:
            return
        try:
            out = subprocess.run([*self._base(), "--lines=1", "--output-fields=PRIORITY", *self.matches],
                                 stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s: cannot find the end of the journal (%s); starting where journalctl starts",
                        self.name, exc)
            return
        self._start_resolved = True
        lines = out.stdout.strip().splitlines()
        cursor = None
        if out.returncode == 0 and lines:
            try:
                cursor = json.loads(lines[-1]).get("__CURSOR")
            except (ValueError, AttributeError):
                cursor = None
        if isinstance(cursor, str):
            self.cursor = cursor
        elif out.returncode == 0 and not lines:
            self.start_at = "beginning"  # an empty journal: its end is its beginning

    def command(self) -> list[str]:
        fields = "PRIORITY,_SYSTEMD_UNIT" if self.unit_label else "PRIORITY"
        cmd = [*self._base(), "--follow", f"--output-fields={fields}"]
        if self.cursor:
            cmd += ["--after-cursor", self.cursor, "--no-tail"]
        elif self.start_at == "beginning":
            cmd += ["--no-tail"]
        else:
            cmd += ["--lines=0"]
        return cmd + list(self.matches)

    def _start(self) -> bool:
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, close_fds=True)
        except OSError as exc:
            self._failed(f"cannot run {self.journalctl}: {exc.strerror or exc}")
            return False
        for pipe in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        try:
            # A 1 MiB pipe instead of 64 KiB: journalctl blocks on a full pipe between our polls.
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self._buf = b""
        self._stderr = b""
        self.running_since = self.clock()
        log.info("%s: following the journal%s%s", self.name,
                 f" in {self.directory}" if self.directory else "",
                 " after the saved cursor" if self.cursor else f" from the {self.start_at}")
        return True

    def _failed(self, why: str) -> None:
        self.restarts += 1
        delay = min(self.backoff_max, self.backoff_min * (2 ** self._failures))
        self._failures += 1
        self._next_start = self.clock() + delay
        log.error("%s: %s; retrying in %.0f s", self.name, why, delay)

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        try:
            while True:
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                self._stderr = (self._stderr + chunk)[-2048:]
        except BlockingIOError:
            pass
        except OSError:
            pass

    def _reap(self) -> None:
        proc = self.proc
        self.proc = None
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        self._drain_stderr(proc)
        proc.stdout.close()
        proc.stderr.close()
        last = self._stderr.decode("utf-8", "replace").strip().splitlines()
        self._buf = b""  # a partial entry is read again after the cursor
        self._failed(f"journalctl exited with status {rc}" + (f": {last[-1]}" if last else ""))

    def read(self, budget: int = 4 * 1024 * 1024) -> tuple[list[bytes], bool]:
        """Complete JSON lines available now, and whether journalctl failed in this call
        (for the read-error counter). Starts journalctl when it is due."""
        if self.proc is None:
            if self.clock() < self._next_start:
                return [], False
            self.resolve_start()
            if not self._start():
                return [], True
        proc = self.proc
        data = []
        got = 0
        eof = False
        while got < budget:
            try:
                chunk = os.read(proc.stdout.fileno(), READ_CHUNK)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                eof = True
                break
            if not chunk:
                eof = True
                break
            data.append(chunk)
            got += len(chunk)
        self._drain_stderr(proc)
        lines: list[bytes] = []
        if data:
            buf = self._buf + b"".join(data)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                lines = buf[:idx].split(b"\n")
                self._buf = buf[idx + 1:]
            else:
                self._buf = buf
            if self._failures and self.clock() - self.running_since > 0:
                self._failures = 0  # it runs and delivers: the next failure backs off from the start
        # A read that found the pipe well filled means journalctl is ahead of us: poll again now.
        self.more = got >= min(budget, 64 * 1024)
        if eof:
            self._reap()
            return lines, True
        return lines, False

    def stop(self) -> None:
        proc = self.proc
        self.proc = None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
