"""Shared helpers for the scale benchmarks: process figures from /proc, Prometheus self
metrics, the simulator as a subprocess, and the reference figures from FACTS.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import RepoCommand, wait_until
from tests.scale.conftest import VictoriaMetricsServer

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
    """The harness's ``wait_until``, polling every half second: scale runs wait minutes."""
    return wait_until(predicate, timeout=timeout, interval=interval, what=what)


class Simulator(RepoCommand):
    """``fleet-simulator`` as a process writing a file_sd file of its hosts (its log in
    ``workdir/simulator.log``); ready once it serves and has written the file."""

    def __init__(self, hosts: int, series_per_host: int, port: int, file_sd: Path, workdir: Path):
        super().__init__(workdir, "simulator", [
            sys.executable, "-m", "simulator", "--hosts", str(hosts), "--listen", f"127.0.0.1:{port}",
            "--series-per-host", str(series_per_host), "--file-sd", str(file_sd), "--log-level", "warning"], port)
        self.hosts, self.file_sd = hosts, file_sd

    def ready(self) -> bool:
        ok = requests.get(f"http://127.0.0.1:{self.port}/-/healthy", timeout=2).status_code == 200
        return ok and self.file_sd.exists()

    def start(self, timeout: float = 120) -> Simulator:
        super().start(timeout)
        return self

    def series_in_one_host(self) -> int:
        path = requests.get(f"http://127.0.0.1:{self.port}/hosts", timeout=60).json()[0]["metrics_path"]
        body = requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10).text
        return sum(1 for line in body.splitlines() if line and not line.startswith("#"))

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)


class VictoriaMetrics(VictoriaMetricsServer):
    """Debian's victoria-metrics single node with the shipped flags (prometheus/remote_write/),
    as the scale tests run it, with longer query timeouts: at scale a flush takes seconds."""

    def __init__(self, workdir: Path, port: int):
        super().__init__(workdir, overrides={"loggerLevel": "WARN"}, port=port)

    def query(self, expr: str) -> list[dict]:  # type: ignore[override] - no time, always flushed
        requests.get(f"{self.url}/internal/force_flush", timeout=30)
        return requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=60).json()["data"]["result"]

    def stop(self, timeout: float = 30) -> None:
        super().stop(timeout)
