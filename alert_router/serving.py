"""The HTTP(S) servers in front of the Flask app.

HTTPS is served by the router itself with cheroot (CherryPy's threaded WSGI server, maintained
by the jaraco/CherryPy team, TLS through Python's ``ssl``): it runs the app in-process with a
thread pool, as waitress does, so the durable queue, the delivery workers and the reloader stay
one process. gunicorn would fork workers, each with its own queue connection and dispatcher.
waitress (which has no TLS) keeps serving plain HTTP, the loopback default.

Plain HTTP on an address other than loopback sends the bearer token and alert contents in
clear: it is refused unless ``insecure_plain_http: true``, and then logged as a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from typing import Any

from .config import Config, ConfigError

log = logging.getLogger("alert_router")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(cfg: Config) -> None:
    """Refuse plain HTTP beyond loopback unless explicitly allowed; say so when it is."""
    host, _port = cfg.host_port
    if cfg.tls_cert_file or is_loopback(host):
        return
    if not cfg.insecure_plain_http:
        raise ConfigError(f"listen: {cfg.listen} is not a loopback address: set tls_cert_file and tls_key_file "
                          f"(HTTPS), or insecure_plain_http: true to send the bearer token in clear")
    log.warning("INSECURE: serving plain HTTP on %s (insecure_plain_http: true): the bearer token and alert "
                "contents cross the network unencrypted", cfg.listen)


def tls_context(cfg: Config) -> ssl.SSLContext:
    """A server context with the router's certificate; TLS 1.2 or newer."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for key, path in (("tls_cert_file", cfg.tls_cert_file), ("tls_key_file", cfg.tls_key_file)):
        if not path or not os.path.isfile(path):
            raise ConfigError(f"{key}: {path}: not found")
    try:
        ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_cert_file/tls_key_file: cannot load {cfg.tls_cert_file} with "
                          f"{cfg.tls_key_file}: {getattr(exc, 'reason', None) or exc}") from None
    return ctx


def https_server(app: Any, cfg: Config) -> Any:
    """A cheroot server for ``app`` over TLS (not started). ConfigError for unusable key material."""
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    ctx = tls_context(cfg)  # fails with a clear message before cheroot sees the files

    class _Server(wsgi.Server):
        def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
            # Through our logger (and its secret filter), not straight to stderr. Failed
            # handshakes (scanners, plain-HTTP clients) are the client's problem: debug.
            log.log(logging.DEBUG if "handshake" in msg.lower() or "SSL" in msg else level,
                    "https: %s", msg, exc_info=traceback)

    host, port = cfg.host_port
    server = _Server((host, port), app, numthreads=cfg.http_threads, server_name="alert-router",
                     timeout=30, request_queue_size=128, accepted_queue_timeout=10)
    server.max_request_body_size = cfg.max_body_bytes + 65536
    adapter = BuiltinSSLAdapter(cfg.tls_cert_file, cfg.tls_key_file)
    adapter.context = ctx
    server.ssl_adapter = adapter
    return server


def serve(app: Any, cfg: Config) -> None:
    """Serve until SIGTERM/SIGINT (raised as SystemExit/KeyboardInterrupt in this thread)."""
    host, port = cfg.host_port
    if cfg.tls_cert_file:
        server = https_server(app, cfg)
        log.info("alert-router serving HTTPS on https://%s:%d", host, port)
        server.prepare()
        try:
            server.serve()
        finally:
            server.stop()
        return
    from waitress import serve as waitress_serve

    log.info("alert-router serving plain HTTP on http://%s:%d", host, port)
    waitress_serve(app, host=host, port=port, threads=cfg.http_threads, ident="alert-router",
                   max_request_body_size=cfg.max_body_bytes + 65536, channel_timeout=30,
                   connection_limit=200, clear_untrusted_proxy_headers=True, _quiet=True)
