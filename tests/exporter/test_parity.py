"""prometheus-node-exporter 1.5 beside ours on the same host: the shared families
have the same names, types, label sets and (within tolerance) values."""

from __future__ import annotations

import threading
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import ManagedProcess, free_port, port_open

COLLECTORS = ["cpu", "meminfo", "filesystem", "diskstats", "loadavg", "netdev", "stat", "time", "uname"]
# Families node_exporter has that we deliberately do not serve.
NOT_OURS = ("go_", "promhttp_", "node_exporter_build_info")


class NodeExporter(ManagedProcess):
    name = "node-exporter"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.port = free_port()

    def command(self) -> list[str]:
        return ["/usr/bin/prometheus-node-exporter", "--collector.disable-defaults",
                *[f"--collector.{c}" for c in COLLECTORS], f"--web.listen-address=127.0.0.1:{self.port}"]

    def ready(self) -> bool:
        return port_open(self.port)


def families(text: str) -> dict[str, tuple[str, dict[frozenset, float]]]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            name = s.name
            out.setdefault(name, (fam.type, {}))[1][frozenset(s.labels.items())] = s.value
    return out


def tolerance(name: str, a: float, b: float) -> float:
    big = max(abs(a), abs(b))
    if name.startswith("node_memory_"):
        return max(64 * 2**20, 0.05 * big)
    if name.startswith("node_filesystem_") and name.endswith("_bytes"):
        return max(256 * 2**20, 0.01 * big)
    if name.endswith("_seconds_total"):
        return max(3.0, 0.02 * big)
    if name.startswith(("node_procs_", "node_load")):
        return 25.0
    return max(1.0, 0.05 * big)  # counters of events, bytes, packets


def test_parity_with_node_exporter(tmp_path: Path, exporter_factory) -> None:
    ne = NodeExporter(tmp_path / "ne")
    ne.start(timeout=20)
    ours = exporter_factory([*[f"--collector.{c}" for c in COLLECTORS], "--no-collector.textfile"])
    try:
        bodies: dict[str, str] = {}

        def get(key: str, url: str) -> None:
            bodies[key] = requests.get(url, timeout=10).text

        threads = [threading.Thread(target=get, args=("ne", f"http://127.0.0.1:{ne.port}/metrics")),
                   threading.Thread(target=get, args=("ours", f"{ours.url}/metrics"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        ne.stop()
    theirs, mine = families(bodies["ne"]), families(bodies["ours"])
    node_names = {n for n in theirs if n.startswith("node_") and not n.startswith(NOT_OURS)}
    missing = sorted(node_names - set(mine))
    assert not missing, f"node_exporter families we lack: {missing}"
    problems = []
    for name in sorted(node_names):
        ttype, tseries = theirs[name]
        mtype, mseries = mine[name]
        if ttype != mtype:
            problems.append(f"{name}: type {mtype} != node_exporter's {ttype}")
        if set(tseries) != set(mseries):
            problems.append(f"{name}: label sets differ: ours-only {set(mseries) - set(tseries)}, "
                            f"theirs-only {set(tseries) - set(mseries)}")
            continue
        if name == "node_scrape_collector_duration_seconds":
            continue
        for ls, tv in tseries.items():
            mv = mseries[ls]
            if abs(mv - tv) > tolerance(name, mv, tv):
                problems.append(f"{name}{dict(ls)}: ours {mv} vs node_exporter {tv}")
    assert not problems, "\n".join(problems)
    assert len(node_names) > 60
