"""A small HTTP(S) server for /metrics with optional basic auth and bounded resources.

A fixed pool of ``workers`` threads serves connections (TLS handshakes happen there
too, so a slow client never blocks the accept loop). A connection that arrives while
every worker is busy is answered ``503`` at once and closed (a TLS one is closed: a
plain-text answer would be garbage to it), so the exporter's threads and memory stay
bounded whatever the clients do. Each request must arrive whole within ``timeout``
seconds of the connection opening or of the previous response (the deadline spans
every read, so a client trickling a byte at a time cannot hold a worker past it), and
the response must be taken within ``timeout`` too. Responses are gzip-compressed when
the scraper asks for it, as Prometheus does.
"""

from __future__ import annotations

import gzip
import io
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

from exporter.webconfig import WebConfig
from fleetmon import listen as listen_address

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INDEX = b"""<html><head><title>fleet-exporter</title></head><body><h1>fleet-exporter</h1>
<p><a href="/metrics">Metrics</a></p></body></html>
"""


DEFAULT_WORKERS = 10
DEFAULT_TIMEOUT = 30.0
_BUSY_BODY = b"all workers busy, retry later\n"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _Server(HTTPServer):
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type, scrape: Callable[[], bytes], web: WebConfig,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT):
        host = addr[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.scrape = scrape
        self.web = web
        self.request_timeout = timeout
        self.rejected = 0
        self._last_warning = -10.0
        self.busy = 0  # connections being served; the accept loop adds, workers subtract
        self._busy_lock = threading.Lock()
        self._free = threading.Semaphore(workers)
        self._queue: queue.SimpleQueue[tuple[socket.socket, object] | None] = queue.SimpleQueue()
        self._rejects: queue.Queue[socket.socket | None] = queue.Queue()
        self._lingering = 0  # refused sockets being drained (written by the drain thread only)
        super().__init__(addr, handler)
        if web.ssl_context is not None:
            self.socket = web.ssl_context.wrap_socket(self.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self._workers = [threading.Thread(target=self._work, name=f"http-{i}", daemon=True)
                         for i in range(workers)]
        self._workers.append(threading.Thread(target=self._drain_rejected, name="http-503", daemon=True))
        for t in self._workers:
            t.start()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # Runs on the accept loop: hand over to an idle worker or refuse at once, never wait.
        if self._free.acquire(blocking=False):
            with self._busy_lock:
                self.busy += 1
            self._queue.put((request, client_address))
            return
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_warning >= 10:  # a flood of clients must not flood the log too
            self._last_warning = now
            log.warning("all HTTP workers busy; refusing connections with 503 (%d so far), latest from %s",
                        self.rejected, client_address)
        if isinstance(request, ssl.SSLSocket) or self._lingering + self._rejects.qsize() >= 64:
            self.shutdown_request(request)
            return
        try:
            request.setblocking(False)  # the answer fits the socket buffer; never block accept
            request.send(_BUSY)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_request(request)
            return
        self._rejects.put(request)

    def _drain_rejected(self) -> None:
        # Closing a socket with the client's request unread sends a reset, which can destroy
        # the 503 before the client reads it: read requests away until the client closes or
        # for at most 2 s, all refused sockets at once on one thread.
        sel = selectors.DefaultSelector()
        deadlines: dict[socket.socket, float] = {}
        while True:
            try:
                new = self._rejects.get(timeout=0.1) if deadlines else self._rejects.get()
            except queue.Empty:
                new = False
            if new is None:
                break
            if new:
                sel.register(new, selectors.EVENT_READ)
                deadlines[new] = time.monotonic() + 2.0
            for key, _ in sel.select(timeout=0):
                sock = key.fileobj
                try:
                    more = sock.recv(65536)
                except OSError:
                    more = b""
                if not more:
                    deadlines[sock] = 0.0
            now = time.monotonic()
            for sock in [s for s, d in deadlines.items() if d <= now]:
                del deadlines[sock]
                sel.unregister(sock)
                self.close_request(sock)
            self._lingering = len(deadlines)
        for sock in deadlines:
            self.close_request(sock)
        sel.close()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - one connection never kills a worker
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._busy_lock:
                    self.busy -= 1
                self._free.release()

    def server_close(self) -> None:
        super().server_close()
        for _ in self._workers:
            self._queue.put(None)
        self._rejects.put(None)

    def handle_error(self, request: object, client_address: object) -> None:
        # Failed TLS handshakes and dropped connections are the client's business.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _DeadlineReader(socket.SocketIO):
    """Socket reads that all end by one deadline: each recv may wait only for the time
    left, so a request delivered a byte at a time still times out."""

    def __init__(self, sock: socket.socket, handler: _Handler):
        super().__init__(sock, "rb")
        self._handler = handler

    def readinto(self, b: memoryview) -> int | None:  # type: ignore[override]
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self._sock.settimeout(left)
        return super().readinto(b)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    deadline = 0.0
    # Headers and body leave in one send(): written separately, Nagle plus the
    # client's delayed ACK cost 40 ms per keep-alive scrape.
    wbufsize = 256 * 1024

    def setup(self) -> None:
        self.deadline = time.monotonic() + self.server.request_timeout
        self.request.settimeout(self.server.request_timeout)
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
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self), max(self.rbufsize, 8192))

    def handle_one_request(self) -> None:
        super().handle_one_request()
        # The next request on this keep-alive connection gets a fresh deadline, counted
        # from the end of this response: an idle connection is closed after it too.
        self.deadline = time.monotonic() + self.server.request_timeout

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # sendall's timeout bounds the whole write: a client that stops reading is dropped.
        self.connection.settimeout(self.server.request_timeout)
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        if not self.server.web.check_auth(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="fleet-exporter"'})
            return
        if path == "/metrics":
            try:
                body = self.server.scrape()
            except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                log.exception("scrape failed")
                self._send(500, f"scrape failed: {exc}\n".encode())
                return
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


class MetricsServer:
    """Serves ``scrape()`` on ``listen`` with ``workers`` connections at a time (503 beyond)
    and ``timeout`` seconds for each request to arrive and its response to be taken.

    ``listen`` is ``HOST:PORT`` (``fleetmon.listen``; ``:PORT`` is every interface, port 0 any
    free port, see ``port``); a bad one raises ValueError naming it."""

    def __init__(self, listen: str, scrape: Callable[[], bytes], web: WebConfig | None = None,
                 workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT):
        addr = listen_address.parse(listen, any_port=True)
        self.httpd = _Server(addr, _Handler, scrape, web or WebConfig(), workers, timeout)
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
