"""Follows every configured log source in one background thread and exposes their
counters.

Each poll: read what every journald source's journalctl child printed; expand each
source's glob (new files are read from their start), check every followed file for rotation (rename: drain the old file, keep reading it for
``rotate_grace`` seconds while the writer may still append, open the new one from
0) or truncation (copytruncate: seek to 0), read the complete lines, feed the
parser. (device, inode, offset) of every file, the journal cursor of every journald
source and the values of every counter are saved together, atomically, to
``state_file``, so a restart resumes reading exactly where the counters stopped
(exactly-once across SIGTERM and SIGKILL); a file rotated while we were down is found
again by inode (rename) or by its first and last bytes (copytruncate) and drained
first. A source the state file does not know yet starts at ``start_at`` (default end).
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
from exporter.logs.formats import AccessParser
from exporter.logs.journald import JournalFollower
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
    start_at: str = "end"  # where a source's files begin when the source is new: end | beginning
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    parser: AccessParser | None = None  # access logs: a compiled ``format:`` (None: combined + request time)
    continuation: tuple[bool, tuple[str, ...]] | None = None  # (indented, prefixes); None: the type's default
    # journald: a journal directory (default: the system journal), journalctl matches, a unit label
    directory: str | None = None
    matches: tuple[str, ...] = ()
    unit_label: bool = False
    journalctl: str = "journalctl"
    fallback: str | None = None  # syslog: "journald" follows the journal when ``path`` does not exist

    def __post_init__(self) -> None:
        if self.type == "syslog" and self.fallback == "journald" and not glob.has_magic(self.path) \
                and not os.path.exists(self.path):
            log.info("%s does not exist: following the systemd journal instead", self.path)
            self.name = self.name or self.path
            self.type = "journald"
        if not self.name:
            self.name = "journald" if self.type == "journald" else self.path


def source_from_config(entry: dict) -> LogSource:
    """A LogSource from one validated ``logs[]`` entry of ExporterConfig."""
    keys = ("path", "type", "name", "labels", "start_at", "buckets", "parser", "continuation", "directory",
            "matches", "unit_label", "journalctl", "fallback")
    return LogSource(**{k: entry[k] for k in keys if k in entry})


class _Followed:
    def __init__(self, source: LogSource, counters: SourceCounters, tf: TailedFile):
        self.source = source
        self.counters = counters
        self.tf = tf


class LogManager:
    def __init__(self, sources: list[LogSource], state_file: str | None = None, poll_interval: float = 0.5,
                 max_line: int = 1024 * 1024, label_cap: int = 50, max_files: int = 100,
                 rotate_grace: float = 30.0, state_interval: float = 1.0,
                 journal_backoff: tuple[float, float] = (1.0, 60.0)):
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
        self._label_cap = label_cap
        self.counters = {s.name: self._new_counters(s) for s in sources}
        self.journals: dict[str, JournalFollower] = {}
        self._known: set[str] | None = None  # source names the state file knows (None: all, old state)
        self._cursors: dict[str, str] = {}
        self.state_restored = 0
        self.lock = threading.Lock()
        self.active: dict[str, _Followed] = {}  # path -> followed file
        self.draining: list[_Followed] = []  # rotated-away files still being read
        self.lag: dict[tuple[str, str], int] = {}
        self._unreadable: set[str] = set()
        self._saved: dict[str, FileState] = {}
        self._saved_draining: list[tuple[str, str, FileState]] = []
        self._first_start = True
        self._load_state()
        for s in sources:
            if s.type == "journald":
                new = self._known is not None and s.name not in self._known
                self.journals[s.name] = JournalFollower(
                    s.name, journalctl=s.journalctl, directory=s.directory, matches=s.matches,
                    unit_label=s.unit_label, start_at=s.start_at,
                    cursor=None if new else self._cursors.get(s.name), backoff=journal_backoff)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state_write = 0.0
        self._state_dirty = False
        self.polls = 0
        self._more = False
        self._poll_done = threading.Condition()

    def _new_counters(self, s: LogSource) -> SourceCounters:
        return SourceCounters(s.name, s.type, self._label_cap, s.buckets, parser=s.parser,
                              continuation=s.continuation, unit_label=s.unit_label)

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
            if "sources" in data:
                self._restore_counters(data)
            self._first_start = False
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A corrupt state file must not stop the exporter: start as on first start.
            log.warning("ignoring unreadable log state file %s: %s", self.state_file, exc)

    def _restore_counters(self, data: dict) -> None:
        """Counter values and journal cursors saved with the offsets (state version 2)."""
        saved = data["sources"]
        self._known = set(saved)
        self._cursors = {str(k): str(v) for k, v in (data.get("journal") or {}).items()}
        self.state_restored = int(data.get("restored", 0)) + 1
        by_name = {s.name: s for s in self.sources}
        for name, c in list(self.counters.items()):
            if name not in saved:
                continue
            try:
                if not c.restore(saved[name]):
                    # Its type changed: the saved offsets describe another parse; restart the counts.
                    log.warning("log %s: saved counters are for another log type; starting them from 0", name)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("log %s: saved counters unreadable (%s); starting them from 0", name, exc)
                self.counters[name] = self._new_counters(by_name[name])  # nothing half-restored
        log.info("log counters restored from %s (they continue across restarts)", self.state_file)

    def snapshot(self) -> dict:
        """Offsets, cursors and counter values at one instant (under the lock)."""
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
        journal = {name: j.cursor for name, j in self.journals.items() if j.cursor}
        return {"version": 2, "files": files, "draining": draining, "journal": journal,
                "sources": {name: c.to_json() for name, c in self.counters.items()},
                "restored": self.state_restored}

    def save_state(self) -> None:
        if not self.state_file:
            return
        with self.lock:
            state = self.snapshot()
        try:
            write_atomic(self.state_file, json.dumps(state, sort_keys=True))
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
                # A source new to this host (no state, or a state file that does not know it)
                # starts its present files at start_at; a known source's files that appeared
                # while we were down, and files that appear later, are read from the start.
                new_source = self._first_start or (self._known is not None and source.name not in self._known)
                from_end = at_startup and new_source and source.start_at == "end"
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
            if st.st_size >= saved.offset and head_now == saved.head and self._tail_matches(tf, saved):
                tf.offset = saved.offset
            else:
                # Truncated while we were down (copytruncate): the lines after our offset
                # live on in the copy beside it.
                counters.rotations += 1
                self._recover_copy(path, source, counters, bytes.fromhex(saved.head), saved.offset,
                                   bytes.fromhex(saved.tail), saved.ino)
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

    @staticmethod
    def _tail_matches(tf: TailedFile, saved: FileState) -> bool:
        if not saved.tail:
            return True
        tail = bytes.fromhex(saved.tail)
        return os.pread(tf.fd, len(tail), saved.offset - len(tail)) == tail

    def _recover_copy(self, path: str, source: LogSource, counters: SourceCounters, head: bytes, offset: int,
                      tail: bytes, ino: int) -> None:
        """Read the lines after ``offset`` from the copy copytruncate left beside ``path``:
        the newest sibling with the same first bytes and the same bytes before ``offset``."""
        if not head or offset == 0:
            return
        head = head[: min(len(head), offset)]
        directory, base = os.path.split(path)
        try:
            names = [n for n in os.listdir(directory or ".") if n.startswith(base) and n != base]
        except OSError:
            return
        cands = []
        for n in names:
            try:
                st = os.stat(os.path.join(directory, n))
            except OSError:
                continue
            if st.st_ino != ino and st.st_size > offset:
                cands.append((-st.st_mtime, n))
        for _, n in sorted(cands):  # newest first: the copy was just made
            cand = os.path.join(directory, n)
            try:
                with open(cand, "rb") as fh:
                    if fh.read(len(head)) != head:
                        continue
                    fh.seek(offset - len(tail))
                    if fh.read(len(tail)) != tail:
                        continue
                copy = TailedFile(cand, offset=offset, max_line=self.max_line)
            except OSError:
                continue
            try:
                self._read(_Followed(source, counters, copy))
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
            if tf.head and tf.offset:
                self._recover_copy(path, f.source, f.counters, tf.head, tf.offset, tf.tail, tf.ino)
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

    def _poll_journals(self) -> None:
        for name, j in self.journals.items():
            counters = self.counters[name]
            lines, failed = j.read()
            if lines or failed:
                with self.lock:
                    if lines:
                        cursor = counters.feed_journal(lines)
                        if cursor is not None:
                            j.cursor = cursor
                    if failed:
                        counters.read_errors += 1
                self._state_dirty = True
            if j.more:
                self._more = True

    def poll(self, at_startup: bool = False) -> bool:
        """One pass over every source and file (the background thread calls this).
        Returns True when some file has more data than one pass reads."""
        self._more = False
        if self.journals:
            self._poll_journals()
        if self._saved_draining:
            self._restore_draining()
        for source in self.sources:
            if source.type == "journald":
                continue
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

    def start_journals(self) -> LogManager:
        """Pin where each journald source starts (see JournalFollower.resolve_start)."""
        for j in self.journals.values():
            j.resolve_start()
        return self

    def start(self) -> LogManager:
        self.start_journals()
        self._thread = threading.Thread(target=self._run, name="log-tailer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for j in self.journals.values():
            j.stop()
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
            "updur": Family("fleetmon_http_upstream_response_duration_seconds", "histogram",
                            "Upstream response time from the access log's $upstream_response_time."),
            "err": Family("fleetmon_webserver_errors_total", "counter", "Web server error log entries by level."),
            "sys": Family("fleetmon_syslog_messages_total", "counter", "Syslog messages by severity."),
            "lines": Family("fleetmon_log_lines_total", "counter", "Log lines read."),
            "perr": Family("fleetmon_log_parse_errors_total", "counter",
                           "Log lines that did not parse (or were over-long)."),
            "rot": Family("fleetmon_log_rotations_total", "counter",
                          "Log rotations seen (rename or truncation)."),
            "rerr": Family("fleetmon_log_read_errors_total", "counter",
                           "Errors opening or reading log files."),
            "cont": Family("fleetmon_log_continuation_lines_total", "counter",
                           "Lines that continue the record before them (multi-line records)."),
            "jrst": Family("fleetmon_journald_restarts_total", "counter",
                           "journalctl children that exited or could not be started."),
            "restored": Family("fleetmon_log_state_restored_total", "counter",
                               "Starts that restored log counters, offsets and cursors from the state file."),
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
                fams["cont"].add_labels(base, c.continuations)
                if c.type == "journald":
                    fams["jrst"].add_labels(base, self.journals[name].restarts)
                else:
                    fams["files"].add_labels(base, nfiles.get(name, 0))
                if c.type.endswith("_access"):
                    for (method, status), n in sorted(c.requests.items()):
                        fams["req"].add_labels({**base, "method": method, "status": status}, n)
                    fams["bytes"].add_labels(base, c.response_bytes)
                    for key, h in (("dur", c.duration), ("updur", c.upstream)):
                        if h is not None and h.count:
                            for le, n in h.cumulative():
                                fams[key].add_labels({**base, "le": le}, n, "_bucket")
                            fams[key].add_labels(base, h.sum, "_sum")
                            fams[key].add_labels(base, h.count, "_count")
                elif c.type.endswith("_error"):
                    for level, n in sorted(c.levels.items()):
                        fams["err"].add_labels({**base, "level": level}, n)
                else:
                    for sev, n in sorted(c.severities.items()):
                        fams["sys"].add_labels({**base, "severity": sev}, n)
                    for (unit, sev), n in sorted(c.unit_severities.items()):
                        fams["sys"].add_labels({**base, "unit": unit, "severity": sev}, n)
            if self.state_file:
                fams["restored"].add_labels({}, self.state_restored)
            for (name, path), lag in sorted(self.lag.items()):
                fams["lag"].add_labels({"log": name, **by_name[name].labels, "path": path}, lag)
        return [f for f in fams.values() if f.samples]
