"""A small threaded HTTP(S) server for /metrics with optional basic auth.

Each connection gets its own thread (TLS handshakes happen there too, so a slow
client never blocks the accept loop); responses are gzip-compressed when the scraper
asks for it, as Prometheus does.
"""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INDEX = b"""<html><head><title>fleet-exporter</title></head><body><h1>fleet-exporter</h1>
<p><a href="/metrics">Metrics</a></p></body></html>
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type, scrape: Callable[[], bytes], web: WebConfig):
        host = addr[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.scrape = scrape
        self.web = web
        self.max_parallel = threading.BoundedSemaphore(40)
        super().__init__(addr, handler)
        if web.ssl_context is not None:
            self.socket = web.ssl_context.wrap_socket(self.socket, server_side=True,
                                                      do_handshake_on_connect=False)

    def handle_error(self, request: object, client_address: object) -> None:
        # Failed TLS handshakes and dropped connections are the client's business.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30
    # Headers and body leave in one send(): written separately, Nagle plus the
    # client's delayed ACK cost 40 ms per keep-alive scrape.
    wbufsize = 256 * 1024

    def setup(self) -> None:
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise
        super().setup()

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        if not self.server.web.check_auth(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="fleet-exporter"'})
            return
        if path == "/metrics":
            if not self.server.max_parallel.acquire(blocking=False):
                self._send(503, b"too many parallel scrapes\n")
                return
            try:
                body = self.server.scrape()
            except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                log.exception("scrape failed")
                self._send(500, f"scrape failed: {exc}\n".encode())
                return
            finally:
                self.server.max_parallel.release()
            headers = {}
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, CONTENT_TYPE, headers)
        elif path in ("/", "/index.html"):
            self._send(200, INDEX, "text/html; charset=utf-8")
        elif path in ("/-/healthy", "/-/ready"):
            self._send(200, b"OK\n")
        else:
            self._send(404, b"Not found\n")

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class MetricsServer:
    def __init__(self, listen: str, scrape: Callable[[], bytes], web: WebConfig | None = None):
        self.httpd = _Server(parse_listen(listen), _Handler, scrape, web or WebConfig())
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.5)

    def start(self) -> MetricsServer:
        self.thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
