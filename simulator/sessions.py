"""Per-host ZooKeeper sessions: every simulated host holds its own session and liveness node.

``fleet-simulator --sessions per-host`` stands in for a real fleet, where each exporter holds
one session: 10,000 hosts are 10,000 sessions, pings and reconnections, not one shared
session. A :class:`SessionPool` (in the simulator's asyncio process) splits the hosts over
worker processes (``python -m simulator.sessions``); each worker runs one
``discovery.registry.Registrar`` with its own kazoo client per host, on gevent.

Why gevent (measured in bench/zk_sessions.py ``clients``, docs/capacity.md): kazoo's default
threading handler costs 2 threads per client plus the Registrar's worker thread; gevent's
handler is part of kazoo and, with the standard library monkey-patched *in the worker only*,
the Registrar's threads, locks and events become greenlets, so the same registration code
runs unchanged at a fraction of the memory. The workers are separate processes because
monkey-patching cannot share a process with the simulator's asyncio server, and because
several processes spread the load over cores and under the per-process file limit.

Protocol with a worker: its configuration arrives in a JSON file (mode 0600; never argv,
which other users can read), commands as JSON lines on stdin (``add``, ``remove``,
``stop``), and it prints one JSON status line on stdout every ``report_interval`` seconds.
"""

from __future__ import annotations

if __name__ == "__main__":
    # A worker: patch before anything below creates a lock (logging does at import).
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402 - after the worker's monkey-patching
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

log = logging.getLogger("fleetmon.simulate")

# At most this many sessions per worker: each holds a socket and a wake-up socket pair (3 file
# descriptors), and kazoo on gevent costs ~0.1 ms of CPU per session per ping round
# (bench/zk_sessions.py), so 2,500 per process keeps a reconnection storm under a few seconds
# of one core and well under a 20,000 file-descriptor limit.
DEFAULT_PER_PROCESS = 2500
# Sessions started per second per worker: a fleet's agents never start in the same second,
# and a faster burst only makes replies time out (15 s) in a saturated worker and retry.
DEFAULT_START_RATE = 200.0
REPORT_INTERVAL = 0.5


def plan_processes(n_hosts: int, procs: int | None, per_process: int = DEFAULT_PER_PROCESS) -> int:
    """How many workers carry ``n_hosts`` sessions (``procs`` when given)."""
    if procs is not None:
        return max(1, min(procs, n_hosts))
    return max(1, -(-n_hosts // per_process))


class SessionPool:
    """Registrar-like front (``start``/``add_many``/``remove``/``stop``) over worker processes,
    one ZooKeeper session per host."""

    def __init__(self, hosts: str, root: str, session_timeout: float, procs: int | None = None,
                 agent: str = "fleet-simulator", start_rate: float = DEFAULT_START_RATE,
                 idle_wakeup: float = 5.0):
        self.hosts = hosts
        self.root = root
        self.session_timeout = session_timeout
        self.procs_wanted = procs
        self.agent = agent
        self.start_rate = start_rate
        self.idle_wakeup = idle_wakeup
        self._workers: list[_Worker] = []
        self._where: dict[str, int] = {}
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="fleetmon-sessions-")

    def start(self) -> SessionPool:
        return self

    def add_many(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Give each host its own session (a host already held is updated in its worker)."""
        entries = [dict(e) for e in entries]
        with self._lock:
            if not self._workers:
                self._spawn(entries)
                return
            for e in entries:
                idx = self._where.get(e["name"])
                if idx is None:
                    idx = min(range(len(self._workers)), key=lambda i: self._workers[i].size)
                    self._where[e["name"]] = idx
                    self._workers[idx].size += 1
                self._workers[idx].send({"op": "add", "entry": e})

    def remove(self, name: str, deregister: bool = True) -> None:
        """Close ``name``'s session (its liveness node goes); ``deregister`` also deletes inventory."""
        with self._lock:
            idx = self._where.get(name)
            if idx is not None:
                self._workers[idx].send({"op": "remove", "name": name, "deregister": deregister})

    def status(self) -> dict[str, Any]:
        """Sums over the workers' latest reports (see ``_Worker.report``)."""
        total: dict[str, Any] = {"workers": len(self._workers), "workers_running": 0}
        for w in self._workers:
            total["workers_running"] += int(w.running())
            for k, v in w.report.items():
                if k == "max_outage_s":
                    total[k] = max(total.get(k, 0.0), v)
                elif k in ("last_reconnect_at", "time"):
                    total[k] = max(total.get(k, 0.0), v or 0.0)
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    total[k] = total.get(k, 0) + v
        total["pids"] = [w.proc.pid for w in self._workers]
        return total

    def stop(self, deregister: bool = False, timeout: float = 30.0) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.send({"op": "stop", "deregister": deregister})
        deadline = time.monotonic() + timeout
        for w in workers:
            w.wait(max(0.1, deadline - time.monotonic()))
        self._tmp.cleanup()

    def _spawn(self, entries: list[dict[str, Any]]) -> None:
        n = plan_processes(len(entries), self.procs_wanted)
        for i in range(n):
            part = entries[i::n]
            for e in part:
                self._where[e["name"]] = i
            cfg = {"zk": self.hosts, "root": self.root, "session_timeout": self.session_timeout,
                   "agent": self.agent, "start_rate": self.start_rate, "idle_wakeup": self.idle_wakeup,
                   "report_interval": REPORT_INTERVAL, "entries": part}
            path = Path(self._tmp.name) / f"worker-{i}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f)
            self._workers.append(_Worker(i, path, len(part)))
        log.info("%d per-host ZooKeeper sessions in %d worker processes", len(entries), n)


class _Worker:
    """One worker process, its command pipe and its latest status report."""

    def __init__(self, index: int, config: Path, size: int):
        self.index = index
        self.size = size
        self.report: dict[str, Any] = {}
        env = dict(os.environ)
        repo = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "simulator.sessions", str(config)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                     bufsize=1)
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name=f"sessions-{index}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.report = json.loads(line)
            except ValueError:
                log.debug("worker %d: %s", self.index, line.rstrip())

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, cmd: dict[str, Any]) -> None:
        if not self.running() or self.proc.stdin is None:
            return
        with self._send_lock:
            try:
                self.proc.stdin.write(json.dumps(cmd) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ------------------------------------------------------------------ worker side (gevent)

def worker_main(config_path: str) -> None:
    """Run one worker: a Registrar and a kazoo client (gevent handler) per host.

    The caller has monkey-patched the standard library with gevent before importing anything
    that creates locks or threads (see the ``__main__`` block)."""
    import gevent
    from gevent.fileobject import FileObjectPosix
    from kazoo.handlers.gevent import SequentialGeventHandler
    from kazoo.protocol.states import KazooState

    from discovery.registry import Registrar
    from fleetmon.zk import make_client

    cfg = json.loads(Path(config_path).read_text())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s sessions: %(message)s")
    # kazoo logs every dropped connection; thousands of sessions would flood stderr.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    logging.getLogger("discovery.registry").setLevel(logging.ERROR)
    zk, root, timeout = cfg["zk"], cfg["root"], float(cfg["session_timeout"])
    # One handler per process: it owns the completion/callback greenlets that every client
    # of this worker shares, so a session costs its connection greenlet, not a thread pool.
    handler = SequentialGeventHandler()
    stats = {"disconnects": 0, "reconnects": 0, "lost": 0, "max_outage_s": 0.0,
             "last_reconnect_at": 0.0}
    down_since: dict[str, float] = {}
    regs: dict[str, Registrar] = {}
    clients: dict[str, Any] = {}

    def listener_for(name: str):
        def on_state(state: str) -> None:
            # Runs on the client's connection greenlet: record and return, never block.
            now = time.time()
            if state == KazooState.SUSPENDED:
                stats["disconnects"] += 1
                down_since.setdefault(name, now)
            elif state == KazooState.LOST:
                stats["lost"] += 1
                down_since.setdefault(name, now)
            elif state == KazooState.CONNECTED and name in down_since:
                stats["reconnects"] += 1
                stats["max_outage_s"] = max(stats["max_outage_s"], now - down_since.pop(name))
                stats["last_reconnect_at"] = now
        return on_state

    def add(entry: dict[str, Any]) -> None:
        name = entry["name"]
        if name in regs:
            regs[name].add_many([entry])
            return
        client = make_client(zk, timeout=timeout, handler=handler, role="registrar")
        client.add_listener(listener_for(name))
        reg = Registrar(zk, root=root, session_timeout=timeout, agent=cfg.get("agent", "fleet-simulator"),
                        client=client, idle_wakeup=float(cfg.get("idle_wakeup", 5.0)))
        client.start_async()
        reg.start()
        reg.add_many([entry])
        regs[name], clients[name] = reg, client

    def remove(name: str, deregister: bool) -> None:
        reg, client = regs.pop(name, None), clients.pop(name, None)
        if reg is None:
            return
        down_since.pop(name, None)
        if deregister:
            reg.remove(name, deregister=True)
            reg.wait(10.0)
        reg.stop()
        client.stop()
        client.close()

    def report() -> None:
        while True:
            connected = sum(1 for c in list(clients.values()) if c.connected)
            synced = expired = 0
            for r in list(regs.values()):  # copies: adds and removes run meanwhile
                s = r.status()
                synced += int(s["alive_ok"] == s["desired"] and s["inventory_ok"] == s["desired"]
                              and not s["pending_deletes"])
                expired += s["session_expirations"]
            sys.stdout.write(json.dumps({"sessions": len(regs), "connected": connected, "synced": synced,
                                         "expired": expired, "down_now": len(down_since), **stats,
                                         "time": time.time()}) + "\n")
            sys.stdout.flush()
            gevent.sleep(float(cfg.get("report_interval", REPORT_INTERVAL)))

    gevent.spawn(report)
    rate = float(cfg.get("start_rate", DEFAULT_START_RATE))
    for i, entry in enumerate(cfg["entries"]):
        add(entry)
        if rate > 0 and i % 50 == 49:
            gevent.sleep(50.0 / rate)

    stdin = FileObjectPosix(sys.stdin.fileno(), "r")
    deregister_all = False
    for line in stdin:
        try:
            cmd = json.loads(line)
        except ValueError:
            continue
        op = cmd.get("op")
        if op == "add":
            add(cmd["entry"])
        elif op == "remove":
            remove(cmd["name"], bool(cmd.get("deregister")))
        elif op == "stop":
            deregister_all = bool(cmd.get("deregister"))
            break
    # Parent gone (EOF) or told to stop: close every session so liveness goes at once.
    jobs = [gevent.spawn(remove, name, deregister_all) for name in list(regs)]
    gevent.joinall(jobs, timeout=20)


if __name__ == "__main__":
    worker_main(sys.argv[1])
