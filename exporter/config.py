"""The exporter's YAML config: load, validate, and report every error with file,
line and key (``config.yml:12: logs[0].type: must be one of ...``).

Validation collects all problems rather than stopping at the first one; the CLI
prints them and exits non-zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from exporter.collectors import REGISTRY
from exporter.logs.counters import DEFAULT_BUCKETS
from exporter.logs.formats import FormatError, compile_format, dialect_of
from exporter.logs.parsers import LOG_TYPES
from fleetmon import strictyaml

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


class _Doc:
    """A YAML document with the line number of every key and item."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.lines: dict[tuple, int] = {}
        # Only `true`/`false` are booleans: `enabled: off` stays a string and is reported.
        node = strictyaml.compose(text)
        self.data = self._walk(node, ()) if node is not None else {}

    def _walk(self, node: yaml.Node, at: tuple) -> Any:
        self.lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = yaml.safe_load(yaml.serialize(k)) if not isinstance(k, yaml.ScalarNode) else k.value
                self.lines[at + (key,)] = k.start_mark.line + 1
                out[key] = self._walk(v, at + (key,))
                self.lines[at + (key,)] = k.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(v, at + (i,)) for i, v in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))

    def line(self, at: tuple) -> int:
        while at and at not in self.lines:
            at = at[:-1]
        return self.lines.get(at, 1)


def _keyname(at: tuple) -> str:
    s = ""
    for p in at:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def _listen_ok(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    host, sep, port = v.rpartition(":")
    return bool(sep) and port.isdigit() and 0 < int(port) < 65536


def load_config(path: str) -> ExporterConfig:
    """Read and validate ``path``; raise ConfigError naming file, line and key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror or exc}"]) from exc
    return parse_config(text, path)


def parse_config(text: str, path: str = "<config>") -> ExporterConfig:
    try:
        doc = _Doc(path, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: invalid YAML: {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from exc
    problems: list[str] = []

    def bad(at: tuple, msg: str) -> None:
        problems.append(f"{path}:{doc.line(at)}: {_keyname(at)}: {msg}")

    data = doc.data
    cfg = ExporterConfig()
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping of keys"])
    known = {"listen", "web_config_file", "proc_path", "sys_path", "rootfs_path", "udev_data_path",
             "collector_timeout", "collectors", "logs", "tailing", "zk", "web_max_requests", "web_request_timeout"}
    for k in data:
        if k not in known:
            bad((k,), f"unknown key (known: {', '.join(sorted(known))})")

    if "listen" in data:
        if _listen_ok(data["listen"]):
            cfg.listen = data["listen"]
        else:
            bad(("listen",), "must be HOST:PORT, e.g. 0.0.0.0:9847")
    for k in ("web_config_file", "proc_path", "sys_path", "rootfs_path", "udev_data_path"):
        if k in data:
            if isinstance(data[k], str) and data[k]:
                setattr(cfg, k, data[k])
            else:
                bad((k,), "must be a non-empty string (a path)")
    if "collector_timeout" in data:
        v = data["collector_timeout"]
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            cfg.collector_timeout = float(v)
        else:
            bad(("collector_timeout",), "must be a positive number of seconds")

    if "web_max_requests" in data:
        v = data["web_max_requests"]
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            cfg.web_max_requests = v
        else:
            bad(("web_max_requests",), "must be a positive integer (connections served at once)")
    if "web_request_timeout" in data:
        v = data["web_request_timeout"]
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0.1:
            cfg.web_request_timeout = float(v)
        else:
            bad(("web_request_timeout",), "must be a number of seconds >= 0.1")

    colls = data.get("collectors") or {}
    if not isinstance(colls, dict):
        bad(("collectors",), "must be a mapping of collector name to settings")
        colls = {}
    for name, conf in colls.items():
        at = ("collectors", name)
        cls = REGISTRY.get(name)
        if cls is None:
            bad(at, f"unknown collector (known: {', '.join(REGISTRY)})")
            continue
        if isinstance(conf, bool):
            cfg.collectors[name] = {"enabled": conf}
            continue
        if conf is None:
            conf = {}
        if not isinstance(conf, dict):
            bad(at, "must be true, false or a mapping of options")
            continue
        out: dict[str, Any] = {}
        for opt, v in conf.items():
            if opt == "enabled":
                if isinstance(v, bool):
                    out["enabled"] = v
                else:
                    bad(at + (opt,), "must be true or false")
                continue
            spec = cls.options.get(opt)
            if spec is None:
                known_opts = ", ".join(["enabled", *cls.options])
                bad(at + (opt,), f"unknown option (known: {known_opts})")
                continue
            typ = spec[1]
            if typ is bool:
                if isinstance(v, bool):
                    out[opt] = v
                else:
                    bad(at + (opt,), "must be true or false")
                continue
            if typ is float and isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                out[opt] = float(v)
            elif typ is str and isinstance(v, str):
                if opt.endswith(("_exclude", "_include")) and v:
                    try:
                        re.compile(v)
                    except re.error as exc:
                        bad(at + (opt,), f"invalid regular expression: {exc}")
                        continue
                out[opt] = v
            else:
                bad(at + (opt,), f"must be a {'positive number' if typ is float else 'string'}")
        cfg.collectors[name] = out

    logs = data.get("logs") or []
    if not isinstance(logs, list):
        bad(("logs",), "must be a list of {path, type, name, labels, start_at}")
        logs = []
    for i, entry in enumerate(logs):
        at = ("logs", i)
        if not isinstance(entry, dict):
            bad(at, "must be a mapping with path and type")
            continue
        for k in entry:
            if k not in LOG_KEYS:
                bad(at + (k,), f"unknown key (known: {', '.join(LOG_KEYS)})")
        problems_before = len(problems)
        journald = entry.get("type") == "journald"
        if journald:
            if "path" in entry:
                bad(at + ("path",), "not used by journald sources (use directory: for a journal directory)")
        elif not isinstance(entry.get("path"), str) or not entry.get("path"):
            bad(at + ("path",), "required: a file path or glob")
        if entry.get("type") not in LOG_TYPES:
            bad(at + ("type",), f"must be one of {', '.join(LOG_TYPES)}")
        extra = _log_source_options(entry, at, bad)
        if "name" in entry and not (isinstance(entry["name"], str) and entry["name"]):
            bad(at + ("name",), "must be a non-empty string")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) and not k.startswith("__")
                for k in labels):
            bad(at + ("labels",), "must map label names ([a-zA-Z_][a-zA-Z0-9_]*) to values")
        elif set(labels) & {"log", "method", "status", "level", "severity", "path", "le"}:
            bad(at + ("labels",), "must not use the reserved names log, method, status, level, severity, path, le")
        elif entry.get("unit_label") is True and "unit" in labels:
            bad(at + ("labels",), "must not use the name unit together with unit_label: true")
        if entry.get("start_at", "end") not in ("end", "beginning"):
            bad(at + ("start_at",), "must be end or beginning")
        buckets = entry.get("buckets", list(DEFAULT_BUCKETS))
        if not (isinstance(buckets, list) and buckets
                and all(isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in buckets)):
            bad(at + ("buckets",), "must be a non-empty list of positive numbers (seconds)")
        if len(problems) == problems_before:
            cfg.logs.append({"path": entry.get("path", ""), "type": entry["type"], "name": entry.get("name", ""),
                             "labels": {k: str(v) for k, v in labels.items()},
                             "start_at": entry.get("start_at", "end"), "buckets": tuple(buckets), **extra})
    names = [e["name"] or ("journald" if e["type"] == "journald" else e["path"]) for e in cfg.logs]
    for i, n in enumerate(names):
        if names.index(n) != i:
            bad(("logs", i, "name"), f"duplicate log name {n!r}")

    tailing = data.get("tailing") or {}
    cfg.tailing = dict(TAILING_DEFAULTS)
    if not isinstance(tailing, dict):
        bad(("tailing",), "must be a mapping")
        tailing = {}
    for k, v in tailing.items():
        at = ("tailing", k)
        if k not in TAILING_DEFAULTS:
            bad(at, f"unknown key (known: {', '.join(TAILING_DEFAULTS)})")
        elif k == "state_file":
            if v is None or (isinstance(v, str) and v):
                cfg.tailing[k] = v
            else:
                bad(at, "must be a path")
        elif k in ("poll_interval", "rotate_grace"):
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                cfg.tailing[k] = float(v)
            else:
                bad(at, "must be a positive number of seconds")
        elif isinstance(v, int) and not isinstance(v, bool) and v > 0:
            cfg.tailing[k] = v
        else:
            bad(at, "must be a positive integer")

    zk = data.get("zk")
    if zk is not None:
        if not isinstance(zk, dict):
            bad(("zk",), "must be a mapping {hosts, root, name, address, labels}")
        else:
            known = ("hosts", "root", "name", "address", "labels", "security_dir", "insecure")
            for k in zk:
                if k not in known:
                    bad(("zk", k), f"unknown key (known: {', '.join(known)})")
            if "security_dir" in zk and not (isinstance(zk["security_dir"], str) and zk["security_dir"]):
                bad(("zk", "security_dir"), "must be the directory holding registrar.credential, acl-ids and ca.pem")
            if "insecure" in zk and not isinstance(zk["insecure"], bool):
                bad(("zk", "insecure"), "must be true or false (unquoted)")
            if "hosts" in zk and (not isinstance(zk["hosts"], str) or not zk["hosts"]):
                bad(("zk", "hosts"), "must be a ZooKeeper connect string host:port[,host:port]")
            if "root" in zk and not (isinstance(zk["root"], str) and zk["root"].startswith("/")):
                bad(("zk", "root"), "must be an absolute znode path like /fleetmon")
            for k in ("name", "address"):
                if k in zk and not (isinstance(zk[k], str) and zk[k]):
                    bad(("zk", k), "must be a non-empty string")
            if "labels" in zk and not (isinstance(zk["labels"], dict)
                                       and all(isinstance(k, str) for k in zk["labels"])):
                bad(("zk", "labels"), "must be a mapping of label names to values")
            cfg.zk = dict(zk)
    if problems:
        raise ConfigError(problems)
    return cfg


LOG_KEYS = ("path", "type", "name", "labels", "start_at", "buckets", "format", "upstream_histogram",
            "multiline", "fallback", "directory", "matches", "unit_label", "journalctl")
_JOURNAL_MATCH = re.compile(r"[A-Z0-9_]+=.*|\+", re.S)


def _log_source_options(entry: dict[str, Any], at: tuple, bad: Any) -> dict[str, Any]:
    """The per-type options of one ``logs[]`` entry, validated; problems go to ``bad``."""
    typ = entry.get("type")
    out: dict[str, Any] = {}
    access = isinstance(typ, str) and typ.endswith("_access")

    def only(keys: tuple[str, ...], ok: bool, what: str) -> None:
        for k in keys:
            if k in entry and not ok:
                bad(at + (k,), f"only for {what}")

    only(("format", "upstream_histogram"), access, "nginx_access and apache_access logs")
    journal = typ == "journald" or (typ == "syslog" and entry.get("fallback") == "journald")
    only(("directory", "matches", "unit_label", "journalctl"), journal,
         "type: journald (or type: syslog with fallback: journald)")
    only(("fallback",), typ in ("syslog",), "type: syslog")
    if access:
        upstream = entry.get("upstream_histogram", False)
        if not isinstance(upstream, bool):
            bad(at + ("upstream_histogram",), "must be true or false")
            upstream = False
        fmt = entry.get("format")
        if fmt is not None:
            if not isinstance(fmt, str) or not fmt.strip():
                bad(at + ("format",), "must be a preset name or a log format string")
            else:
                try:
                    out["parser"] = compile_format(fmt.strip(), dialect_of(typ), upstream=upstream)
                except FormatError as exc:
                    bad(at + ("format",), str(exc))
        elif upstream:
            bad(at + ("upstream_histogram",), "needs a format: with $upstream_response_time")
    if "multiline" in entry:
        v = entry["multiline"]
        if v is False:
            out["continuation"] = (False, ())
        elif v is True:
            pass  # the type's default
        elif isinstance(v, dict) and set(v) <= {"indented", "prefixes"} \
                and isinstance(v.get("indented", True), bool) \
                and isinstance(v.get("prefixes", []), list) \
                and all(isinstance(p, str) and p for p in v.get("prefixes", [])):
            out["continuation"] = (v.get("indented", True), tuple(v.get("prefixes", [])))
        else:
            bad(at + ("multiline",), "must be true, false or {indented: true|false, prefixes: [TEXT, ...]}")
    if "fallback" in entry:
        if entry["fallback"] == "journald":
            out["fallback"] = "journald"
        else:
            bad(at + ("fallback",), "must be journald (follow the journal when the file does not exist)")
    if typ == "journald" or out.get("fallback") == "journald":
        if "directory" in entry:
            if isinstance(entry["directory"], str) and entry["directory"]:
                out["directory"] = entry["directory"]
            else:
                bad(at + ("directory",), "must be a journal directory path")
        if "journalctl" in entry:
            if isinstance(entry["journalctl"], str) and entry["journalctl"]:
                out["journalctl"] = entry["journalctl"]
            else:
                bad(at + ("journalctl",), "must be the path of journalctl")
        matches = entry.get("matches", [])
        if isinstance(matches, list) and all(isinstance(m, str) and _JOURNAL_MATCH.fullmatch(m) for m in matches):
            out["matches"] = tuple(matches)
        else:
            bad(at + ("matches",), 'must be a list of journalctl matches like "_SYSTEMD_UNIT=nginx.service" or "+"')
        if "unit_label" in entry:
            if isinstance(entry["unit_label"], bool):
                out["unit_label"] = entry["unit_label"]
            else:
                bad(at + ("unit_label",), "must be true or false")
    return out


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
