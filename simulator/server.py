"""HTTP front of the host simulator: one asyncio server, one path per virtual host.

A bare ``asyncio.Protocol`` speaking just enough HTTP/1.1 (keep-alive, Content-Length):
Prometheus keeps one connection per target open, so 10,000 hosts are 10,000 idle
sockets and ~700 requests/s at a 15 s interval, which a thread-per-connection server
could not hold on one core.

Endpoints: ``/hosts/<name>/metrics`` (a host; a dead host closes the connection unanswered),
``/hosts`` (JSON inventory), ``/metrics`` (the simulator's own counters), ``/-/healthy``,
``GET|POST /-/events`` (list, or add a scenario event at run time; ``at`` counts from now),
``/-/sessions`` (JSON: ZooKeeper registration status, summed over per-host session workers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from simulator.model import Fleet
from simulator.scenario import ScenarioError, parse_event

log = logging.getLogger("fleetmon.simulate")

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST = 64 * 1024
HOST_PREFIX = "/hosts/"


class Stats:
    def __init__(self) -> None:
        self.scrapes = 0
        self.render_seconds = 0.0
        self.refused = 0
        self.not_found = 0
        self.bytes_sent = 0


class SimulatorApp:
    """Routes requests to the fleet; ``on_event`` lets the CLI hook registration changes."""

    def __init__(self, fleet: Fleet, on_event: Callable[[Any, float], None] | None = None):
        self.fleet = fleet
        self.stats = Stats()
        self.on_event = on_event
        self.started = time.time()
        self.sessions: Callable[[], dict[str, Any]] | None = None

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes] | None:
        """(status, content type, body), or None to drop the connection (a dead host)."""
        path = path.split("?", 1)[0]
        if path.startswith(HOST_PREFIX) and path.endswith("/metrics"):
            host = self.fleet.by_name.get(path[len(HOST_PREFIX):-len("/metrics")])
            if host is None:
                self.stats.not_found += 1
                return 404, b"text/plain", b"no such host\n"
            now = time.time()
            if host.is_down(now - self.fleet.start):
                self.stats.refused += 1
                return None
            t0 = time.perf_counter()
            out = self.fleet.render(host, now)
            self.stats.render_seconds += time.perf_counter() - t0
            self.stats.scrapes += 1
            self.stats.bytes_sent += len(out)
            return 200, CONTENT_TYPE, out
        if path == "/hosts":
            data = [{"name": h.name, "labels": h.labels, "metrics_path": f"{HOST_PREFIX}{h.name}/metrics",
                     "down": h.is_down(self.fleet.sim_time())} for h in self.fleet.hosts]
            return 200, b"application/json", json.dumps(data).encode()
        if path == "/-/sessions":
            data = self.sessions() if self.sessions is not None else {}
            return 200, b"application/json", json.dumps(data).encode()
        if path == "/-/events":
            if method == "POST":
                return self._post_event(body)
            now = self.fleet.sim_time()
            data = {"sim_time": now, "start": self.fleet.start,
                    "events": [{**e.to_dict(off), "start_unix": self.fleet.start + off + e.at}
                               for off, e in self.fleet.events]}
            return 200, b"application/json", json.dumps(data).encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE, self._self_metrics()
        if path in ("/-/healthy", "/-/ready"):
            return 200, b"text/plain", b"ok\n"
        if path == "/":
            lines = [f"fleetmon host simulator: {len(self.fleet.hosts)} hosts", "",
                     "/hosts                      JSON inventory", "/hosts/<name>/metrics       one host",
                     "/-/events                   scenario events (POST one to add)", "/metrics", ""]
            lines += [f"{HOST_PREFIX}{h.name}/metrics" for h in self.fleet.hosts[:50]]
            return 200, b"text/plain", "\n".join(lines).encode()
        return 404, b"text/plain", b"not found\n"

    def _post_event(self, body: bytes) -> tuple[int, bytes, bytes]:
        try:
            raw = json.loads(body or b"null")
            event = parse_event(raw, "event")
        except (ValueError, ScenarioError) as exc:
            return 400, b"application/json", json.dumps({"error": str(exc)}).encode()
        offset = self.fleet.sim_time()
        hit = self.fleet.add_event(event, offset)
        if self.on_event is not None:
            self.on_event(event, offset)
        return 200, b"application/json", json.dumps(
            {"hosts": hit, "start_unix": self.fleet.start + offset + event.at}).encode()

    def _self_metrics(self) -> bytes:
        s = self.stats
        down = sum(1 for h in self.fleet.hosts if h.is_down(self.fleet.sim_time()))
        rows = [
            ("fleetmon_simulator_hosts", "gauge", "Simulated hosts served.", len(self.fleet.hosts)),
            ("fleetmon_simulator_hosts_down", "gauge", "Simulated hosts currently not answering.", down),
            ("fleetmon_simulator_scrapes_total", "counter", "Host scrapes answered.", s.scrapes),
            ("fleetmon_simulator_render_seconds_total", "counter", "Seconds spent rendering host bodies.",
             round(s.render_seconds, 6)),
            ("fleetmon_simulator_refused_total", "counter", "Scrapes of dead hosts dropped unanswered.",
             s.refused),
            ("fleetmon_simulator_response_bytes_total", "counter", "Bytes of host bodies sent.", s.bytes_sent),
            ("fleetmon_simulator_events", "gauge", "Scenario events applied.", len(self.fleet.events)),
        ]
        out = []
        for name, mtype, help_text, value in rows:
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {mtype}\n{name} {value}\n")
        return "".join(out).encode()


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 500: b"Internal Server Error"}


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, app: SimulatorApp):
        self.app = app
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buf) > MAX_REQUEST:
                    self._reply(413, b"text/plain", b"request too large\n", close=True)
                return
            head = self.buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self._reply(400, b"text/plain", b"bad request line\n", close=True)
                return
            method, path, version = parts
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._reply(400, b"text/plain", b"bad content-length\n", close=True)
                return
            if length > MAX_REQUEST:
                self._reply(413, b"text/plain", b"request too large\n", close=True)
                return
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4:head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length:]
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            if method not in ("GET", "HEAD", "POST"):
                self._reply(405, b"text/plain", b"method not allowed\n", close)
                continue
            try:
                result = self.app.handle(method, path, body)
            except Exception:  # noqa: BLE001 - one bad request must not kill the server
                log.exception("handling %s %s", method, path)
                self._reply(500, b"text/plain", b"internal error\n", close=True)
                return
            if result is None:
                # A dead host: drop the connection without an answer, as a crashed machine would.
                self.transport.abort()
                self.transport = None
                return
            status, ctype, out = result
            self._reply(status, ctype, b"" if method == "HEAD" else out, close, len(out))

    def _reply(self, status: int, ctype: bytes, body: bytes, close: bool = False,
               length: int | None = None) -> None:
        if self.transport is None:
            return
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                % (status, _REASONS.get(status, b"Error"), ctype, len(body) if length is None else length,
                   b"Connection: close\r\n" if close else b""))
        self.transport.writelines((head, body))
        if close:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(app: SimulatorApp, host: str, port: int, ready: Callable[[], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpProtocol(app), host, port, backlog=4096, reuse_address=True)
    if ready is not None:
        ready()
    stop = stop or asyncio.Event()
    async with server:
        await stop.wait()
