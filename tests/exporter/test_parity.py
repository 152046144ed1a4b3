"""prometheus-node-exporter 1.5 beside ours: first on fixture procfs/sysfs/udev/rootfs/
textfile trees (tests/exporter/nodetree.py) where every series must be identical —
names, types, HELP, labels and values — and then on this host, where values move
between the two scrapes and are compared within a tolerance."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter import nodetree
from tests.harness.servers import ManagedProcess, free_port, port_open

COLLECTORS = ["cpu", "meminfo", "filesystem", "diskstats", "loadavg", "netdev", "stat", "time", "uname"]
# Families node_exporter has that we deliberately do not serve.
NOT_OURS = ("go_", "promhttp_", "node_exporter_build_info", "process_")
# Values that are clocks: the same family and labels, never the same value.
CLOCKS = ("node_time_seconds", "node_scrape_collector_duration_seconds")
# node_exporter 1.5 flags for the optional parts, given identically to both exporters.
OPTIONAL = ["--collector.stat.softirq", "--collector.cpu.info", "--collector.cpu.info.flags-include=^(aes|avx.*)$",
            "--collector.cpu.info.bugs-include=spectre", "--no-collector.netdev.netlink"]


class NodeExporter(ManagedProcess):
    name = "node-exporter"

    def __init__(self, workdir: Path, args: list[str] | None = None, collectors: list[str] = COLLECTORS):
        super().__init__(workdir)
        self.port = free_port()
        self.args = list(args or [])
        self.collectors = collectors

    def command(self) -> list[str]:
        return ["/usr/bin/prometheus-node-exporter", "--collector.disable-defaults",
                *[f"--collector.{c}" for c in self.collectors], f"--web.listen-address=127.0.0.1:{self.port}",
                *self.args]

    def ready(self) -> bool:
        return port_open(self.port)


def families(text: str) -> dict[str, tuple[str, dict[frozenset, float]]]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, (fam.type, {}))[1][frozenset(s.labels.items())] = s.value
    return out


def headers(text: str) -> dict[str, tuple[str, str]]:
    """family name -> (TYPE, HELP) as written."""
    helps = dict(re.findall(r"^# HELP (\S+) ?(.*)$", text, re.M))
    return {n: (t, helps.get(n, "")) for n, t in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def scrape_both(a: str, b: str) -> tuple[str, str]:
    bodies: dict[str, str] = {}

    def get(url: str) -> None:
        bodies[url] = requests.get(url, timeout=20).text

    threads = [threading.Thread(target=get, args=(u,)) for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return bodies[a], bodies[b]


def differences(theirs_text: str, mine_text: str) -> list[str]:
    theirs, mine = families(theirs_text), families(mine_text)
    th, mh = headers(theirs_text), headers(mine_text)
    problems = [f"{n}: ours {mh.get(n)} vs node_exporter {t}" for n, t in th.items()
                if not n.startswith(NOT_OURS) and mh.get(n) != t]
    problems += [f"{n}: only ours has this family" for n in mh if n.startswith("node_") and n not in th]
    for name, (_, tseries) in theirs.items():
        if name.startswith(NOT_OURS):
            continue
        mseries = mine.get(name, ("", {}))[1]
        if set(tseries) != set(mseries):
            problems.append(f"{name}: label sets differ: ours-only {sorted(map(sorted, set(mseries) - set(tseries)))}"
                            f", theirs-only {sorted(map(sorted, set(tseries) - set(mseries)))}")
            continue
        if name in CLOCKS:
            continue
        problems += [f"{name}{dict(ls)}: ours {mseries[ls]!r} vs node_exporter {tv!r}"
                     for ls, tv in tseries.items() if mseries[ls] != tv and not (tv != tv and mseries[ls] != mseries[ls])]
    return problems


@pytest.mark.parametrize("layout", ["host", "container"])
def test_identical_to_node_exporter_on_fixture_trees(tmp_path: Path, exporter_factory, layout: str) -> None:
    """Every series of every implemented collector, on trees covering every family. In
    "container" the mount table lists mount points under --path.rootfs, as a container
    with the host's / at /host sees them."""
    root = tmp_path / "t"
    tree = nodetree.build(root, mount_prefix=str(root / "rootfs") if layout == "container" else "")
    collectors = [*COLLECTORS, "textfile"]
    ne = NodeExporter(tmp_path / "ne", [*tree.node_exporter_args(), *OPTIONAL], collectors)
    ne.start(timeout=20)
    ours = exporter_factory([*[f"--collector.{c}" for c in collectors], *tree.our_args(), *OPTIONAL])
    try:
        # Filesystem byte counts of the fixture's / (a directory of this busy machine's disk)
        # may move between the two scrapes; a real difference is there on every attempt.
        for _ in range(5):
            theirs, mine = scrape_both(f"http://127.0.0.1:{ne.port}/metrics", f"{ours.url}/metrics")
            problems = differences(theirs, mine)
            if not problems:
                break
    finally:
        ne.stop()
    assert not problems, "\n".join(problems)
    th = headers(theirs)
    for fam in ("node_cpu_core_throttles_total", "node_cpu_package_throttles_total", "node_cpu_isolated",
                "node_cpu_info", "node_cpu_flag_info", "node_cpu_bug_info", "node_softirqs_total",
                "node_disk_ata_rotation_rate_rpm", "node_disk_ata_write_cache", "node_disk_ata_write_cache_enabled",
                "node_disk_device_mapper_info", "node_disk_filesystem_info", "node_disk_info",
                "node_textfile_mtime_seconds", "job_created", "widgets_total", "raid_degraded",
                "batch_duration_seconds", "rpc_latency_seconds", "site_info", "node_filesystem_device_error"):
        assert fam in th, f"the fixture does not exercise {fam}"
    s = families(mine)
    fs = s["node_filesystem_size_bytes"][1]
    mps = {dict(ls)["mountpoint"] for ls in fs}
    assert mps == {"/", "/srv/data", "/srv/ro archive", "/tmp"}, mps
    err = {dict(ls)["mountpoint"]: v for ls, v in s["node_filesystem_device_error"][1].items()}
    assert err == {"/": 0, "/srv/data": 0, "/srv/ro archive": 0, "/tmp": 0, "/srv/nfs-gone": 1, "/srv/ext-gone": 1}


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


def test_parity_with_node_exporter_on_this_host(tmp_path: Path, exporter_factory) -> None:
    ne = NodeExporter(tmp_path / "ne")
    ne.start(timeout=20)
    ours = exporter_factory([*[f"--collector.{c}" for c in COLLECTORS], "--no-collector.textfile"])
    try:
        body_ne, body_ours = scrape_both(f"http://127.0.0.1:{ne.port}/metrics", f"{ours.url}/metrics")
    finally:
        ne.stop()
    theirs, mine = families(body_ne), families(body_ours)
    node_names = {n for n in theirs if n.startswith("node_") and not n.startswith(NOT_OURS)}
    missing = sorted(node_names - set(mine))
    assert not missing, f"node_exporter families we lack: {missing}"
    th, mh = headers(body_ne), headers(body_ours)
    problems = [f"{n}: ours {mh.get(n)} vs node_exporter {t}" for n, t in th.items()
                if n.startswith("node_") and not n.startswith(NOT_OURS) and mh.get(n) != t]
    for name in sorted(node_names):
        tseries = theirs[name][1]
        mseries = mine[name][1]
        if set(tseries) != set(mseries):
            problems.append(f"{name}: label sets differ: ours-only {set(mseries) - set(tseries)}, "
                            f"theirs-only {set(tseries) - set(mseries)}")
            continue
        if name in CLOCKS:
            continue
        for ls, tv in tseries.items():
            mv = mseries[ls]
            if abs(mv - tv) > tolerance(name, mv, tv):
                problems.append(f"{name}{dict(ls)}: ours {mv} vs node_exporter {tv}")
    assert not problems, "\n".join(problems)
    assert len(node_names) > 60
