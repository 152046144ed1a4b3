"""Follows every configured log source in one background thread and exposes their
counters.

Each poll: expand each source's glob (new files are read from their start), check
every followed file for rotation (rename: drain the old file, keep reading it for
``rotate_grace`` seconds while the writer may still append, open the new one from
0) or truncation (copytruncate: seek to 0), read the complete lines, feed the
parser. (device, inode, offset) of every file is saved atomically to
``state_file`` so a restart resumes where it stopped; a file rotated while we were
down is found again by inode in its directory and drained first.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from exporter.logs.counters import DEFAULT_BUCKETS, SourceCounters
from exporter.logs.tailer import FileState, TailedFile
from exporter.metrics import Family
from fleetmon.atomic import write_atomic

log = logging.getLogger(__name__)


@dataclass
class LogSource:
    path: str  # a file name or a glob
    type: str
    name: str = ""  # the ``log`` label; defaults to ``path``
    labels: dict[str, str] = field(default_factory=dict)
    start_at: str = "end"  # where files present at the very first start begin: end | beginning
    buckets: tuple[float, ...] = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.path


class _Followed:
    def __init__(self, source: LogSource, counters: SourceCounters, tf: TailedFile):
        self.source = source
        self.counters = counters
        self.tf = tf


class LogManager:
    def __init__(self, sources: list[LogSource], state_file: str | None = None, poll_interval: float = 0.5,
                 max_line: int = 1024 * 1024, label_cap: int = 50, max_files: int = 100,
                 rotate_grace: float = 30.0, state_interval: float = 1.0):
        names = [s.name for s in sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate log name(s): {', '.join(sorted(dup))}")
        if state_file:
            parent = os.path.dirname(os.path.abspath(state_file))
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise ValueError(f"tailing.state_file {state_file}: directory {parent} does not exist "
                                 "or is not writable")
        self.sources = sources
        self.state_file = state_file
        self._state_error_logged = False
        self.poll_interval = poll_interval
        self.max_line = max_line
        self.max_files = max_files
        self.rotate_grace = rotate_grace
        self.state_interval = state_interval
        self.counters = {s.name: SourceCounters(s.name, s.type, label_cap, s.buckets) for s in sources}
        self.lock = threading.Lock()
        self.active: dict[str, _Followed] = {}  # path -> followed file
        self.draining: list[_Followed] = []  # rotated-away files still being read
        self.lag: dict[tuple[str, str], int] = {}
        self._unreadable: set[str] = set()
        self._saved: dict[str, FileState] = {}
        self._saved_draining: list[tuple[str, str, FileState]] = []
        self._first_start = True
        self._load_state()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state_write = 0.0
        self._state_dirty = False
        self.polls = 0
        self._more = False
        self._poll_done = threading.Condition()

    # ------------------------------------------------------------------ state
    def _load_state(self) -> None:
        if not self.state_file:
            return
        try:
            with open(self.state_file, encoding="utf-8") as fh:
                data = json.load(fh)
            self._saved = {p: FileState.from_json(d) for p, d in data.get("files", {}).items()}
            self._saved_draining = [(str(d["path"]), str(d["log"]), FileState.from_json(d))
                                    for d in data.get("draining", [])]
            self._first_start = False
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A corrupt state file must not stop the exporter: start as on first start.
            log.warning("ignoring unreadable log state file %s: %s", self.state_file, exc)

    def save_state(self) -> None:
        if not self.state_file:
            return
        with self.lock:
            files = {p: f.tf.state().to_json() for p, f in self.active.items()}
            draining = [{"path": f.tf.path, "log": f.source.name, **f.tf.state().to_json()}
                        for f in self.draining if f.tf.fd >= 0]
            # Keep entries of files we are not following right now (unreadable, vanished
            # for a moment) so a later start still knows them.
            for p, st in list(self._saved.items()):
                if os.path.exists(p):
                    files.setdefault(p, st.to_json())
                else:
                    del self._saved[p]  # gone for good: forget it
        try:
            write_atomic(self.state_file, json.dumps({"version": 1, "files": files, "draining": draining},
                                                     sort_keys=True))
            self._state_dirty = False
            self._state_error_logged = False
        except OSError as exc:
            # A full disk must not stop the counting; say so once, keep trying.
            if not self._state_error_logged:
                log.warning("cannot write log state file %s: %s", self.state_file, exc)
                self._state_error_logged = True

    # ------------------------------------------------------------------ files
    def _open(self, path: str, source: LogSource, at_startup: bool) -> None:
        counters = self.counters[source.name]
        saved = self._saved.pop(path, None)
        try:
            if saved is not None:
                tf = self._resume(path, saved, source, counters)
            else:
                from_end = at_startup and self._first_start and source.start_at == "end"
                tf = TailedFile(path, offset=None if from_end else 0, max_line=self.max_line)
        except FileNotFoundError:
            return
        except OSError as exc:
            if path not in self._unreadable:
                log.warning("cannot open %s (%s): %s", path, source.name, exc)
                self._unreadable.add(path)
                counters.read_errors += 1
            if saved is not None:
                self._saved[path] = saved
            return
        self._unreadable.discard(path)
        tf.last_growth = time.monotonic()
        self.active[path] = _Followed(source, counters, tf)
        self._state_dirty = True

    def _resume(self, path: str, saved: FileState, source: LogSource, counters: SourceCounters) -> TailedFile:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == (saved.dev, saved.ino):
            tf = TailedFile(path, offset=0, max_line=self.max_line)
            head_now = tf.head[: len(bytes.fromhex(saved.head))].hex()
            if st.st_size >= saved.offset and head_now == saved.head:
                tf.offset = saved.offset
            else:
                counters.rotations += 1  # truncated while we were down
            return tf
        # Rotated while we were down: find the old inode beside it and drain it first.
        old = self._find_inode(os.path.dirname(path) or ".", saved)
        if old is not None:
            try:
                otf = TailedFile(old, offset=saved.offset, max_line=self.max_line)
                otf.last_growth = time.monotonic()
                self.draining.append(_Followed(source, counters, otf))
                log.info("resuming rotated %s as %s at offset %d", path, old, saved.offset)
            except OSError as exc:
                log.warning("cannot reopen rotated file %s: %s", old, exc)
        counters.rotations += 1
        return TailedFile(path, offset=0, max_line=self.max_line)

    @staticmethod
    def _find_inode(directory: str, saved: FileState) -> str | None:
        try:
            with os.scandir(directory) as it:
                for e in it:
                    try:
                        if e.inode() == saved.ino and e.is_file() and os.stat(e.path).st_dev == saved.dev:
                            return e.path
                    except OSError:
                        continue
        except OSError:
            return None
        return None

    def _recover_copy(self, path: str, f: _Followed) -> None:
        tf = f.tf
        if not tf.head or tf.offset == 0:
            return
        head = tf.head[: min(len(tf.head), tf.offset)]
        directory, base = os.path.split(path)
        try:
            names = [n for n in os.listdir(directory or ".") if n.startswith(base) and n != base]
        except OSError:
            return
        tail = tf.tail
        cands = []
        for n in names:
            try:
                st = os.stat(os.path.join(directory, n))
            except OSError:
                continue
            if st.st_ino != tf.ino and st.st_size > tf.offset:
                cands.append((-st.st_mtime, n))
        for _, n in sorted(cands):  # newest first: the copy was just made
            cand = os.path.join(directory, n)
            try:
                with open(cand, "rb") as fh:
                    if fh.read(len(head)) != head:
                        continue
                    fh.seek(tf.offset - len(tail))
                    if fh.read(len(tail)) != tail:
                        continue
                copy = TailedFile(cand, offset=tf.offset, max_line=self.max_line)
            except OSError:
                continue
            try:
                self._read(_Followed(f.source, f.counters, copy))
            finally:
                copy.close()
            return

    def _read(self, f: _Followed, budget: int = 64 * 1024 * 1024) -> int:
        """Read and count up to about ``budget`` bytes of complete lines, 1 MiB at a time
        (bounded memory, short lock holds); sets ``self._more`` when data is left."""
        total = 0
        start = f.tf.offset
        while True:
            lines, skipped = f.tf.read_lines()
            if lines or skipped:
                with self.lock:
                    if lines:
                        f.counters.feed(lines)
                    if skipped:
                        f.counters.lines += skipped
                        f.counters.parse_errors += skipped
                self._state_dirty = True
                f.tf.last_growth = time.monotonic()
                total += len(lines) + skipped
            if not f.tf.more:
                return total
            if f.tf.offset - start >= budget:
                self._more = True
                return total

    def _check(self, path: str, f: _Followed) -> None:
        tf = f.tf
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != (tf.dev, tf.ino):
            # Renamed away (logrotate create) or deleted: keep reading the old file for a while.
            self._read(f)
            del self.active[path]
            self.draining.append(f)
            with self.lock:
                f.counters.rotations += 1
                self.lag.pop((f.source.name, path), None)
            self._state_dirty = True
            if st is not None:
                self._open(path, f.source, at_startup=False)
                nf = self.active.get(path)
                if nf is not None:
                    self._read(nf)
            return
        # Look for a truncation when the size or the mtime moved: a copytruncate followed by
        # writes can leave the size exactly where it was.
        changed = st.st_size != tf.offset + len(tf.partial) or st.st_mtime_ns != tf.seen_mtime
        tf.seen_mtime = st.st_mtime_ns
        if changed and tf.truncated(st.st_size):
            # copytruncate: the lines after our offset live on only in the copy; find it
            # beside the file (same first bytes, at least as long) and read them from it.
            self._recover_copy(path, f)
            tf.reset()
            with self.lock:
                f.counters.rotations += 1
        self._read(f)
        with self.lock:
            self.lag[(f.source.name, path)] = max(0, st.st_size - tf.offset)

    def _restore_draining(self) -> None:
        """Reopen rotated files that were still being drained when we stopped."""
        by_name = {s.name: s for s in self.sources}
        for path, name, st in self._saved_draining:
            source = by_name.get(name)
            old = self._find_inode(os.path.dirname(path) or ".", st) if source else None
            if old is None:
                continue
            try:
                tf = TailedFile(old, offset=st.offset, max_line=self.max_line)
            except OSError:
                continue
            tf.last_growth = time.monotonic()
            self.draining.append(_Followed(source, self.counters[name], tf))
        self._saved_draining = []

    def poll(self, at_startup: bool = False) -> bool:
        """One pass over every source and file (the background thread calls this).
        Returns True when some file has more data than one pass reads."""
        self._more = False
        if self._saved_draining:
            self._restore_draining()
        for source in self.sources:
            try:
                paths = sorted(glob.glob(source.path)) if glob.has_magic(source.path) else [source.path]
            except OSError:
                paths = []
            followed = sum(1 for f in self.active.values() if f.source is source)
            for p in paths:
                if p in self.active or not os.path.isfile(p):
                    continue
                if followed >= self.max_files:
                    log.warning("%s: more than %d files match; not following %s", source.name, self.max_files, p)
                    break
                self._open(p, source, at_startup)
                followed += 1
        for path, f in list(self.active.items()):
            try:
                self._check(path, f)
            except OSError as exc:
                log.warning("error reading %s: %s", path, exc)
                with self.lock:
                    f.counters.read_errors += 1
        now = time.monotonic()
        for f in list(self.draining):
            try:
                self._read(f)
            except OSError:
                pass
            if now - f.tf.last_growth > self.rotate_grace:
                f.tf.close()
                self.draining.remove(f)
        if self._state_dirty and now - self._last_state_write >= self.state_interval:
            self._last_state_write = now
            self.save_state()
        with self._poll_done:
            self.polls += 1
            self._poll_done.notify_all()
        return self._more

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            more = False
            try:
                more = self.poll(at_startup=first)
            except Exception:  # noqa: BLE001 - the tailer thread must never die
                log.exception("log poll failed")
            first = False
            if not more:
                self._stop.wait(self.poll_interval)

    def start(self) -> LogManager:
        self._thread = threading.Thread(target=self._run, name="log-tailer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.save_state()
        for f in list(self.active.values()) + self.draining:
            f.tf.close()
        self.active.clear()
        self.draining.clear()

    def wait_polls(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``n`` more polls have completed (for tests and benchmarks)."""
        with self._poll_done:
            target = self.polls + n
            return self._poll_done.wait_for(lambda: self.polls >= target, timeout)

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        fams = {
            "req": Family("fleetmon_http_requests_total", "counter", "HTTP requests by method and status."),
            "bytes": Family("fleetmon_http_response_bytes_total", "counter", "Bytes sent in HTTP responses."),
            "dur": Family("fleetmon_http_request_duration_seconds", "histogram",
                          "HTTP request duration from the access log's request time."),
            "err": Family("fleetmon_webserver_errors_total", "counter", "Web server error log entries by level."),
            "sys": Family("fleetmon_syslog_messages_total", "counter", "Syslog messages by severity."),
            "lines": Family("fleetmon_log_lines_total", "counter", "Log lines read."),
            "perr": Family("fleetmon_log_parse_errors_total", "counter",
                           "Log lines that did not parse (or were over-long)."),
            "rot": Family("fleetmon_log_rotations_total", "counter",
                          "Log rotations seen (rename or truncation)."),
            "rerr": Family("fleetmon_log_read_errors_total", "counter",
                           "Errors opening or reading log files."),
            "lag": Family("fleetmon_log_lag_bytes", "gauge", "Bytes between our offset and the end of the file."),
            "files": Family("fleetmon_log_files", "gauge", "Log files followed (including rotated ones draining)."),
        }
        with self.lock:
            by_name = {s.name: s for s in self.sources}
            nfiles: dict[str, int] = {}
            for f in list(self.active.values()) + self.draining:
                nfiles[f.source.name] = nfiles.get(f.source.name, 0) + 1
            for name, c in self.counters.items():
                base = {"log": name, **by_name[name].labels}
                fams["lines"].add_labels(base, c.lines)
                fams["perr"].add_labels(base, c.parse_errors)
                fams["rot"].add_labels(base, c.rotations)
                fams["rerr"].add_labels(base, c.read_errors)
                fams["files"].add_labels(base, nfiles.get(name, 0))
                if c.type.endswith("_access"):
                    for (method, status), n in sorted(c.requests.items()):
                        fams["req"].add_labels({**base, "method": method, "status": status}, n)
                    fams["bytes"].add_labels(base, c.response_bytes)
                    if c.hist_count:
                        for le, n in c.cumulative_buckets():
                            fams["dur"].add_labels({**base, "le": le}, n, "_bucket")
                        fams["dur"].add_labels(base, c.hist_sum, "_sum")
                        fams["dur"].add_labels(base, c.hist_count, "_count")
                elif c.type.endswith("_error"):
                    for level, n in sorted(c.levels.items()):
                        fams["err"].add_labels({**base, "level": level}, n)
                else:
                    for sev, n in sorted(c.severities.items()):
                        fams["sys"].add_labels({**base, "severity": sev}, n)
            for (name, path), lag in sorted(self.lag.items()):
                fams["lag"].add_labels({"log": name, **by_name[name].labels, "path": path}, lag)
        return [f for f in fams.values() if f.samples]
