"""The router's YAML configuration, its defaults and validation.

Every key is optional; ``alert-router serve`` flags override the file. Errors name the
file and the key. Durations are seconds (numbers) or strings like ``90s``, ``5m``, ``6h``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from fleetmon import strictyaml

from .routing import CHANNELS, DEFAULT_SEVERITY_CHANNELS

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
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: must not be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{where}: expected a duration like 30s, 5m, 6h; got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a decoded config document; errors name ``source`` and the key."""
    try:
        return _from_dict(data, source)
    except ConfigError as exc:
        if str(exc).startswith(f"{source}:"):
            raise
        raise ConfigError(f"{source}: {exc}") from None


def _from_dict(data: dict[str, Any], source: str) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s): {', '.join(unknown)}")
    kw: dict[str, Any] = {}
    for key in ("listen", "recipients", "local_recipients", "token_file", "state_dir", "tls_cert_file", "tls_key_file",
                "secret_dir", "secret_env_prefix"):
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise ConfigError(f"{source}: {key}: expected a string")
            kw[key] = data[key]
    if "listen" in kw:
        parse_listen(kw["listen"])
    for key in ("allow_unauthenticated", "insecure_plain_http"):
        if key in data:
            # bool("false") is True: a quoted value must be an error, never a silent "yes".
            try:
                kw[key] = strictyaml.parse_bool(data[key], key)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
    if bool(kw.get("tls_cert_file")) != bool(kw.get("tls_key_file")):
        raise ConfigError(f"{source}: tls_cert_file and tls_key_file: set both or neither")
    if "secret_env_prefix" in kw and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", kw["secret_env_prefix"]):
        raise ConfigError(f"{source}: secret_env_prefix: expected a non-empty variable-name prefix like "
                          f"FLEETMON_ROUTER_ (an empty prefix would expose the whole environment)")
    if "severity_channels" in data:
        sc = data["severity_channels"]
        if not isinstance(sc, dict):
            raise ConfigError(f"{source}: severity_channels: expected a mapping severity -> [channels]")
        out: dict[str, list[str]] = {}
        for sev, chans in sc.items():
            if isinstance(chans, str):
                chans = [c.strip() for c in chans.split(",")]
            if not isinstance(chans, list) or not all(c in CHANNELS for c in chans):
                raise ConfigError(f"{source}: severity_channels.{sev}: expected a list of {', '.join(CHANNELS)}")
            out[str(sev)] = list(chans)
        kw["severity_channels"] = out
    if "retry" in data:
        r = data["retry"] or {}
        if not isinstance(r, dict) or set(r) - {f.name for f in fields(RetryConfig)}:
            raise ConfigError(f"{source}: retry: expected keys initial_delay, max_delay, multiplier, max_age")
        kw["retry"] = RetryConfig(
            initial_delay=parse_duration(r.get("initial_delay", RetryConfig.initial_delay), "retry.initial_delay"),
            max_delay=parse_duration(r.get("max_delay", RetryConfig.max_delay), "retry.max_delay"),
            multiplier=float(r.get("multiplier", RetryConfig.multiplier)),
            max_age=parse_duration(r.get("max_age", RetryConfig.max_age), "retry.max_age"),
        )
        if kw["retry"].multiplier < 1:
            raise ConfigError(f"{source}: retry.multiplier: must be >= 1")
    if "flood" in data:
        f = data["flood"] or {}
        if not isinstance(f, dict) or set(f) - {"max_per_window", "window"}:
            raise ConfigError(f"{source}: flood: expected keys max_per_window, window")
        kw["flood"] = FloodConfig(
            max_per_window=_positive_int(f.get("max_per_window", FloodConfig.max_per_window),
                                         "flood.max_per_window"),
            window=parse_duration(f.get("window", FloodConfig.window), "flood.window"),
        )
    for key in ("max_body_bytes", "http_threads", "delivery_threads", "sms_max_chars"):
        if key in data:
            kw[key] = _positive_int(data[key], key)
    for key in ("reload_interval", "poll_interval", "retention"):
        if key in data:
            kw[key] = parse_duration(data[key], key)
    for key in ("zk", "zk_root", "router_id"):
        if data.get(key) is not None:
            if not isinstance(data[key], str) or not data[key].strip():
                raise ConfigError(f"{source}: {key}: expected a non-empty string")
            kw[key] = data[key].strip()
    if "zk" in kw:
        _check_zk_hosts(kw["zk"], source)
    if "zk_root" in kw and not kw["zk_root"].startswith("/"):
        raise ConfigError(f"{source}: zk_root: must start with /")
    for key in ("zk_session_timeout", "zk_bypass_after", "claim_recheck", "done_ttl", "claim_start_skew"):
        if key in data:
            kw[key] = parse_duration(data[key], key)
    if "synchronous" in data:
        if str(data["synchronous"]).upper() not in ("FULL", "NORMAL"):
            raise ConfigError(f"{source}: synchronous: FULL or NORMAL")
        kw["synchronous"] = str(data["synchronous"]).upper()
    return Config(**kw)


def _check_zk_hosts(hosts: str, source: str) -> None:
    """``h1:2181,h2:2181[/chroot]``: every member a host with an optional port."""
    for member in hosts.split("/", 1)[0].split(","):
        host, sep, port = member.strip().rpartition(":")
        if not sep:
            host, port = member.strip(), "2181"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{source}: zk: expected HOST:PORT[,HOST:PORT...], got {member.strip()!r}")


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
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = strictyaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return from_dict(data, str(p))
