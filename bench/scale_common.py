"""Shared helpers for the scale benchmarks: process figures from /proc, Prometheus self
metrics, the simulator as a subprocess, and the reference figures from FACTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import stop_process

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")

# Measured here with Prometheus 2.42 (512k head series, 34k samples/s, 14 min): /work/shared/FACTS.md.
REF_BYTES_PER_SERIES = 2460
REF_SAMPLES_PER_CORE = 195_000
REF_NODE_EXPORTER_SERIES = 507
# ZooKeeper 3.8 + kazoo 2.11, 25,000 members (FACTS.md).
REF_ZK_CREATES_PER_S = 1400
REF_ZK_GET_CHILDREN_MS = 40


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def self_metrics(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A server's own /metrics page as {sample name: [(labels, value), ...]}."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def metric_sum(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    return sum(v for labels, v in m.get(name, []) if all(labels.get(k) == val for k, val in match.items()))


def quantiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    if not values:
        return {f"p{int(q * 100)}": float("nan") for q in qs} | {"max": float("nan")}
    v = sorted(values)
    out = {f"p{int(q * 100)}": v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))] for q in qs}
    out["max"] = v[-1]
    return out


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - servers starting up fail in many ways
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last!r})" if last else ""))


class Simulator:
    """``fleet-simulator`` as a subprocess writing a file_sd file of its hosts."""

    def __init__(self, hosts: int, series_per_host: int, port: int, file_sd: Path, log_path: Path):
        self.hosts, self.port, self.file_sd = hosts, port, file_sd
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--hosts", str(hosts), "--listen", f"127.0.0.1:{port}",
             "--series-per-host", str(series_per_host), "--file-sd", str(file_sd), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
            start_new_session=True)
        wait_for(lambda: self._check() and file_sd.exists(), 120, "the simulator to serve and write file_sd")

    def _check(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {self.proc.returncode}")
        return requests.get(f"http://127.0.0.1:{self.port}/-/healthy", timeout=2).status_code == 200

    def series_in_one_host(self) -> int:
        path = requests.get(f"http://127.0.0.1:{self.port}/hosts", timeout=60).json()[0]["metrics_path"]
        body = requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10).text
        return sum(1 for line in body.splitlines() if line and not line.startswith("#"))

    def stop(self) -> None:
        stop_process(self.proc, 15)
        self.log.close()


class VictoriaMetrics:
    """Debian's victoria-metrics single node with the shipped flags (prometheus/remote_write/)."""

    def __init__(self, workdir: Path, port: int):
        import shutil

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        flags = {}
        for line in (REPO / "prometheus" / "remote_write" / "victoria-metrics.args").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.lstrip("-").partition("=")
                flags[k] = v
        flags.update({"storageDataPath": str(workdir / "vm-data"), "httpListenAddr": f"127.0.0.1:{port}",
                      "loggerLevel": "WARN"})
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        self.log = open(workdir / "victoria-metrics.log", "ab")
        self.proc = subprocess.Popen([binary, *(f"-{k}={v}" for k, v in flags.items())], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: requests.get(f"{self.url}/health", timeout=2).status_code == 200, 60, "victoria-metrics")

    def query(self, expr: str) -> list[dict]:
        requests.get(f"{self.url}/internal/force_flush", timeout=30)
        return requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=60).json()["data"]["result"]

    def stop(self) -> None:
        stop_process(self.proc, 30)
        self.log.close()
