"""Fixtures for the scale tests: a real VictoriaMetrics (Debian's single node) and tiny
targets that look like hosts.

VictoriaMetrics runs as a plain process on a free loopback port in a temp dir and is
stopped by PID, like the servers in tests/harness/servers.py (whose base class it reuses).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness.servers import EXPOSITION, HttpServer, ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
VM_ARGS_FILE = REPO / "prometheus" / "remote_write" / "victoria-metrics.args"


def shipped_vm_args() -> list[str]:
    """The flags we ship in prometheus/remote_write/victoria-metrics.args."""
    args = []
    for line in VM_ARGS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            args.append(line)
    return args


class VictoriaMetricsServer(ManagedProcess):
    """victoria-metrics single node with the shipped flags; ``overrides`` replace flags by name."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, port: int | None = None):
        super().__init__(workdir)
        self.port = port or free_port()
        self.data_dir = self.workdir / "data"
        flags = {}
        for arg in shipped_vm_args():
            key, _, value = arg.lstrip("-").partition("=")
            flags[key] = value
        flags.update({"storageDataPath": str(self.data_dir), "httpListenAddr": f"127.0.0.1:{self.port}"})
        flags.update(overrides or {})
        self.flags = flags

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def command(self) -> list[str]:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        return [binary, *(f"-{k}={v}" for k, v in self.flags.items())]

    def ready(self) -> bool:
        return requests.get(f"{self.url}/health", timeout=1).status_code == 200

    def force_flush(self) -> None:
        """Make samples still buffered in memory searchable now (VictoriaMetrics 1.79 shows
        new samples to queries ~10 s after ingestion, measured; the endpoint exists for tests)."""
        requests.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()

    def query(self, expr: str, time: float | None = None, flush: bool = True) -> list[dict]:
        if flush:
            self.force_flush()
        params: dict[str, Any] = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        r = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"VictoriaMetrics query {expr!r} failed: {body}")
        return body["data"]["result"]

    def wait_for_query(self, expr: str, predicate: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
        def check() -> list[dict] | None:
            res = self.query(expr)
            return res if predicate(res) else None

        return wait_until(check, timeout=timeout, interval=0.25, what=f"VictoriaMetrics query {expr!r}")


@pytest.fixture
def victoriametrics_factory(tmp_path: Path) -> Iterator[Callable[..., VictoriaMetricsServer]]:
    """``victoriametrics_factory(overrides=None)`` starts a real VictoriaMetrics; stopped after the test."""
    started: list[VictoriaMetricsServer] = []

    def make(overrides: dict[str, str] | None = None) -> VictoriaMetricsServer:
        vm = VictoriaMetricsServer(tmp_path / f"victoria-metrics-{len(started)}", overrides=overrides)
        started.append(vm)
        vm.start()
        return vm

    yield make
    for vm in started:
        vm.stop()


class FakeHosts(HttpServer):
    """One HTTP server on loopback serving ``/<host>/metrics`` for a few named hosts, each a
    small node_exporter-like exposition whose counter moves on every scrape."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = list(names)
        self.scrapes: dict[str, int] = dict.fromkeys(self.names, 0)
        self._lock = threading.Lock()

    def body(self, name: str) -> bytes:
        with self._lock:
            self.scrapes[name] += 1
            n = self.scrapes[name]
        return (
            "# TYPE node_load1 gauge\n"
            f"node_load1 {0.5 + (n % 7) / 10}\n"
            "# TYPE node_cpu_seconds_total counter\n"
            f'node_cpu_seconds_total{{cpu="0",mode="idle"}} {n * 0.9}\n'
            f'node_cpu_seconds_total{{cpu="0",mode="user"}} {n * 0.1}\n'
        ).encode()

    def target(self, name: str, labels: dict[str, str] | None = None) -> dict:
        """A static_configs entry for ``name`` with instance=name, as discovery would write it."""
        return {"targets": [f"127.0.0.1:{self.port}"],
                "labels": {**(labels or {}), "instance": name, "__metrics_path__": f"/{name}/metrics"}}

    def respond(self, request: dict) -> tuple[int, str, bytes]:
        name = request["path"].strip("/").removesuffix("/metrics")
        if name not in self.scrapes:
            return 404, "text/plain", b"no such host\n"
        return 200, EXPOSITION, self.body(name)


@pytest.fixture
def fake_hosts() -> Iterator[Callable[[list[str]], FakeHosts]]:
    started: list[FakeHosts] = []

    def make(names: list[str]) -> FakeHosts:
        h = FakeHosts(names).start()
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()
