"""Shared pieces of the exporter benchmarks: processes (ours, node_exporter, mtail)
on free loopback ports, a log generator and a metrics reader."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]

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


def nginx_lines(n: int, start: int = 0, seed: int = 1) -> list[str]:
    rnd = random.Random(seed + start)
    return [
        f'10.0.{i % 256}.{i % 200} - - [28/Nov/2026:07:37:18 +0000] "{rnd.choice(METHODS)} /api/v1/item/{i} HTTP/1.1" '
        f'{rnd.choice(STATUSES)} {rnd.randint(1, 50000)} "https://example.com/ref" '
        f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36" {rnd.random():.3f}\n'
        for i in range(start, start + n)
    ]


def write_log(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        for s in range(0, n, 100_000):
            fh.write("".join(nginx_lines(min(100_000, n - s), s)))


class Proc:
    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path, env: dict | None = None):
        self.name, self.cmd, self.port, self.workdir = name, cmd, port, workdir
        self.env = env
        self.p: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self, timeout: float = 30) -> Proc:
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.p = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                  env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(self.workdir / f'{self.name}.log').read_text()[-2000:]}")
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.p:
            stop_process(self.p, 10, sig)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def ours(workdir: Path, args: list[str]) -> Proc:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return Proc("fleet-exporter", [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}", *args],
                port, workdir, env)


def node_exporter(workdir: Path, collectors: list[str]) -> Proc:
    port = free_port()
    return Proc("node_exporter", ["/usr/bin/prometheus-node-exporter", "--collector.disable-defaults",
                                  *[f"--collector.{c}" for c in collectors],
                                  f"--web.listen-address=127.0.0.1:{port}"], port, workdir)


def mtail(workdir: Path, logs: list[Path]) -> Proc:
    port = free_port()
    progs = workdir / "progs"
    progs.mkdir(exist_ok=True)
    (progs / "nginx.mtail").write_text(MTAIL_PROG)
    return Proc("mtail", ["/usr/bin/mtail", "--progs", str(progs), "--logs", ",".join(map(str, logs)),
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
