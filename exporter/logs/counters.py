"""Per-source counters fed by parsed lines, with bounded label values.

Each source keeps plain dicts keyed by already-folded label tuples; a raw-key cache
maps the bytes seen in a line straight to its folded key, so the per-line cost is
one regex match and one dict update (prometheus-client child lookups per line were
twice as slow; FACTS.md).

``to_json`` / ``restore`` carry every value across a restart: the manager writes
them in the same atomic state file as the offsets and cursors they belong to, so the
counters resume exactly where reading resumes.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable
from typing import Any

from exporter.logs import parsers
from exporter.logs.formats import DEFAULT_PARSER, AccessParser, upstream_seconds

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RAW_CACHE_MAX = 4096


class LabelCap:
    """Admits at most ``cap`` distinct values; later new values become ``other``."""

    def __init__(self, cap: int):
        self.cap = cap
        self.seen: set[str] = set()

    def fold(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return "other"
        self.seen.add(value)
        return value


class Histogram:
    """Cumulative-at-render histogram over fixed buckets (seconds)."""

    def __init__(self, buckets: Iterable[float]):
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def cumulative(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for le, n in zip(self.buckets, self.counts, strict=False):
            acc += n
            out.append((repr(le), acc))
        out.append(("+Inf", self.count))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "counts": self.counts, "sum": self.sum, "count": self.count}

    def restore(self, d: dict[str, Any]) -> bool:
        """Take saved values when they were made with the same buckets; False otherwise."""
        if tuple(float(b) for b in d["buckets"]) != self.buckets or len(d["counts"]) != len(self.counts):
            return False
        self.counts = [int(n) for n in d["counts"]]
        self.sum = float(d["sum"])
        self.count = int(d["count"])
        return True


class SourceCounters:
    """Counters for one configured log source (one ``log`` label value)."""

    def __init__(self, name: str, log_type: str, label_cap: int = 50,
                 buckets: Iterable[float] = DEFAULT_BUCKETS, parser: AccessParser | None = None,
                 continuation: tuple[bool, tuple[str, ...]] | None = None, unit_label: bool = False):
        self.name = name
        self.type = log_type
        self.lines = 0
        self.parse_errors = 0
        self.continuations = 0
        self.rotations = 0
        self.read_errors = 0
        self.requests: dict[tuple[str, str], int] = {}
        self.response_bytes = 0
        self.parser = parser or DEFAULT_PARSER
        self.duration = Histogram(buckets)
        self.upstream = Histogram(buckets) if self.parser.has_upstream else None
        self.levels: dict[str, int] = {}
        self.severities: dict[str, int] = {}
        self.unit_label = unit_label
        self.unit_severities: dict[tuple[str, str], int] = {}  # (unit, severity), when unit_label
        self._status_cap = LabelCap(label_cap)
        self._level_cap = LabelCap(label_cap)
        self._unit_cap = LabelCap(label_cap)
        self._raw: dict[tuple[bytes | None, bytes], tuple[str, str]] = {}
        indented, prefixes = continuation if continuation is not None else \
            parsers.DEFAULT_CONTINUATION.get(log_type, (False, ()))
        self._cont_indent = indented
        self._cont_prefixes = tuple(p.encode("utf-8") for p in prefixes)
        self.feed: Callable[[list[bytes]], Any] = {
            "nginx_access": self._feed_access, "apache_access": self._feed_access,
            "syslog": self._feed_syslog,
            "nginx_error": self._feed_nginx_error, "apache_error": self._feed_apache_error,
            "journald": self.feed_journal,
        }[log_type]

    # Continuation lines are recognised only after a line failed to parse, so they cost
    # nothing on the normal path.
    def _continues(self, line: bytes) -> bool:
        if self._cont_indent and line[:1] in (b" ", b"\t"):
            return True
        return bool(self._cont_prefixes) and line.startswith(self._cont_prefixes)

    def _fold_access(self, raw: tuple[bytes | None, bytes]) -> tuple[str, str]:
        method_b, status_b = raw
        method = method_b.decode("ascii") if method_b is not None else "OTHER"
        if method not in parsers.HTTP_METHODS:
            method = "OTHER"
        key = (method, self._status_cap.fold(status_b.decode("ascii")))
        if len(self._raw) >= _RAW_CACHE_MAX:
            self._raw.clear()
        self._raw[raw] = key
        return key

    def _feed_access(self, lines: list[bytes]) -> None:
        p = self.parser
        match = p.regex.match
        groups = p.groups
        scale = p.rt_scale
        raw_cache = self._raw
        requests = self.requests
        hist = self.duration
        buckets = hist.buckets
        counts = hist.counts
        up = self.upstream
        bisect_left = bisect.bisect_left
        errors = conts = 0
        nbytes = 0
        rsum = 0.0
        rcount = 0
        for line in lines:
            m = match(line)
            if m is None:
                if self._continues(line):
                    conts += 1
                else:
                    errors += 1
                continue
            method, status, size, rt, urt = m.group(*groups)
            raw = (method, status)
            key = raw_cache.get(raw)
            if key is None:
                key = self._fold_access(raw)
            requests[key] = requests.get(key, 0) + 1
            if size is not None and size != b"-":
                nbytes += int(size)
            if rt is not None and rt != b"-":
                v = float(rt) * scale
                counts[bisect_left(buckets, v)] += 1
                rsum += v
                rcount += 1
            if urt is not None and up is not None:
                u = upstream_seconds(urt)
                if u is not None:
                    up.counts[bisect_left(up.buckets, u)] += 1
                    up.sum += u
                    up.count += 1
        self.lines += len(lines)
        self.parse_errors += errors
        self.continuations += conts
        self.response_bytes += nbytes
        hist.sum += rsum
        hist.count += rcount

    def _feed_syslog(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_syslog, self.severities)

    def _count_by(self, lines: list[bytes], parse: Callable[[bytes], str | None], counts: dict[str, int]) -> None:
        """Count lines by the one label ``parse`` returns (syslog severity, error level);
        None is a parse error unless the line continues the record before it."""
        errors = conts = 0
        for line in lines:
            key = parse(line)
            if key is None:
                if self._continues(line):
                    conts += 1
                else:
                    errors += 1
                continue
            counts[key] = counts.get(key, 0) + 1
        self.lines += len(lines)
        self.parse_errors += errors
        self.continuations += conts

    def _feed_nginx_error(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_nginx_error, self.levels)

    def _feed_apache_error(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_apache_error, self.levels)

    def feed_journal(self, lines: list[bytes]) -> str | None:
        """Count journal entries (``journalctl --output=json`` lines) by PRIORITY;
        return the cursor of the last entry (None when no line carried one)."""
        loads = json.loads
        cursor = None
        errors = 0
        sev_counts = self.severities
        for line in lines:
            try:
                entry = loads(line)
            except ValueError:
                errors += 1
                continue
            if not isinstance(entry, dict):
                errors += 1
                continue
            c = entry.get("__CURSOR")
            if isinstance(c, str):
                cursor = c
            pri = entry.get("PRIORITY")
            sev = "unknown" if pri is None else parsers.severity_of_priority(pri)
            if sev is None:
                errors += 1
                continue
            if self.unit_label:
                unit = entry.get("_SYSTEMD_UNIT")
                unit = self._unit_cap.fold(unit) if isinstance(unit, str) else ""
                k = (unit, sev)
                self.unit_severities[k] = self.unit_severities.get(k, 0) + 1
            else:
                sev_counts[sev] = sev_counts.get(sev, 0) + 1
        self.lines += len(lines)
        self.parse_errors += errors
        return cursor

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type, "lines": self.lines, "parse_errors": self.parse_errors,
            "continuations": self.continuations, "rotations": self.rotations, "read_errors": self.read_errors,
        }
        if self.type.endswith("_access"):
            d["requests"] = [[m, s, n] for (m, s), n in self.requests.items()]
            d["response_bytes"] = self.response_bytes
            d["duration"] = self.duration.to_json()
            if self.upstream is not None:
                d["upstream"] = self.upstream.to_json()
        elif self.type.endswith("_error"):
            d["levels"] = self.levels
        else:
            d["severities"] = self.severities
            if self.unit_label:
                d["unit_severities"] = [[u, s, n] for (u, s), n in self.unit_severities.items()]
        return d

    def restore(self, d: dict[str, Any]) -> bool:
        """Continue from saved values (same source type); False when they do not fit."""
        if d.get("type") != self.type:
            return False
        self.lines = int(d["lines"])
        self.parse_errors = int(d["parse_errors"])
        self.continuations = int(d.get("continuations", 0))
        self.rotations = int(d["rotations"])
        self.read_errors = int(d["read_errors"])
        for m, s, n in d.get("requests", []):
            self.requests[(str(m), str(s))] = int(n)
            if s != "other":
                self._status_cap.seen.add(str(s))
        self.response_bytes = int(d.get("response_bytes", 0))
        if "duration" in d:
            self.duration.restore(d["duration"])
        if "upstream" in d and self.upstream is not None:
            self.upstream.restore(d["upstream"])
        for k, n in (d.get("levels") or {}).items():
            self.levels[str(k)] = int(n)
        for k, n in (d.get("severities") or {}).items():
            self.severities[str(k)] = int(n)
        for u, s, n in d.get("unit_severities", []):
            if self.unit_label:
                self.unit_severities[(str(u), str(s))] = int(n)
                if u != "other":
                    self._unit_cap.seen.add(str(u))
        return True
