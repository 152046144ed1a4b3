"""Fixtures for the exporter: a real fleet-exporter process, scrape helpers and a
fixture procfs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import ManagedProcess, free_port, port_open

REPO = Path(__file__).resolve().parents[2]


class ExporterProcess(ManagedProcess):
    """``python -m exporter`` on a free loopback port."""

    name = "fleet-exporter"

    def __init__(self, workdir: Path, args: list[str], port: int | None = None, scheme: str = "http",
                 auth: tuple[str, str] | None = None, prefix: list[str] | None = None):
        super().__init__(workdir)
        self.prefix = list(prefix or [])
        self.port = port or free_port()
        self.args = args
        self.scheme = scheme
        self.auth = auth

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [*self.prefix, sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{self.port}", *self.args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def ready(self) -> bool:
        return port_open(self.port)

    def metrics_text(self) -> str:
        r = requests.get(f"{self.url}/metrics", timeout=10, auth=self.auth)
        r.raise_for_status()
        return r.text


def parse_samples(text: str) -> dict[str, dict[frozenset, float]]:
    """sample name -> {frozenset(labels.items()): value}."""
    out: dict[str, dict[frozenset, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float | None:
    series = samples.get(name, {})
    for ls, v in series.items():
        d = dict(ls)
        if all(d.get(k) == want for k, want in labels.items()):
            return v
    return None


@pytest.fixture
def exporter_factory(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    started: list[ExporterProcess] = []

    def make(args: list[str], start: bool = True, **kw) -> ExporterProcess:
        p = ExporterProcess(tmp_path / f"exporter-{len(started)}", args, **kw)
        started.append(p)
        if start:
            p.start(timeout=30)
        return p

    yield make
    for p in started:
        p.stop()


def write_procfs(root: Path) -> Path:
    """A small, fully known procfs/sysfs tree (what node_exporter's fixtures do)."""
    proc = root / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "stat").write_text(
        "cpu  300 10 200 5000 40 0 5 1 0 0\n"
        "cpu0 100 5 100 2500 20 0 3 1 0 0\n"
        "cpu1 200 5 100 2500 20 0 2 0 7 3\n"
        "intr 123456 1 2 3\n"
        "ctxt 987654\n"
        "btime 1764300000\n"
        "processes 4242\n"
        "procs_running 3\n"
        "procs_blocked 1\n"
        "softirq 1 2 3\n")
    (proc / "meminfo").write_text(
        "MemTotal:       16384000 kB\nMemFree:         1024000 kB\nMemAvailable:    8192000 kB\n"
        "Active(anon):     10000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n")
    (proc / "loadavg").write_text("0.50 0.25 0.10 2/345 6789\n")
    (proc / "diskstats").write_text(
        "   8       0 sda 100 2 800 50 200 3 1600 70 1 90 120 0 0 0 0 5 6\n"
        "   8       1 sda1 1 1 1 1 1 1 1 1 0 1 1\n"
        "   7       0 loop0 9 9 9 9 9 9 9 9 0 9 9\n"
        " 259       0 nvme0n1 10 0 20 30 40 0 80 90 0 100 110\n")
    (proc / "net" / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        "    lo:  1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
        "  eth0: 5000 50 1 2 0 0 0 3 7000 70 0 4 0 0 0 0\n")
    mp = root / "data"
    mp.mkdir()
    (proc / "mounts").write_text(
        "proc /proc proc rw 0 0\n"
        f"/dev/sdz1 {mp} ext4 rw,relatime 0 0\n"
        "/dev/sdz2 /srv/stuck nfs4 ro,relatime 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n")
    for f, v in {"ostype": "Linux", "osrelease": "6.1.0-test", "version": "#1 SMP test",
                 "hostname": "fixture-host", "domainname": "(none)"}.items():
        (proc / "sys" / "kernel" / f).write_text(v + "\n")
    sysfs = root / "sys"
    (sysfs / "class" / "net" / "eth0" / "statistics").mkdir(parents=True)
    (sysfs / "class" / "net" / "eth0" / "statistics" / "rx_nohandler").write_text("8\n")
    return proc
