"""Per-source counters fed by parsed lines, with bounded label values.

Each source keeps plain dicts keyed by already-folded label tuples; a raw-key cache
maps the bytes seen in a line straight to its folded key, so the per-line cost is
one regex match and one dict update (prometheus-client child lookups per line were
twice as slow; FACTS.md).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from exporter.logs import parsers

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


class SourceCounters:
    """Counters for one configured log source (one ``log`` label value)."""

    def __init__(self, name: str, log_type: str, label_cap: int = 50,
                 buckets: Iterable[float] = DEFAULT_BUCKETS):
        self.name = name
        self.type = log_type
        self.lines = 0
        self.parse_errors = 0
        self.rotations = 0
        self.read_errors = 0
        self.requests: dict[tuple[str, str], int] = {}
        self.response_bytes = 0
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self.hist = [0] * (len(self.buckets) + 1)
        self.hist_sum = 0.0
        self.hist_count = 0
        self.levels: dict[str, int] = {}
        self.severities: dict[str, int] = {}
        self._status_cap = LabelCap(label_cap)
        self._level_cap = LabelCap(label_cap)
        self._raw: dict[tuple[bytes | None, bytes], tuple[str, str]] = {}
        self.feed = {
            "nginx_access": self._feed_access, "apache_access": self._feed_access,
            "syslog": self._feed_syslog,
            "nginx_error": self._feed_nginx_error, "apache_error": self._feed_apache_error,
        }[log_type]

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
        match = parsers.ACCESS_RE.match
        raw_cache = self._raw
        requests = self.requests
        buckets = self.buckets
        hist = self.hist
        bisect_left = bisect.bisect_left
        errors = 0
        nbytes = 0
        rsum = 0.0
        rcount = 0
        for line in lines:
            m = match(line)
            if m is None:
                errors += 1
                continue
            method, status, size, _, _, rt = m.groups()
            raw = (method, status)
            key = raw_cache.get(raw)
            if key is None:
                key = self._fold_access(raw)
            requests[key] = requests.get(key, 0) + 1
            if size != b"-":
                nbytes += int(size)
            if rt is not None:
                v = float(rt)
                hist[bisect_left(buckets, v)] += 1
                rsum += v
                rcount += 1
        self.lines += len(lines)
        self.parse_errors += errors
        self.response_bytes += nbytes
        self.hist_sum += rsum
        self.hist_count += rcount

    def _feed_syslog(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_syslog, self.severities)

    def _count_by(self, lines: list[bytes], parse, counts: dict[str, int]) -> None:  # noqa: ANN001
        """Count lines by the one label ``parse`` returns (syslog severity, error level);
        None is a parse error."""
        errors = 0
        for line in lines:
            key = parse(line)
            if key is None:
                errors += 1
                continue
            counts[key] = counts.get(key, 0) + 1
        self.lines += len(lines)
        self.parse_errors += errors

    def _feed_nginx_error(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_nginx_error, self.levels)

    def _feed_apache_error(self, lines: list[bytes]) -> None:
        self._count_by(lines, parsers.parse_apache_error, self.levels)

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for le, n in zip(self.buckets, self.hist, strict=False):
            acc += n
            out.append((repr(le), acc))
        out.append(("+Inf", self.hist_count))
        return out
