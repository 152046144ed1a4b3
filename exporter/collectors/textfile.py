"""textfile collector: site-specific metrics from *.prom files in a directory, as
node_exporter 1.5's textfile collector reads and re-exposes them (written atomically
by cron jobs).

The files are parsed here by the rules of the Prometheus text format as Go's expfmt
parser applies them, not by prometheus_client's parser: that one renames counters to
``<name>_total`` and drops samples named ``*_created``, which node_exporter keeps. As
node_exporter: a family without HELP gets ``Metric read from <path>``; label names
missing from some samples of a family are filled with ""; a file with a syntax error
or client-side timestamps is skipped whole and sets ``node_textfile_scrape_error``;
``node_textfile_mtime_seconds{file=<path>}`` holds whole seconds.
"""

from __future__ import annotations

import logging
import math
import os
import re

from exporter.collectors.base import Collector
from exporter.metrics import Family, format_value

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ParseError(ValueError):
    pass


class _Fam:
    __slots__ = ("name", "type", "help", "metrics")

    def __init__(self, name: str, mtype: str = "untyped"):
        self.name = name
        self.type = mtype
        self.help: str | None = None
        # label tuple (sorted, without le/quantile) -> {"value"|"sum"|"count"|("b", le)|("q", q): float}
        self.metrics: dict[tuple[tuple[str, str], ...], dict] = {}


def _unescape(s: str, quotes: bool) -> str:
    def sub(m: re.Match) -> str:
        c = m.group(1)
        if c == "n":
            return "\n"
        if c == "\\":
            return "\\"
        if c == '"' and quotes:
            return '"'
        raise ParseError(f"invalid escape sequence \\{c}")
    return re.sub(r"\\(.)", sub, s)


def _parse_labels(text: str, pos: int, lineno: int) -> tuple[list[tuple[str, str]], int]:
    labels: list[tuple[str, str]] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == "}":
            return labels, pos + 1
        m = _LABEL.match(text, pos)
        if not m:
            raise ParseError(f"line {lineno}: invalid label name")
        name = m.group(0)
        pos = m.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos + 1 >= n or text[pos] != "=" or text[pos + 1] != '"':
            raise ParseError(f"line {lineno}: expected =\" after label name {name}")
        pos += 2
        start = pos
        while pos < n and text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        if pos >= n:
            raise ParseError(f"line {lineno}: unterminated label value")
        value = _unescape(text[start:pos], quotes=True)
        pos += 1
        if any(k == name for k, _ in labels):
            raise ParseError(f"line {lineno}: duplicate label {name}")
        labels.append((name, value))
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
        elif pos < n and text[pos] == "}":
            return labels, pos + 1
        else:
            raise ParseError(f"line {lineno}: expected , or }} in label set")


def _float(tok: str, lineno: int) -> float:
    try:
        return float(tok)
    except ValueError:
        raise ParseError(f"line {lineno}: invalid value {tok!r}") from None


def parse(text: str) -> dict[str, _Fam]:
    """Families of a text-format file; raises ParseError (with the line) on any fault."""
    fams: dict[str, _Fam] = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t")
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].lstrip(" \t").split(None, 2)
            if len(parts) < 2 or parts[0] not in ("HELP", "TYPE"):
                continue
            name = parts[1]
            if not _NAME.fullmatch(name):
                raise ParseError(f"line {lineno}: invalid metric name {name!r}")
            fam = fams.get(name)
            if parts[0] == "HELP":
                if fam is not None and fam.help is not None:
                    raise ParseError(f"line {lineno}: second HELP line for {name}")
                fam = fam or fams.setdefault(name, _Fam(name))
                fam.help = _unescape(parts[2] if len(parts) > 2 else "", quotes=False)
            else:
                mtype = parts[2].strip() if len(parts) > 2 else ""
                if mtype not in _TYPES:
                    raise ParseError(f"line {lineno}: unknown metric type {mtype!r}")
                if fam is not None and (fam.metrics or fam.type != "untyped"):
                    raise ParseError(f"line {lineno}: TYPE for {name} after its samples or twice")
                fam = fam or fams.setdefault(name, _Fam(name))
                fam.type = mtype
            continue
        m = _NAME.match(line)
        if not m:
            raise ParseError(f"line {lineno}: invalid metric name")
        name = m.group(0)
        pos = m.end()
        labels: list[tuple[str, str]] = []
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos + 1, lineno)
        rest = line[pos:].split()
        if not rest or (pos < len(line) and line[pos] not in " \t"):
            raise ParseError(f"line {lineno}: expected a value after {name}")
        if len(rest) > 2:
            raise ParseError(f"line {lineno}: unexpected text after the value")
        if len(rest) == 2:
            raise ParseError(f"line {lineno}: client-side timestamps are not supported")
        value = _float(rest[0], lineno)
        fam, key = _family_of(fams, name)
        special = {"histogram": "le", "summary": "quantile"}.get(fam.type)
        bound = None
        if special and key == "bucket" or (fam.type == "summary" and key == "value"):
            found = [v for k, v in labels if k == special]
            if not found:
                raise ParseError(f"line {lineno}: {name} lacks its {special} label")
            bound = _float(found[0], lineno)
        ident = tuple(sorted((k, v) for k, v in labels if not (special and k == special)))
        slot = fam.metrics.setdefault(ident, {})
        if key == "bucket":
            slot[("b", bound)] = value
        elif fam.type == "summary" and key == "value":
            slot[("q", bound)] = value
        else:
            slot[key] = value
    return fams


def _family_of(fams: dict[str, _Fam], name: str) -> tuple[_Fam, str]:
    fam = fams.get(name)
    if fam is not None and fam.type != "histogram":
        return fam, "value"
    for suffix, key in (("_bucket", "bucket"), ("_sum", "sum"), ("_count", "count")):
        if name.endswith(suffix):
            base = fams.get(name[: -len(suffix)])
            if base is not None and (base.type == "histogram" or (base.type == "summary" and key != "bucket")):
                return base, key
    if fam is None:
        fam = fams[name] = _Fam(name)
    return fam, "value"


def to_families(parsed: dict[str, _Fam], path: str) -> list[Family]:
    """Re-expose parsed families as node_exporter does (const metrics per sample)."""
    out = []
    for f in parsed.values():
        if not f.metrics:
            continue
        names = sorted({k for ident in f.metrics for k, _ in ident})
        fam = Family(f.name, f.type, f.help if f.help is not None else f"Metric read from {path}")
        for ident, slot in f.metrics.items():
            d = dict(ident)
            labels = {k: d.get(k, "") for k in names}
            if f.type == "histogram":
                buckets = sorted((k[1], v) for k, v in slot.items() if isinstance(k, tuple))
                count = slot.get("count", 0.0)
                if not buckets or not math.isinf(buckets[-1][0]):
                    buckets.append((math.inf, count))
                for le, v in buckets:
                    fam.add_labels({**labels, "le": format_value(le)}, v, "_bucket")
                fam.add_labels(labels, slot.get("sum", 0.0), "_sum")
                fam.add_labels(labels, count, "_count")
            elif f.type == "summary":
                for q, v in sorted((k[1], v) for k, v in slot.items() if isinstance(k, tuple)):
                    fam.add_labels({**labels, "quantile": format_value(q)}, v)
                fam.add_labels(labels, slot.get("sum", 0.0), "_sum")
                fam.add_labels(labels, slot.get("count", 0.0), "_count")
            else:
                fam.add_labels(labels, slot.get("value", 0.0))
        out.append(fam)
    return out


class TextfileCollector(Collector):
    name = "textfile"
    description = "Metrics from *.prom files in a directory (site-specific metrics)."
    families = ("node_textfile_mtime_seconds", "node_textfile_scrape_error", "<your metrics>")
    options = {
        "directory": ("", str, "Directory to read *.prom files from (empty: collector yields only its error gauge)."),
    }

    def __init__(self, roots, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._cache: dict[str, tuple[tuple[int, int, int, int], list[Family]]] = {}

    def collect(self) -> list[Family]:
        directory = self.opts["directory"]
        error = 0
        out: list[Family] = []
        seen: dict[str, Family] = {}
        mtime = Family("node_textfile_mtime_seconds", "gauge", "Unixtime mtime of textfiles successfully read.",
                       ("file",))
        names: list[str] = []
        if directory:
            try:
                names = sorted(n for n in os.listdir(directory) if n.endswith(".prom"))
            except OSError as exc:
                log.error("failed to read textfile collector directory %s: %s", directory, exc.strerror or exc)
                error = 1
        cache: dict[str, tuple[tuple[int, int, int, int], list[Family]]] = {}
        for name in names:
            path = os.path.normpath(os.path.join(directory, name))
            try:
                st = os.stat(path)
                # Files are replaced by rename (or rewritten, which moves mtime or size): an
                # unchanged (device, inode, mtime, size) is the same content, parsed already.
                key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
                hit = self._cache.get(path)
                if hit is not None and hit[0] == key:
                    fams = hit[1]
                else:
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        fams = to_families(parse(fh.read()), path)
            except (OSError, ParseError) as exc:  # a bad file must not fail the scrape
                log.warning("textfile %s: %s", path, exc)
                error = 1
                continue
            cache[path] = (key, fams)
            bad = [f.name for f in fams if f.name in seen and seen[f.name].type != f.type]
            if bad or any(f.name.startswith("node_textfile_") for f in fams):
                log.warning("textfile %s: conflicting metric families %s", path, bad)
                error = 1
                continue
            for f in fams:
                prev = seen.get(f.name)
                if prev is None:
                    seen[f.name] = f
                    out.append(f)
                    continue
                # Merge into a copy: the cached families are shared between scrapes.
                merged = Family(prev.name, prev.type, prev.help)
                merged.samples = prev.samples + f.samples
                seen[f.name] = merged
                out[out.index(prev)] = merged
            mtime.add((path,), int(st.st_mtime))
        self._cache = cache
        if mtime.samples:
            out.append(mtime)
        out.append(Family("node_textfile_scrape_error", "gauge",
                          "1 if there was an error opening or reading a file, 0 otherwise").add((), error))
        return out
