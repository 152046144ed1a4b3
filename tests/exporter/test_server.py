"""The /metrics server's bounds, over real sockets: a fixed number of workers with 503
beyond, and a per-request deadline that neither an idle nor a trickling client escapes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from exporter.server import MetricsServer
from tests.harness.servers import wait_until

BODY = b"# HELP up_value A value.\n# TYPE up_value gauge\nup_value 1\n"


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    gate = threading.Event()
    gate.set()

    def scrape() -> bytes:
        gate.wait(30)
        return BODY

    srv = MetricsServer("127.0.0.1:0", scrape, workers=2, timeout=1.5).start()
    srv.gate = gate  # type: ignore[attr-defined]
    yield srv
    gate.set()
    srv.stop()


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def test_connections_beyond_the_pool_get_503_and_idle_ones_time_out(server: MetricsServer) -> None:
    url = f"http://127.0.0.1:{server.port}/metrics"
    assert requests.get(url, timeout=10).content == BODY
    # The worker that served it frees itself once it reads the client's close: wait for that, or
    # one of the idle clients below finds it still busy and is refused instead of holding it.
    wait_until(lambda: server.httpd.busy == 0, timeout=5, what="the first request's worker free again")
    # Two clients connect and say nothing: they hold both workers...
    idle = [_connect(server.port) for _ in range(2)]
    try:
        wait_until(lambda: server.httpd.busy == 2, timeout=5, what="both workers taken")
        t0 = time.monotonic()
        r = requests.get(url, timeout=10)
        assert r.status_code == 503  # refused, not queued behind the idle ones (that would be a 200)
        # ...until the request deadline: the server closes them and serves again.
        for s in idle:
            assert _read_all(s) == b""
            assert time.monotonic() - t0 < 5
        wait_until(lambda: requests.get(url, timeout=10).status_code == 200, timeout=5, what="a free worker")
    finally:
        for s in idle:
            s.close()
    assert server.httpd.rejected >= 1


def test_a_trickling_client_is_cut_off_at_the_deadline(server: MetricsServer) -> None:
    s = _connect(server.port)
    try:
        t0 = time.monotonic()
        closed_at = None
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        for b in request:  # one byte every 0.1 s: each read alone is well inside any timeout
            try:
                s.send(bytes([b]))
            except OSError:
                closed_at = time.monotonic()
                break
            s.settimeout(0.1)
            try:
                if s.recv(1024) == b"":
                    closed_at = time.monotonic()
                    break
            except TimeoutError:
                pass  # still open: the pacing of this slow client
        assert closed_at is not None, "the server kept reading a request trickled over 20 s"
        assert closed_at - t0 < 4.0  # deadline 1.5 s, plus margin for a loaded machine
    finally:
        s.close()


def test_keep_alive_scrapes_and_a_slow_scrape_bounds_concurrency(server: MetricsServer) -> None:
    url = f"http://127.0.0.1:{server.port}/metrics"
    with requests.Session() as sess:
        for _ in range(5):  # one connection, many scrapes: within the deadline each time
            r = sess.get(url, timeout=10, headers={"Accept-Encoding": "gzip"})
            assert r.content == BODY and r.headers["Content-Encoding"] == "gzip"
    wait_until(lambda: server.httpd.busy == 0, timeout=5, what="the keep-alive connection to be closed")
    server.gate.clear()  # type: ignore[attr-defined]  # scrapes now hang in the collector
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(requests.get(url, timeout=30).status_code))
               for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: server.httpd.busy == 2, timeout=5, what="two scrapes in flight")
        assert requests.get(url, timeout=10).status_code == 503
    finally:
        server.gate.set()  # type: ignore[attr-defined]
        for t in threads:
            t.join(30)
    assert results == [200, 200]


def test_listen_takes_bracketed_ipv6_and_refuses_a_bad_address() -> None:
    srv = MetricsServer("[::1]:0", lambda: BODY).start()
    try:
        assert requests.get(f"http://[::1]:{srv.port}/metrics", timeout=10).content == BODY
    finally:
        srv.stop()
    for bad in ("9100", "::1:9100", "host:http"):
        with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[")):
            MetricsServer(bad, lambda: BODY)
