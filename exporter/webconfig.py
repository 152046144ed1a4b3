"""TLS and basic auth from an exporter-toolkit web config file (``--web.config.file``),
the format every Prometheus exporter accepts:

    tls_server_config:
      cert_file: /etc/fleet-exporter/tls.crt
      key_file: /etc/fleet-exporter/tls.key
      client_ca_file: /etc/fleet-exporter/ca.crt      # optional
      client_auth_type: RequireAndVerifyClientCert     # optional
      min_version: TLS12                               # optional
      max_version: TLS13                               # optional
      cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]   # optional, TLS 1.2 and older
      curve_preferences: [CurveP384]                   # optional, one curve
      prefer_server_cipher_suites: true                # optional
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

As in prometheus/exporter-toolkit ``web/tls_config.go``, every option is honoured or the file
is refused with the file, line and key; nothing is accepted and silently ignored. Two
differences, both forced by Python's ``ssl`` module (which cannot accept a client certificate
without verifying it): ``RequireAnyClientCert`` is refused, and ``RequestClientCert`` does not
ask for the certificate it would never check, which admits exactly the clients Go admits.
``curve_preferences`` takes one curve (``ssl`` sets a single ECDH group).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from exporter.config import ConfigError, Problems
from fleetmon import yamldoc

# client_auth_type -> (verify_mode, needs client_ca_file). Go's semantics:
#   NoClientCert               no certificate asked for
#   RequestClientCert          asked for, not required, never verified -> every client admitted;
#                              asking for one we would not check changes nothing, so we don't
#   RequireAnyClientCert       required, not verified: impossible with Python's ssl (refused)
#   VerifyClientCertIfGiven    optional; one that is sent must chain to client_ca_file
#   RequireAndVerifyClientCert required and must chain to client_ca_file
_CLIENT_AUTH: dict[str, tuple[ssl.VerifyMode, bool]] = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_NONE, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
_UNSUPPORTED_CLIENT_AUTH = {
    "RequireAnyClientCert": "not supported: Python's ssl module cannot require a client certificate without "
                            "verifying it; use RequireAndVerifyClientCert with client_ca_file (the CA of the "
                            "clients you expect)",
}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's crypto/tls names (what exporter-toolkit accepts) -> OpenSSL names, for TLS 1.2 and older.
# Go itself ignores cipher_suites for TLS 1.3, and so does OpenSSL's cipher list.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1"}


def _bcrypt_cost(hashed: bytes) -> int:
    try:
        return int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return 10


@dataclass
class WebConfig:
    path: str = ""
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _ok_cache: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dummy: bytes | None = None

    def _dummy_hash(self) -> bytes:
        """A bcrypt hash of a random secret at the users' highest cost, made once: checking
        an unknown user's password against it costs what checking a real one does."""
        if self._dummy is None:
            import secrets

            import bcrypt

            cost = max((_bcrypt_cost(h) for h in self.users.values()), default=10)
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(4, min(cost, 31))))
        return self._dummy

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
        known = hashed is not None
        if hashed is None:
            # exporter-toolkit does the same: without it an unknown name answers in microseconds
            # and a known one in tens of milliseconds, which tells an attacker who exists.
            hashed = self._dummy_hash()
        # bcrypt costs tens of ms by design; remember successes (keyed by a digest, not
        # the password) so a 15 s scrape does not pay it every time.
        key = hashlib.sha256(user.encode() + b"\0" + password.encode() + b"\0" + hashed).digest()
        if known:
            with self._lock:
                if any(hmac.compare_digest(key, k) for k in self._ok_cache):
                    return True
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), hashed)
        except ValueError:
            return False
        if ok and known:
            with self._lock:
                if len(self._ok_cache) > 64:
                    self._ok_cache.clear()
                self._ok_cache.add(key)
        return ok and known


def _tls_context(tls: dict[str, Any], bad: Any) -> ssl.SSLContext | None:
    """Build the server context from a ``tls_server_config`` the schema accepted; every option
    is applied or refused through ``bad`` (what OpenSSL and Python's ssl can do is not a shape)."""
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if not isinstance(cert, str) or not isinstance(key, str):
        return None  # the schema reported it
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        bad(("tls_server_config", "cert_file"), f"cannot load {cert} / {key}: {exc}")

    for name, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        v = tls.get(name)
        if v not in _VERSIONS:
            continue  # absent, or the schema reported it
        try:
            setattr(ctx, attr, _VERSIONS[v])
        except (ValueError, ssl.SSLError) as exc:
            bad(("tls_server_config", name), f"{v} cannot be set with this OpenSSL: {exc}")
    if ctx.maximum_version != ssl.TLSVersion.MAXIMUM_SUPPORTED and ctx.minimum_version > ctx.maximum_version:
        bad(("tls_server_config", "max_version"), f"{tls.get('max_version')} is below min_version "
            f"{tls.get('min_version', 'TLS12')}")

    suites = tls.get("cipher_suites")
    if isinstance(suites, list) and suites and all(isinstance(s, str) for s in suites):
        unknown = [s for s in suites if s not in _CIPHERS]
        for s in unknown:
            why = ("TLS 1.3 suites are not configurable (Go ignores them too)" if s in _TLS13_SUITES
                   else f"unknown or unsupported cipher suite (known: {', '.join(_CIPHERS)})")
            bad(("tls_server_config", "cipher_suites"), f"{s}: {why}")
        if not unknown:
            try:
                ctx.set_ciphers(":".join(_CIPHERS[s] for s in suites))
            except ssl.SSLError as exc:
                bad(("tls_server_config", "cipher_suites"), f"OpenSSL refuses {suites}: {exc}")
    if tls.get("prefer_server_cipher_suites") is True:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    elif tls.get("prefer_server_cipher_suites") is False:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE

    curves = tls.get("curve_preferences")
    if isinstance(curves, list):
        if len(curves) != 1 or curves[0] not in _CURVES:
            bad(("tls_server_config", "curve_preferences"),
                f"exactly one of {', '.join(_CURVES)} is supported (Python's ssl sets a single ECDH curve; "
                f"X25519 cannot be selected), got {curves!r}")
        else:
            ctx.set_ecdh_curve(_CURVES[curves[0]])

    cat = tls.get("client_auth_type", "NoClientCert")
    ca = tls.get("client_ca_file")
    if cat in _UNSUPPORTED_CLIENT_AUTH:
        bad(("tls_server_config", "client_auth_type"), f"{cat}: {_UNSUPPORTED_CLIENT_AUTH[cat]}")
    elif cat in _CLIENT_AUTH:  # anything else, the schema reported
        mode, needs_ca = _CLIENT_AUTH[cat]
        if needs_ca and not ca:
            bad(("tls_server_config", "client_ca_file"), f"required with client_auth_type {cat}")
        elif ca and not needs_ca:
            # exporter-toolkit refuses this too: a CA that is never used looks like protection.
            bad(("tls_server_config", "client_ca_file"), f"is not used with client_auth_type {cat}; set "
                f"VerifyClientCertIfGiven or RequireAndVerifyClientCert")
        elif isinstance(ca, str):
            try:
                ctx.load_verify_locations(ca)
            except (OSError, ssl.SSLError) as exc:
                bad(("tls_server_config", "client_ca_file"), f"cannot load {ca}: {exc}")
        ctx.verify_mode = mode
    return ctx


def load_web_config(path: str) -> WebConfig:
    """Parse and check a web config file; ConfigError names the file, line and key.

    Its shape is docs/schemas/web-config.schema.json (checked first, through fleetmon.schema);
    then the TLS options are applied, which is where OpenSSL may still refuse one.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read web config: {exc.strerror or exc}"]) from exc
    loaded = yamldoc.load_text(text)
    if loaded.error:
        line, message = loaded.error
        raise ConfigError([f"{path}:{line or 1}: {message}"])
    data = {} if loaded.data is None else loaded.data
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the web config must be a mapping"])
    problems = Problems(path, "web-config", data, loaded.duplicates)
    wc = WebConfig(path=path)
    tls = data.get("tls_server_config")
    if isinstance(tls, dict):
        wc.ssl_context = _tls_context(tls, problems.add)
    users = data.get("basic_auth_users")
    if isinstance(users, dict):
        # The schema refused any value that is not a bcrypt hash, without echoing it: a
        # mistaken plaintext password must not reach a log.
        wc.users = {str(u): h.encode() for u, h in users.items() if isinstance(h, str)}
    problems.raise_any()
    if wc.users:
        wc._dummy_hash()  # pay the one-off hashing at startup, not on the first unknown user
    return wc
