"""Shared pieces of the exporter benchmarks: processes (ours, node_exporter, mtail)
on free loopback ports, a log generator and a metrics reader."""

from __future__ import annotations

import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.scale_common import cpu_seconds, rss_bytes
from tests.harness.servers import RepoCommand, free_port

MTAIL_PROG = r"""
counter fleetmon_log_lines_total
counter fleetmon_http_requests_total by method, status
counter fleetmon_http_response_bytes_total
histogram fleetmon_http_request_duration_seconds buckets 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0

/^/ {
  fleetmon_log_lines_total++
}

/^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" (?P<rt>\d+\.\d+)$/ {
  fleetmon_http_requests_total[$method][$status]++
  fleetmon_http_response_bytes_total += $bytes
  fleetmon_http_request_duration_seconds = $rt
}
"""

METHODS = ["GET"] * 8 + ["POST", "PUT", "DELETE", "HEAD"]
STATUSES = ["200"] * 20 + ["404", "301", "500", "304", "502"]


def _request_time(i: int, rnd: random.Random) -> str:
    return f"{rnd.random():.3f}"


def nginx_lines(n: int, start: int = 0, seed: int = 1,
                last: Callable[[int, random.Random], str] = _request_time) -> list[str]:
    """``n`` access log lines numbered from ``start``: nginx's combined format followed by
    ``last`` (the request time by default: MTAIL_PROG's format)."""
    rnd = random.Random(seed + start)
    return [
        f'10.0.{i % 256}.{i % 200} - - [28/Nov/2026:07:37:18 +0000] "{rnd.choice(METHODS)} /api/v1/item/{i} HTTP/1.1" '
        f'{rnd.choice(STATUSES)} {rnd.randint(1, 50000)} "https://example.com/ref" '
        f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36" {last(i, rnd)}\n'
        for i in range(start, start + n)
    ]


def write_log(path: Path, n: int, lines: Callable[[int, int], list[str]] = nginx_lines) -> None:
    """``n`` lines of ``lines(count, start)`` written 100,000 at a time."""
    with open(path, "w") as fh:
        for s in range(0, n, 100_000):
            fh.write("".join(lines(min(100_000, n - s), s)))


class Proc(RepoCommand):
    """A metrics server (ours, node_exporter, mtail) on a free loopback port, ready once its
    /metrics answers 200; the harness starts and stops it by PID."""

    ready_interval = 0.05  # benchmarks time from process start to work done

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path):
        super().__init__(workdir, name, cmd, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def ready(self) -> bool:
        return requests.get(self.url, timeout=1).status_code == 200

    def start(self, timeout: float = 30) -> Proc:
        super().start(timeout)
        return self

    def cpu_seconds(self) -> float:
        assert self.pid is not None
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        assert self.pid is not None
        return rss_bytes(self.pid)


def ours(workdir: Path, args: list[str]) -> Proc:
    port = free_port()
    return Proc("fleet-exporter", [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}", *args],
                port, workdir)


def node_exporter(workdir: Path, collectors: list[str]) -> Proc:
    port = free_port()
    return Proc("node_exporter", ["/usr/bin/prometheus-node-exporter", "--collector.disable-defaults",
                                  *[f"--collector.{c}" for c in collectors],
                                  f"--web.listen-address=127.0.0.1:{port}"], port, workdir)


def mtail(workdir: Path, logs: list[Path], prog: str = MTAIL_PROG, name: str = "mtail") -> Proc:
    """mtail running ``prog`` over ``logs``, as the process ``name``."""
    port = free_port()
    progs = workdir / f"progs-{name}"
    progs.mkdir(exist_ok=True)
    (progs / "prog.mtail").write_text(prog)
    return Proc(name, ["/usr/bin/mtail", "--progs", str(progs), "--logs", ",".join(map(str, logs)),
                          "--address", "127.0.0.1", "--port", str(port), "--logtostderr",
                          "--emit_prog_label=false"], port, workdir)


def metric_sum(url: str, name: str) -> float:
    text = requests.get(url, timeout=10).text
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                total += s.value
    return total


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
