"""TLS and basic auth from an exporter-toolkit web config file (``--web.config.file``),
the format every Prometheus exporter accepts:

    tls_server_config:
      cert_file: /etc/fleet-exporter/tls.crt
      key_file: /etc/fleet-exporter/tls.key
      client_ca_file: /etc/fleet-exporter/ca.crt      # optional
      client_auth_type: RequireAndVerifyClientCert     # optional
      min_version: TLS12                               # optional
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field

import yaml

from exporter.config import ConfigError

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass
class WebConfig:
    path: str = ""
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _ok_cache: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_auth(self, header: str | None) -> bool:
        """True when basic auth is off, or ``header`` carries a valid user and password."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        # bcrypt costs tens of ms by design; remember successes (keyed by a digest, not
        # the password) so a 15 s scrape does not pay it every time.
        key = hashlib.sha256(user.encode() + b"\0" + password.encode() + b"\0" + hashed).digest()
        with self._lock:
            if any(hmac.compare_digest(key, k) for k in self._ok_cache):
                return True
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), hashed)
        except ValueError:
            return False
        if ok:
            with self._lock:
                if len(self._ok_cache) > 64:
                    self._ok_cache.clear()
                self._ok_cache.add(key)
        return ok


def load_web_config(path: str) -> WebConfig:
    """Parse and check a web config file; ConfigError names the file, line and key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read web config: {exc.strerror or exc}"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError([f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {exc.problem}"]) from exc
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            lines[str(k.value)] = k.start_mark.line + 1
            if isinstance(v, yaml.MappingNode):
                for k2, _ in v.value:
                    lines[f"{k.value}.{k2.value}"] = k2.start_mark.line + 1
    problems: list[str] = []

    def bad(key: str, msg: str) -> None:
        line = lines.get(key) or lines.get(key.split(".")[0], 1)
        problems.append(f"{path}:{line}: {key}: {msg}")

    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the web config must be a mapping"])
    wc = WebConfig(path=path)
    for k in data:
        if k not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            bad(str(k), "unknown key (known: tls_server_config, basic_auth_users, http_server_config)")
    tls = data.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict):
            bad("tls_server_config", "must be a mapping")
        else:
            known = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
                     "max_version", "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
            for k in tls:
                if k not in known:
                    bad(f"tls_server_config.{k}", f"unknown key (known: {', '.join(sorted(known))})")
            cert, key = tls.get("cert_file"), tls.get("key_file")
            if not cert or not key:
                bad("tls_server_config", "cert_file and key_file are both required")
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                try:
                    ctx.load_cert_chain(cert, key)
                except (OSError, ssl.SSLError) as exc:
                    bad("tls_server_config.cert_file", f"cannot load {cert} / {key}: {exc}")
                mv = tls.get("min_version")
                if mv is not None:
                    if mv in _VERSIONS:
                        ctx.minimum_version = _VERSIONS[mv]
                    else:
                        bad("tls_server_config.min_version", f"must be one of {', '.join(_VERSIONS)}")
                cat = tls.get("client_auth_type", "NoClientCert")
                if cat not in _CLIENT_AUTH:
                    bad("tls_server_config.client_auth_type", f"must be one of {', '.join(_CLIENT_AUTH)}")
                else:
                    ctx.verify_mode = _CLIENT_AUTH[cat]
                    ca = tls.get("client_ca_file")
                    if ca:
                        try:
                            ctx.load_verify_locations(ca)
                        except (OSError, ssl.SSLError) as exc:
                            bad("tls_server_config.client_ca_file", f"cannot load {ca}: {exc}")
                    elif cat in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
                        bad("tls_server_config.client_ca_file", f"required with client_auth_type {cat}")
                wc.ssl_context = ctx
    users = data.get("basic_auth_users")
    if users is not None:
        if not isinstance(users, dict):
            bad("basic_auth_users", "must map user names to bcrypt hashes")
        else:
            for u, h in users.items():
                if not isinstance(h, str) or not h.startswith(("$2a$", "$2b$", "$2y$")):
                    # Never echo the value: it may be a plaintext password by mistake.
                    bad(f"basic_auth_users.{u}", "must be a bcrypt hash ($2y$...)")
                else:
                    wc.users[str(u)] = h.encode()
    if problems:
        raise ConfigError(problems)
    return wc
