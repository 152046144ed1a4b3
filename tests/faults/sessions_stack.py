"""Real processes for the per-host-session failover test and bench/zk_sessions.py.

A 3-node ZooKeeper ensemble tuned like deploy/zookeeper/zoo.cfg (plus ``maxClientCnxns=0``,
which only loopback needs: every simulated host connects from 127.0.0.1, while a real fleet
makes one connection per host IP), the simulator holding one session per host
(``--sessions per-host``), discovery sidecars writing targets files, and watchers that record
what a failover does to them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.harness.servers import RepoCommand as Proc
from tests.harness.servers import ZooKeeperEnsemble, ZooKeeperServer, free_port

FLEET_DISCOVERY = str(Path(sys.executable).parent / "fleet-discovery")

# Server settings under test (the same as deploy/zookeeper/zoo.cfg's sessions group, except
# maxClientCnxns, which is per client IP and so must be unlimited on loopback).
ZK_TUNING = [
    "maxClientCnxns=0",
    "globalOutstandingLimit=2000",
    "snapCount=100000",
]


def tuned_ensemble(workdir: Path, heap_mb: int = 256, tick_ms: int = 500) -> ZooKeeperEnsemble:
    """An unstarted 3-node ensemble with ZK_TUNING and a ``heap_mb`` Java heap."""
    ens = ZooKeeperEnsemble(workdir)
    for node in ens.nodes:
        node.tick_ms = tick_ms
        node._write_config()
        node.config_path.write_text(node.config_path.read_text() + "\n".join(ZK_TUNING) + "\n")
        base = node.command

        def command(base: Any = base) -> list[str]:
            return [f"-Xmx{heap_mb}m" if a.startswith("-Xmx") else a for a in base()]

        node.command = command  # type: ignore[method-assign]
    return ens


def mntr(node: ZooKeeperServer) -> dict[str, str]:
    """The member's ``mntr`` figures ({} when it does not answer)."""
    try:
        text = node.four_letter("mntr", timeout=5)
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("\t")
        out[k.strip()] = v.strip()
    return out


def simulator(workdir: Path, zk: str, root: str, hosts: int, session_timeout: float,
              procs: int | None = None, port: int | None = None) -> Proc:
    """The fleet simulator holding one ZooKeeper session per host (unstarted)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "simulator", "--hosts", str(hosts), "--listen", f"127.0.0.1:{port}",
            "--zk", zk, "--zk-root", root, "--session-timeout", str(session_timeout),
            "--sessions", "per-host", "--series-per-host", "300", "--log-level", "warning"]
    if procs:
        argv += ["--session-procs", str(procs)]
    return Proc(workdir, "simulator", argv, port)


def sessions_status(sim: Proc) -> dict[str, Any]:
    return requests.get(f"http://127.0.0.1:{sim.port}/-/sessions", timeout=5).json()


def sidecar(workdir: Path, zk: str, root: str, shard: str, session_timeout: float,
            prometheus_url: str | None = None) -> tuple[Proc, Path]:
    """A `fleet-discovery run` sidecar (unstarted) and the targets file it writes."""
    port = free_port()
    output = workdir / f"targets-{shard}.json"
    argv = [FLEET_DISCOVERY, "run", "--zk", zk, "--root", root, "--shard", shard, "--replica", "r1",
            "--output", str(output), "--listen", f"127.0.0.1:{port}", "--retention", "0",
            "--debounce", "0.5", "--session-timeout", str(session_timeout), "--log-level", "info"]
    if prometheus_url:
        argv += ["--prometheus-url", prometheus_url]
    return Proc(workdir / f"sidecar-{shard}", f"sidecar-{shard}", argv, port), output


def target_names(path: Path) -> set[str] | None:
    """Host names in a targets file, or None while it is missing or unreadable."""
    try:
        return {g["labels"]["instance"] for g in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive_gauges(port: int) -> dict[str, float]:
    """``fleetmon_discovery_agent_alive`` per instance from a sidecar's /metrics."""
    out = {}
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("fleetmon_discovery_agent_alive{"):
            inst = line.split('instance="', 1)[1].split('"', 1)[0]
            out[inst] = float(line.rsplit(" ", 1)[1])
    return out


class Recorder:
    """Polls the targets files and the sidecars' liveness gauges in a thread and records the
    worst seen: hosts missing from the union of the targets files, and hosts not alive (with
    how long each stayed so)."""

    def __init__(self, files: list[Path], sidecar_ports: list[int], expected: set[str], interval: float = 0.25):
        self.files, self.ports, self.expected = files, sidecar_ports, expected
        self.interval = interval
        self.missing_from_targets: set[str] = set()
        self.file_read_failures = 0
        self.not_alive_since: dict[str, float] = {}
        self.not_alive_seconds: dict[str, float] = {}
        self.max_not_alive = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        now = time.monotonic()
        for name, since in self.not_alive_since.items():
            self.not_alive_seconds[name] = max(self.not_alive_seconds.get(name, 0.0), now - since)

    def _run(self) -> None:
        while not self._stop.is_set():
            union: set[str] = set()
            for f in self.files:
                names = target_names(f)
                if names is None:
                    self.file_read_failures += 1
                else:
                    union |= names
            self.missing_from_targets |= self.expected - union
            alive: dict[str, float] = {}
            for p in self.ports:
                try:
                    alive.update(alive_gauges(p))
                except (requests.RequestException, IndexError, ValueError):
                    pass
            now = time.monotonic()
            down = {n for n in self.expected if alive.get(n, 0.0) != 1.0} if alive else set()
            self.max_not_alive = max(self.max_not_alive, len(down))
            for n in down:
                self.not_alive_since.setdefault(n, now)
            for n in list(self.not_alive_since):
                if n not in down:
                    since = self.not_alive_since.pop(n)
                    self.not_alive_seconds[n] = max(self.not_alive_seconds.get(n, 0.0), now - since)
            self.samples += 1
            self._stop.wait(self.interval)
