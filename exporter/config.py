"""The exporter's YAML config: load, validate, and report every error with file,
line and key (``config.yml:12: logs[0].type: must be one of ...``).

The file's shape is declared once, in ``docs/schemas/exporter.schema.json``: the schema editors
complete from (``deploy/fleet-exporter.yml`` points at it) and the one ``parse_config`` checks
through ``fleetmon.schema``, on YAML read by ``fleetmon.yamldoc``. Its ``collectors`` part is
generated from the collector table (``collectors_schema``; ``python -m exporter.config`` rewrites
it, and a test proves the published file matches). What a schema cannot say is checked here,
after it: log formats and regular expressions compile, label names are not reserved, log names
are unique, and durations written as text (``30s``) are within the bound the schema sets for numbers.

Validation collects all problems rather than stopping at the first one; the CLI prints them
and exits non-zero.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.collectors import REGISTRY
from exporter.logs.counters import DEFAULT_BUCKETS
from exporter.logs.formats import FormatError, compile_format, dialect_of
from exporter.logs.parsers import LOG_TYPES
from fleetmon import durations, schema, yamldoc

DEFAULT_PORT = 9847
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"


class ConfigError(Exception):
    """One or more problems in a config file; ``problems`` are "file:line: key: message"."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ExporterConfig:
    listen: str = DEFAULT_LISTEN
    web_config_file: str | None = None
    proc_path: str = "/proc"
    sys_path: str = "/sys"
    rootfs_path: str = "/"
    udev_data_path: str = "/run/udev/data"
    collector_timeout: float = 5.0
    # The /metrics server's bounds (exporter/server.py): connections served at once, and
    # seconds for a request to arrive and its response to be taken.
    web_max_requests: int = 10
    web_request_timeout: float = 30.0
    collectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    tailing: dict[str, Any] = field(default_factory=dict)
    zk: dict[str, Any] | None = None


TAILING_DEFAULTS: dict[str, Any] = {
    "state_file": None, "poll_interval": 0.5, "max_line_bytes": 1024 * 1024, "label_cap": 50,
    "max_files": 100, "rotate_grace": 30.0,
}
# The labels the log counters set themselves: a user label of the same name would collide.
RESERVED_LABELS = ("log", "method", "status", "level", "severity", "path", "le")
# Keys holding seconds: a number, or a duration (fleetmon.durations) such as 30s or 1m30s.
SECONDS_KEYS = (("collector_timeout",), ("web_request_timeout",), ("tailing", "poll_interval"),
                ("tailing", "rotate_grace"))
_SCALAR_KEYS = ("listen", "web_config_file", "proc_path", "sys_path", "rootfs_path", "udev_data_path",
                "web_max_requests")
_ACCESS_TYPES = tuple(t for t in LOG_TYPES if t.endswith("_access"))

Path_ = tuple[Any, ...]
Bad = Callable[[Path_, str], None]


class Problems:
    """The problems of one config file: every way it breaks its schema, then those found by
    the checks made after the schema (``add``), as "file:line: key: message" in line order."""

    def __init__(self, path: str, schema_name: str, data: Any, duplicates: list[tuple[Any, int]]):
        self.path = path
        self.data = data
        self.found: list[tuple[Path_, str]] = [(p.path, p.message) for p in schema.check(schema_name, data)]
        self._refused = [at for at, _ in self.found]
        self.duplicates = duplicates

    def add(self, at: Path_, message: str) -> None:
        # A key the schema already refused (or one inside it) has nothing more to check.
        if not any(at[:len(r)] == r or r[:len(at)] == at for r in self._refused):
            self.found.append((at, message))

    def raise_any(self) -> None:
        found = [(yamldoc.line_at(self.data, at), yamldoc.keyname(at), message) for at, message in self.found]
        found += [(line, str(key), "duplicate key (given twice in the same mapping)")
                  for key, line in self.duplicates]
        if found:
            found.sort(key=lambda p: p[0])
            raise ConfigError([f"{self.path}:{line}: {key}: {message}" for line, key, message in found])


def load_config(path: str) -> ExporterConfig:
    """Read and validate ``path``; raise ConfigError naming file, line and key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror or exc}"]) from exc
    return parse_config(text, path)


def parse_config(text: str, path: str = "<config>") -> ExporterConfig:
    """Validate config ``text`` (read from ``path``): the schema first, then the checks it cannot make."""
    loaded = yamldoc.load_text(text)
    if loaded.error:
        line, message = loaded.error
        raise ConfigError([f"{path}:{line or 1}: {message}"])
    data = {} if loaded.data is None else loaded.data
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping of keys"])

    problems = Problems(path, "exporter", data, loaded.duplicates)
    _check_seconds(data, problems.add)
    _check_collectors(data, problems.add)
    parsers = _check_logs(data, problems.add)
    problems.raise_any()
    return _build(data, parsers)


def _check_seconds(data: dict[str, Any], bad: Bad) -> None:
    """Durations written as text get the bound the schema puts on numbers (it cannot bound text)."""
    for at in SECONDS_KEYS:
        node = yamldoc.value_at(data, at)
        if isinstance(node, str) and durations.is_duration(node):
            d = schema.subschema("exporter", at)
            number = next(s for s in d["anyOf"] if s.get("type") == "number")
            seconds = durations.parse(node)
            if seconds <= number.get("exclusiveMinimum", float("-inf")) or seconds < number.get("minimum", 0):
                bad(at, d["x-error"])


def _check_collectors(data: dict[str, Any], bad: Bad) -> None:
    colls = data.get("collectors")
    for name, conf in colls.items() if isinstance(colls, dict) else ():
        if name not in REGISTRY or not isinstance(conf, dict):
            continue
        for opt, v in conf.items():
            if opt in REGISTRY[name].options and opt.endswith(("_exclude", "_include")) and isinstance(v, str) and v:
                try:
                    re.compile(v)
                except re.error as exc:
                    bad(("collectors", name, opt), f"invalid regular expression: {exc}")


def _check_logs(data: dict[str, Any], bad: Bad) -> dict[int, Any]:
    """Formats compile, labels are not reserved, names are unique; the compiled parser of each logs[i]."""
    parsers: dict[int, Any] = {}
    seen: set[str] = set()
    logs = data.get("logs")
    for i, entry in enumerate(logs) if isinstance(logs, list) else ():
        if not isinstance(entry, dict):
            continue
        at = ("logs", i)
        typ = entry.get("type")
        if typ in _ACCESS_TYPES:
            upstream = entry.get("upstream_histogram") is True
            fmt = entry.get("format")
            if isinstance(fmt, str) and fmt.strip():
                try:
                    parsers[i] = compile_format(fmt.strip(), dialect_of(typ), upstream=upstream)
                except FormatError as exc:
                    bad(at + ("format",), str(exc))
            elif fmt is None and upstream:
                bad(at + ("upstream_histogram",), "needs a format: with $upstream_response_time")
        labels = entry.get("labels")
        if isinstance(labels, dict):
            if set(labels) & set(RESERVED_LABELS):
                bad(at + ("labels",), f"must not use the reserved names {', '.join(RESERVED_LABELS)}")
            elif entry.get("unit_label") is True and "unit" in labels:
                bad(at + ("labels",), "must not use the name unit together with unit_label: true")
        name = entry.get("name", "")
        name = name or ("journald" if typ == "journald" else entry.get("path"))
        if isinstance(name, str) and name:
            if name in seen:
                bad(at + ("name",), f"duplicate log name {name!r}")
            seen.add(name)
    return parsers


def _build(data: dict[str, Any], parsers: dict[int, Any]) -> ExporterConfig:
    """The ExporterConfig of a config that passed every check."""
    cfg = ExporterConfig()
    for k in _SCALAR_KEYS:
        if k in data:
            setattr(cfg, k, data[k])
    for k in ("collector_timeout", "web_request_timeout"):
        if k in data:
            setattr(cfg, k, float(durations.parse(data[k])))
    for name, conf in (data.get("collectors") or {}).items():
        if isinstance(conf, bool):
            cfg.collectors[name] = {"enabled": conf}
            continue
        options = REGISTRY[name].options
        cfg.collectors[name] = {opt: float(v) if opt != "enabled" and options[opt][1] is float else v
                                for opt, v in (conf or {}).items()}
    for i, entry in enumerate(data.get("logs") or []):
        cfg.logs.append(_log_source(entry, parsers.get(i)))
    cfg.tailing = dict(TAILING_DEFAULTS)
    for k, v in (data.get("tailing") or {}).items():
        cfg.tailing[k] = float(durations.parse(v)) if ("tailing", k) in SECONDS_KEYS else v
    if data.get("zk") is not None:
        cfg.zk = dict(data["zk"])
    return cfg


def _log_source(entry: dict[str, Any], parser: Any) -> dict[str, Any]:
    """One valid ``logs[]`` entry as the log manager takes it (exporter/logs/manager.py)."""
    typ = entry["type"]
    out: dict[str, Any] = {"path": entry.get("path", ""), "type": typ, "name": entry.get("name", ""),
                           "labels": {k: str(v) for k, v in (entry.get("labels") or {}).items()},
                           "start_at": entry.get("start_at", "end"),
                           "buckets": tuple(entry.get("buckets", DEFAULT_BUCKETS))}
    if parser is not None:
        out["parser"] = parser
    multiline = entry.get("multiline", True)
    if multiline is False:
        out["continuation"] = (False, ())
    elif isinstance(multiline, dict):
        out["continuation"] = (multiline.get("indented", True), tuple(multiline.get("prefixes", [])))
    if "fallback" in entry:
        out["fallback"] = entry["fallback"]
    if typ == "journald" or out.get("fallback") == "journald":
        for k in ("directory", "journalctl", "unit_label"):
            if k in entry:
                out[k] = entry[k]
        out["matches"] = tuple(entry.get("matches", []))
    return out


def collectors_schema() -> dict[str, Any]:
    """The exporter schema's definitions made from the collector table: ``collectors`` (one key
    per collector: true, false or its options) and ``collector.NAME`` for each collector, its
    options typed as their flags are. Separate definitions keep the compiled validator small:
    fastjsonschema repeats a definition's whole text at each of its error sites."""
    out: dict[str, Any] = {"collectors": {
        "description": "Host collectors by name (node_exporter's). Each is on unless set to false; "
                       "a mapping sets its options.",
        "type": ["object", "null"],
        "x-error": "must be a mapping of collector name to settings",
        "properties": {name: {"$ref": f"#/definitions/collector.{name}"} for name in REGISTRY},
        "additionalProperties": False,
        "x-unknown": f"unknown collector (known: {', '.join(REGISTRY)})",
    }}
    for name, cls in REGISTRY.items():
        options: dict[str, Any] = {"enabled": {
            "description": f"Run the {name} collector (default: {'on' if cls.default_enabled else 'off'}).",
            "type": "boolean", "x-error": "must be true or false"}}
        for opt, spec in cls.options.items():
            kind = spec[1]
            if kind is bool:
                typed: dict[str, Any] = {"type": "boolean", "x-error": "must be true or false"}
            elif kind is float:
                typed = {"type": "number", "exclusiveMinimum": 0, "x-error": "must be a positive number"}
            else:
                typed = {"type": "string", "x-error": "must be a string"}
            options[opt] = {"description": spec[2], **typed}
        out[f"collector.{name}"] = {
            "description": f"{cls.description} true or false switches it on or off; a mapping sets its options.",
            "type": ["boolean", "object", "null"],
            "x-error": "must be true, false or a mapping of options",
            "properties": options,
            "additionalProperties": False,
            "x-unknown": f"unknown option (known: {', '.join(options)})",
        }
    return out


def write_collectors_schema(path: Path) -> None:
    """Rewrite the collector definitions of the exporter schema at ``path`` from the collector table."""
    published = json.loads(path.read_text(encoding="utf-8"))
    kept = {k: v for k, v in published["definitions"].items() if k != "collectors" and not k.startswith("collector.")}
    published["definitions"] = {**kept, **collectors_schema()}
    path.write_text(json.dumps(published, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def parse_log_flag(value: str) -> dict[str, Any]:
    """``TYPE:PATH`` (``--log nginx_access:/var/log/nginx/access.log``), ``journald`` or
    ``journald:DIRECTORY`` -> a logs entry."""
    typ, sep, path = value.partition(":")
    base = {"name": "", "labels": {}, "start_at": "end", "buckets": DEFAULT_BUCKETS}
    if typ == "journald":
        if sep and not path:
            raise ValueError(f"--log {value!r}: expected journald or journald:DIRECTORY")
        return {**base, "path": "", "type": "journald", **({"directory": path} if path else {})}
    if not sep or typ not in LOG_TYPES or not path:
        raise ValueError(f"--log {value!r}: expected TYPE:PATH with TYPE one of {', '.join(LOG_TYPES)}, "
                         "or journald[:DIRECTORY]")
    return {**base, "path": path, "type": typ}


if __name__ == "__main__":
    # After adding a collector or an option: python -m exporter.config [docs/schemas/exporter.schema.json]
    write_collectors_schema(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas/exporter.schema.json"))
