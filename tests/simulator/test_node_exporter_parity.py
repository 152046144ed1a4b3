"""The simulated hosts look like node_exporter 1.5: every family both expose has the same
type and the same label names as the real prometheus-node-exporter on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from simulator.model import Fleet
from tests.harness.servers import ManagedProcess, free_port

COLLECTORS = ("cpu", "meminfo", "filesystem", "diskstats", "loadavg", "netdev", "netstat", "stat", "uname",
              "vmstat", "time", "os", "sockstat", "softnet", "filefd", "textfile")


class NodeExporter(ManagedProcess):
    name = "node-exporter"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.port = free_port()

    def command(self) -> list[str]:
        binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        return [binary, f"--web.listen-address=127.0.0.1:{self.port}", "--collector.disable-defaults",
                *(f"--collector.{c}" for c in COLLECTORS)]

    def ready(self) -> bool:
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1).status_code == 200


def families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    out = {}
    for fam in text_string_to_metric_families(text):
        labels = frozenset(k for s in fam.samples for k in s.labels if k != "le")
        out[fam.name] = (fam.type, labels)
    return out


def test_shared_families_match_real_node_exporter(tmp_path):
    with NodeExporter(tmp_path) as ne:
        real = families(requests.get(f"http://127.0.0.1:{ne.port}/metrics", timeout=10).text)
    fleet = Fleet(30)
    shared_total = set()
    for role in ("web", "db", "cache"):
        host = next(h for h in fleet.hosts if h.role == role)
        sim = families(fleet.render(host).decode())
        shared = set(sim) & set(real)
        shared_total |= shared
        for name in shared:
            assert sim[name] == real[name], (name, sim[name], real[name])
    # The core families dashboards and rules use are all among them (counters without _total).
    for need in ("node_cpu_seconds", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
                 "node_disk_read_bytes", "node_network_receive_bytes", "node_load1", "node_boot_time_seconds",
                 "node_uname_info", "node_scrape_collector_success"):
        assert need in shared_total, need
    assert len(shared_total) >= 60
