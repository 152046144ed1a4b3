"""The router's YAML configuration, its defaults and validation.

Every key is optional; ``alert-router serve`` flags override the file. The file's shape is
declared once, in docs/schemas/router.schema.json (editors load it through the modeline of
deploy/alert-router.yml); this module validates against it with ``fleetmon.schema``, then
checks what a schema cannot say. Every problem is reported, each as ``file:line: key: message``.
Durations are fleetmon's one grammar (``fleetmon.durations``: ``90s``, ``1h30m``, ``7d`` or a
number of seconds); listen addresses are ``fleetmon.listen``'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetmon import durations, listen, schema, yamldoc

from .routing import DEFAULT_SEVERITY_CHANNELS

DEFAULT_PORT = 9849


class ConfigError(ValueError):
    """An unusable configuration; the message names the file and key."""


@dataclass(frozen=True)
class RetryConfig:
    initial_delay: float = 5.0      # first retry after ~5 s
    max_delay: float = 300.0        # back off to at most 5 minutes between tries
    multiplier: float = 2.0
    max_age: float = 6 * 3600.0     # then dead-letter (6 hours after receipt)


@dataclass(frozen=True)
class FloodConfig:
    max_per_window: int = 10        # messages to one recipient URL per window ...
    window: float = 60.0            # ... beyond which alerts are folded into a digest


@dataclass(frozen=True)
class Config:
    # Loopback unless told otherwise: the webhook carries a bearer token and alert contents.
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    recipients: str | None = None
    # Operator-written groups (same format), for URLs that need secrets; they replace
    # same-named groups of `recipients`, which rulesync generates from rule authors' YAML.
    local_recipients: str | None = None
    token_file: str | None = None
    allow_unauthenticated: bool = False
    # HTTPS served by the router itself; both or neither.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Plain HTTP on a non-loopback address: refused unless this is set (and then logged).
    insecure_plain_http: bool = False
    # Where recipient URLs may take secrets from: ``${file:...}`` only under this directory,
    # ``${NAME}`` only for variables starting with this prefix. Unset = no references at all.
    secret_dir: str | None = None
    secret_env_prefix: str | None = None
    state_dir: str = "/var/lib/fleetmon/alert-router"
    severity_channels: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_SEVERITY_CHANNELS))
    retry: RetryConfig = field(default_factory=RetryConfig)
    flood: FloodConfig = field(default_factory=FloodConfig)
    max_body_bytes: int = 16 * 1024 * 1024
    http_threads: int = 8
    delivery_threads: int = 16
    reload_interval: float = 2.0
    poll_interval: float = 0.5
    retention: float = 7 * 86400.0
    sms_max_chars: int = 159
    synchronous: str = "FULL"
    # Router HA (claims.py): ZooKeeper hosts turn delivery claims on; None = a lone router.
    zk: str | None = None
    zk_root: str = "/fleetmon"
    zk_session_timeout: float = 10.0
    zk_bypass_after: float = 10.0   # ZooKeeper away this long: send without claims
    claim_recheck: float = 2.0      # a row a peer holds is looked at again after this
    done_ttl: float = 86400.0       # done znodes are deleted after this (> repeat_interval)
    claim_start_skew: float = 30.0  # starts this close are one episode (HA Prometheus replicas)
    router_id: str | None = None    # written into claims; default the host name

    def with_overrides(self, **kw: Any) -> Config:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


def parse_listen(value: str) -> tuple[str, int]:
    """``listen`` (file or ``--listen`` flag) as (host, port), by fleetmon's one listen grammar."""
    try:
        return listen.parse(value)
    except ValueError as exc:
        raise ConfigError(f"listen: {exc}") from None


KeyPath = tuple[Any, ...]  # ("retry", "max_age"), as fleetmon.schema reports it
_MISSING = object()


def from_dict(data: Any, source: str = "<config>") -> Config:
    """Validate a decoded config document; errors name ``source`` (and the line, when
    ``data`` came from ``fleetmon.yamldoc``) and the key, one line per problem."""
    problems = check(data)
    if problems:
        raise ConfigError(_report(source, data, problems))
    return _build(data or {})


def check(data: Any) -> list[tuple[KeyPath, str]]:
    """Every problem of a decoded config document as (path, message); [] if it is usable.

    The schema (docs/schemas/router.schema.json) says what each key must be; what it cannot
    say (the TLS pair, ZooKeeper's host list) is checked here, on keys the schema passed.
    """
    found = schema.check("router", data)
    out: list[tuple[KeyPath, str]] = [(p.path, _with_value(p.message, data, p.path)) for p in found]
    if not isinstance(data, dict):
        return out
    bad = {p.path[0] for p in found if p.path}
    cert, key = data.get("tls_cert_file"), data.get("tls_key_file")
    if not {"tls_cert_file", "tls_key_file"} & bad and bool(cert) != bool(key):
        given, missing = ("tls_cert_file", "tls_key_file") if cert else ("tls_key_file", "tls_cert_file")
        out.append(((given,), f"{missing} is not set: set both or neither"))
    if "zk" not in bad and data.get("zk") is not None:
        problem = _zk_hosts_problem(data["zk"].strip())
        if problem:
            out.append((("zk",), problem))
    return out


def _with_value(message: str, data: Any, path: KeyPath) -> str:
    """The message plus the offending value, as the router's messages always gave it.

    Safe here: the router's own config holds paths and addresses, never a secret (those live
    in token_file and in the recipients files, whose messages never echo values).
    """
    if message.startswith(("unknown key", "required")):
        return message
    node = yamldoc.value_at(data, path, _MISSING)
    if node is _MISSING:
        return message
    if node is None or isinstance(node, str | int | float | bool):
        return f"{message}, got {node!r}"
    return message


def _report(source: str, data: Any, problems: list[tuple[KeyPath, str]]) -> str:
    """``file:line: key: message`` per problem, in file order (no line for data not from yamldoc)."""
    lines = []
    for path, message in problems:
        line = yamldoc.line_at(data, path) if isinstance(data, yamldoc.LocatedDict | yamldoc.LocatedList) else 0
        where = f"{source}:{line}" if line else source
        key = yamldoc.keyname(path)
        lines.append((line, f"{where}: {key}: {message}" if key else f"{where}: {message}"))
    return "\n".join(text for _, text in sorted(lines, key=lambda x: x[0]))


def _build(data: dict[str, Any]) -> Config:
    """A Config from a document the checks passed (values have the schema's types)."""
    kw: dict[str, Any] = {}
    for key in ("listen", "recipients", "local_recipients", "token_file", "state_dir", "tls_cert_file", "tls_key_file",
                "secret_dir", "secret_env_prefix", "allow_unauthenticated", "insecure_plain_http"):
        if data.get(key) is not None:
            kw[key] = data[key]
    for key in ("zk", "zk_root", "router_id"):
        if data.get(key) is not None:
            kw[key] = data[key].strip()
    if "severity_channels" in data:
        kw["severity_channels"] = {
            str(sev): [c.strip() for c in chans.split(",")] if isinstance(chans, str) else list(chans)
            for sev, chans in data["severity_channels"].items()}
    if data.get("retry") is not None:
        r = data["retry"]
        kw["retry"] = RetryConfig(
            initial_delay=durations.parse(r.get("initial_delay", RetryConfig.initial_delay)),
            max_delay=durations.parse(r.get("max_delay", RetryConfig.max_delay)),
            multiplier=float(r.get("multiplier", RetryConfig.multiplier)),
            max_age=durations.parse(r.get("max_age", RetryConfig.max_age)))
    if data.get("flood") is not None:
        f = data["flood"]
        kw["flood"] = FloodConfig(max_per_window=f.get("max_per_window", FloodConfig.max_per_window),
                                  window=durations.parse(f.get("window", FloodConfig.window)))
    for key in ("max_body_bytes", "http_threads", "delivery_threads", "sms_max_chars"):
        if key in data:
            kw[key] = data[key]
    for key in ("reload_interval", "poll_interval", "retention", "zk_session_timeout", "zk_bypass_after",
                "claim_recheck", "done_ttl", "claim_start_skew"):
        if key in data:
            kw[key] = durations.parse(data[key])
    if "synchronous" in data:
        kw["synchronous"] = data["synchronous"].upper()
    return Config(**kw)


def _path_at(node: Any, key: Any, line: int) -> KeyPath:
    """The path of the mapping key ``key`` written at ``line`` (a duplicate yamldoc found)."""
    if isinstance(node, yamldoc.LocatedDict):
        if node.lines.get(key) == line:
            return (key,)
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return ()
    for k, child in items:
        sub = _path_at(child, key, line)
        if sub:
            return (k, *sub)
    return ()


def _zk_hosts_problem(hosts: str) -> str | None:
    """``h1:2181,h2:2181[/chroot]``: every member a host with an optional port."""
    for member in hosts.split("/", 1)[0].split(","):
        host, sep, port = member.strip().rpartition(":")
        if not sep:
            host, port = member.strip(), "2181"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return f"expected HOST:PORT[,HOST:PORT...], got {member.strip()!r}"
    return None


def read_token(path: str) -> str:
    """The bearer token from ``token_file`` (surrounding whitespace and newline stripped)."""
    p = Path(path)
    try:
        token = p.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"token_file {p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"token_file {p}: not text") from None
    if not token:
        raise ConfigError(f"token_file {p}: empty")
    return token


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """The config file at ``path`` (defaults when None); ConfigError lists every problem as
    ``file:line: key: message``."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    doc = yamldoc.load_text(text)
    if doc.error:
        line, message = doc.error
        raise ConfigError(f"{p}:{line}: {message}" if line else f"{p}: {message}")
    problems = check(doc.data)
    # PyYAML keeps the last of two equal keys; which one the operator meant is unknowable.
    problems += [(_path_at(doc.data, key, line), "defined twice") for key, line in doc.duplicates]
    if problems:
        raise ConfigError(_report(str(p), doc.data, problems))
    return _build(doc.data or {})
