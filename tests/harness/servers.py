"""Real servers for tests: ZooKeeper, Prometheus, Alertmanager and an SMTP sink.

Each server runs as a plain process on a free loopback port in its own temp dir,
is checked for readiness before a test sees it, and is stopped by PID. Every
started server is recorded in ``STARTED`` so that a failing test's report can
carry the tail of each server's log (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import requests
import yaml

from fleetmon.zkkeys import NETTY_JARS

STARTED: list[ManagedProcess] = []

ZK_CLASSPATH = ":".join(
    p
    for p in (
        "/etc/zookeeper/conf",
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/slf4j-simple.jar",
        # The TLS (Netty) client port; see fleetmon.zkkeys.NETTY_JARS.
        *NETTY_JARS,
    )
    if os.path.exists(p)
)

_security_dir: Path | None = None
_security_lock = threading.Lock()


def zk_security_dir() -> Path:
    """This process's ZooKeeper CA, server keystore and role credentials (made once).

    Every secured ZooKeeperServer of the process uses them, and the first secured start
    exports ``FLEETMON_ZK_SECURITY_DIR`` so that every client (``fleetmon.zk.make_client``)
    in this process and every child process it starts connects over TLS with its role's
    credential: tests and benchmarks get security on without touching each call site.
    """
    global _security_dir
    from fleetmon import zkkeys

    with _security_lock:
        if _security_dir is None:
            import tempfile

            _security_dir = zkkeys.ensure(Path(tempfile.mkdtemp(prefix="fleetmon-zksec-")))
        return _security_dir


def use_zk_security() -> Path:
    """Point this process (and its children) at the harness credentials; return their dir."""
    d = zk_security_dir()
    os.environ["FLEETMON_ZK_SECURITY_DIR"] = str(d)
    os.environ.pop("FLEETMON_ZK_INSECURE", None)
    return d


class ProcessExited(RuntimeError):
    """A server died while we waited for it: waiting longer cannot help."""


# Ports are drawn below Linux's ephemeral range (32768-60999), so an outgoing connection's
# source port cannot take one between free_port() and the server's bind, and every port
# handed out in this process is remembered, so two components of one test never get the
# same port (binding to port 0 twice can return the same port once the first socket closes).
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()
_port_lock = threading.Lock()
_port_rng = random.Random()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now that no earlier call in this process returned."""
    with _port_lock:
        for _ in range(1000):
            port = _port_rng.randrange(*_PORT_RANGE)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {_PORT_RANGE} after 1000 tries")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; return it or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as exc:  # noqa: BLE001 - readiness probes fail in many ways
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Stop a child by PID: ``sig`` (SIGTERM), then SIGKILL after ``timeout``; always reaps it.

    The one stop path for every process a test or a benchmark starts.
    """
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class ManagedProcess:
    """A child process with a log file, started and stopped by PID."""

    name = "process"
    ready_interval = 0.1  # seconds between readiness probes while starting

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # Subclasses provide the command and a readiness check.
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 60.0) -> ManagedProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True,
        )
        log.close()
        if self not in STARTED:
            STARTED.append(self)
        try:
            wait_until(self._ready_or_dead, timeout=timeout, interval=self.ready_interval,
                       what=f"{self.name} to be ready")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready; log tail:\n{self.log_tail()}") from exc
        return self

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ProcessExited(f"{self.name} exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
        return self.ready()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
        if self.proc:
            stop_process(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, for fault tests."""
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- ZooKeeper

class RepoCommand(ManagedProcess):
    """A command run from this checkout (``PYTHONPATH`` = the repo), ready once ``port`` accepts
    connections: fleetmon's own commands (sidecars, the simulator) as real processes."""

    def __init__(self, workdir: Path, name: str, argv: list[str], port: int):
        self.name = name
        super().__init__(workdir)
        self.argv, self.port = argv, port

    def command(self) -> list[str]:
        return self.argv

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def ready(self) -> bool:
        return port_open(self.port)


class ZooKeeperServer(ManagedProcess):
    """ZooKeeper 3.8 from Debian's package, started with java and its classpath.

    ``hosts`` is the kazoo connect string. For an ensemble member pass ``myid`` and
    ``peers`` (list of (client_port, quorum_port, election_port)).
    """

    name = "zookeeper"

    def __init__(self, workdir: Path, port: int | None = None, myid: int | None = None,
                 peers: list[tuple[int, int, int]] | None = None, tick_ms: int = 500,
                 insecure: bool = False):
        # Secure by default: TLS-only client port (Netty) and digest credentials for clients;
        # ``insecure`` gives the old plain port, for tests of open mode.
        self.insecure = insecure
        self.security_dir = None if insecure else use_zk_security()
        self.myid = myid
        if myid is not None:
            self.name = f"zookeeper-{myid}"
        super().__init__(workdir)
        self.port = port or free_port()
        self.peers = peers
        self.tick_ms = tick_ms
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.config_path = self.workdir / "zoo.cfg"
        self._write_config()

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.data_dir}",
            *([f"clientPort={self.port}", "clientPortAddress=127.0.0.1"] if self.insecure else
              [f"secureClientPort={self.port}", "secureClientPortAddress=127.0.0.1",
               *zkkeys_tls_lines(self.security_dir)]),
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            # Let tests choose session timeouts down to 1 s.
            "minSessionTimeout=1000",
            "maxSessionTimeout=60000",
            "jute.maxbuffer=4194304",
        ]
        if self.peers:
            for i, (_, quorum, election) in enumerate(self.peers, start=1):
                lines.append(f"server.{i}=127.0.0.1:{quorum}:{election}")
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        self.config_path.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        java = shutil.which("java") or "/usr/bin/java"
        return [
            java, "-Xmx256m", "-XX:+UseSerialGC", "-Xshare:auto",
            f"-Dzookeeper.log.dir={self.workdir}", "-Dzookeeper.root.logger=INFO,CONSOLE",
            "-Djute.maxbuffer=4194304",
            "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.config_path),
        ]

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as raw:
            s = raw
            if not self.insecure:
                import ssl

                ctx = ssl.create_default_context(cafile=str(self.security_dir / "ca.pem"))
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(word.encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode(errors="replace")

    def mode(self) -> str:
        """'standalone', 'leader', 'follower' or '' when not serving."""
        try:
            for line in self.four_letter("srvr").splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return ""

    def ready(self) -> bool:
        if self.peers:
            return self.mode() in ("leader", "follower")
        return self.four_letter("ruok") == "imok" and self.mode() == "standalone"


def zkkeys_tls_lines(d: Path | None) -> list[str]:
    from fleetmon import zkkeys

    assert d is not None
    return zkkeys.zoo_cfg_tls_lines(d)


class ZooKeeperEnsemble:
    """A 3-node (or n-node) ZooKeeper ensemble on loopback, for fault tests (secure like
    ZooKeeperServer unless ``insecure``; quorum traffic stays plain on loopback)."""

    def __init__(self, workdir: Path, size: int = 3, insecure: bool = False):
        self.workdir = Path(workdir)
        peers = [(free_port(), free_port(), free_port()) for _ in range(size)]
        self.nodes = [
            ZooKeeperServer(self.workdir / f"zk{i}", port=peers[i - 1][0], myid=i, peers=peers,
                            insecure=insecure)
            for i in range(1, size + 1)
        ]

    @property
    def hosts(self) -> str:
        return ",".join(n.hosts for n in self.nodes)

    def start(self, timeout: float = 90.0) -> ZooKeeperEnsemble:
        for n in self.nodes:
            n.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(n.log_path, "ab")
            n.proc = subprocess.Popen(n.command(), cwd=n.workdir, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            STARTED.append(n)
        # Members only become ready once a quorum has formed, so wait for all together.
        for n in self.nodes:
            wait_until(n._ready_or_dead, timeout=timeout, what=f"{n.name} to join the quorum")
        return self

    def leader(self) -> ZooKeeperServer:
        return wait_until(
            lambda: next((n for n in self.nodes if n.running() and n.mode() == "leader"), None),
            timeout=60, what="a ZooKeeper leader")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> ZooKeeperEnsemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- Prometheus

class PrometheusServer(ManagedProcess):
    """Prometheus 2.42 with ``config`` (a dict or YAML text), lifecycle API enabled.

    Extra files (rule files, file_sd targets) can be put in ``workdir`` before start;
    relative paths in the config resolve against ``workdir``.
    """

    name = "prometheus"

    def __init__(self, workdir: Path, config: dict | str, port: int | None = None,
                 extra_args: list[str] | None = None, name: str | None = None):
        if name:
            self.name = name
        super().__init__(workdir)
        self.port = port or free_port()
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"
        self.extra_args = list(extra_args or [])
        self.write_config(config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text)

    def command(self) -> list[str]:
        return [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=info",
            *self.extra_args,
        ]

    def ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def api(self, path: str, **params: Any) -> Any:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} failed: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; returns the ``result`` list (vector) or a one-item list (scalar)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_for_query(self, expr: str, predicate: Callable[[list[dict]], bool] | None = None,
                       timeout: float = 60.0) -> list[dict]:
        """Poll ``expr`` until ``predicate(result)`` (default: non-empty) holds; return the result."""
        pred = predicate or (lambda res: len(res) > 0)

        def check() -> list[dict] | None:
            res = self.query(expr)
            return res if pred(res) else None

        return wait_until(check, timeout=timeout, interval=0.25, what=f"query {expr!r}")

    def targets(self, state: str = "active") -> list[dict]:
        data = self.api("targets", state=state)
        return data["activeTargets"] if state == "active" else data["droppedTargets"]

    def rules(self) -> list[dict]:
        return self.api("rules")["groups"]

    def reload(self) -> requests.Response:
        return requests.post(f"{self.url}/-/reload", timeout=30)


# --------------------------------------------------------------------------- Alertmanager

class AlertmanagerServer(ManagedProcess):
    """Alertmanager 0.25 with ``config`` (dict or YAML text); clustering off unless
    ``cluster_port`` is given (then gossip on that loopback port, joining ``peers``,
    a list of "host:port", with short gossip intervals for tests; see AlertmanagerCluster)."""

    name = "alertmanager"

    # Gossip timing for tests: a dead peer is noticed and messages spread in about a second
    # (defaults: 200 ms gossip, 1 m push-pull, 15 s peer timeout per position).
    TEST_CLUSTER_ARGS = ("--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=5s",
                         "--cluster.probe-interval=500ms", "--cluster.probe-timeout=300ms",
                         "--cluster.reconnect-interval=2s", "--cluster.settle-timeout=2s")

    def __init__(self, workdir: Path, config: dict | str, port: int | None = None,
                 extra_args: list[str] | None = None, cluster_port: int | None = None,
                 peers: list[str] | None = None, peer_timeout: str = "2s", name: str | None = None):
        if name:
            self.name = name
        super().__init__(workdir)
        self.port = port or free_port()
        self.cluster_port = cluster_port
        self.peers = list(peers or [])
        self.peer_timeout = peer_timeout
        self.config_path = self.workdir / "alertmanager.yml"
        self.extra_args = list(extra_args or [])
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "alertmanager"
        if self.cluster_port:
            cluster = [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
                       f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
                       *(f"--cluster.peer={p}" for p in self.peers),
                       f"--cluster.peer-timeout={self.peer_timeout}", *self.TEST_CLUSTER_ARGS]
        else:
            cluster = ["--cluster.listen-address="]
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *cluster,
            "--log.level=debug",
            *self.extra_args,
        ]

    def status(self) -> dict:
        r = requests.get(f"{self.url}/api/v2/status", timeout=5)
        r.raise_for_status()
        return r.json()

    def peer_position(self) -> int:
        """This member's position in the cluster (0 notifies first; member n waits n x peer timeout)."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("alertmanager_peer_position "):
                return int(float(line.split()[1]))
        raise RuntimeError(f"{self.name}: no alertmanager_peer_position metric")

    def cluster_peers(self) -> int:
        """Members this Alertmanager sees in its gossip cluster (itself included)."""
        return len(self.status().get("cluster", {}).get("peers") or [])

    def ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def post_alerts(self, alerts: list[dict]) -> requests.Response:
        r = requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        r.raise_for_status()
        return r

    def alerts(self, **params: Any) -> list[dict]:
        r = requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        r.raise_for_status()
        return r.json()


class AlertmanagerCluster:
    """``size`` Alertmanager 0.25 members gossiping on loopback, each listing every other as
    a peer (as deploy/ does), with test gossip intervals; ``urls`` for Prometheus."""

    def __init__(self, workdir: Path, config: dict | str, size: int = 2, peer_timeout: str = "2s"):
        self.workdir = Path(workdir)
        cports = [free_port() for _ in range(size)]
        self.members = [
            AlertmanagerServer(self.workdir / f"am{i}", config, cluster_port=cports[i],
                               peers=[f"127.0.0.1:{p}" for j, p in enumerate(cports) if j != i],
                               peer_timeout=peer_timeout, name=f"alertmanager-{i}")
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{m.port}" for m in self.members]

    def start(self, timeout: float = 60.0) -> AlertmanagerCluster:
        for m in self.members:
            m.start(timeout=timeout)
        self.wait_joined(timeout=timeout)
        return self

    def first(self) -> AlertmanagerServer:
        """The member at position 0: the one that notifies, whose death costs a peer timeout."""
        live = [m for m in self.members if m.running()]
        return next(m for m in live if m.peer_position() == 0)

    def wait_joined(self, timeout: float = 60.0) -> None:
        live = [m for m in self.members if m.running()]
        wait_until(lambda: all(m.cluster_peers() == len(live) for m in live), timeout=timeout,
                   what=f"{len(live)} Alertmanagers to see each other")

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def __enter__(self) -> AlertmanagerCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- SMTP sink

class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that records every message it receives."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[dict] = []
        self._cond = threading.Condition()
        self._controller = None
        # stall_next(n): the next n messages are held after their DATA (the client waits for
        # the 250) until release(): a send in flight, for killing its sender mid-send.
        self._stall = 0
        self.stalled = threading.Event()
        self._release = threading.Event()

    def _record(self, envelope: Any) -> None:
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self._cond:
            self.messages.append(msg)
            self.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                   "received": time.time()})
            self._cond.notify_all()

    def stall_next(self, n: int = 1) -> None:
        self._release.clear()
        self.stalled.clear()
        self._stall = n

    def release(self) -> None:
        self._stall = 0
        self._release.set()

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                if sink._stall > 0:
                    sink._stall -= 1
                    sink.stalled.set()
                    # Held like a slow mail server. The whole message is here, so it counts as
                    # received even if its sender dies waiting for the 250 (aiosmtpd then cancels
                    # this handler): a real server may deliver a message whose 250 was lost.
                    try:
                        await asyncio.get_running_loop().run_in_executor(None, sink._release.wait, 300)
                    except asyncio.CancelledError:
                        sink._record(envelope)
                        raise
                sink._record(envelope)
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, predicate: Callable[[email.message.EmailMessage], bool] | None = None,
                 timeout: float = 30.0, count: int = 1) -> list[email.message.EmailMessage]:
        """Wait until ``count`` received messages satisfy ``predicate``; return them."""
        pred = predicate or (lambda m: True)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [m for m in self.messages if pred(m)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    subjects = [m.get("Subject") for m in self.messages]
                    raise TimeoutError(f"{len(hits)}/{count} matching messages after {timeout}s; "
                                       f"received subjects: {subjects}")
                self._cond.wait(left)

    @staticmethod
    def body(msg: email.message.EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else msg.get_payload()

    def mailto_url(self, to: str = "oncall@example.test", sender: str = "fleetmon@example.test") -> str:
        """The Apprise URL that delivers to this sink."""
        return f"mailto://{self.host}:{self.port}?from={sender}&to={to}&mode=insecure"

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


# --------------------------------------------------------------------------- HTTP servers

# The Prometheus text format's content type, for stand-in scrape targets.
EXPOSITION = "text/plain; version=0.0.4"


class HttpServer:
    """A threaded HTTP server on loopback: every GET, POST or PUT is answered by ``respond``
    (a subclass's, or the ``respond`` callable given), which gets the request as a dict
    (method, path, headers, body, received) and returns ``(status, content type, body)``.
    With ``record`` the requests are kept in ``requests`` for ``wait_for``. Stand-in scrape
    targets and receivers are subclasses."""

    def __init__(self, port: int | None = None, record: bool = False,
                 respond: Callable[[dict], tuple[int, str, bytes]] | None = None):
        self.port = port or free_port()
        self.record = record
        self.requests: list[dict] = []
        self._respond = respond
        self._cond = threading.Condition()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, request: dict) -> tuple[int, str, bytes]:
        if self._respond is None:
            raise NotImplementedError("pass respond= or override respond()")
        return self._respond(request)

    def start(self) -> Self:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                           "body": self.rfile.read(n) if n else b"", "received": time.time()}
                if server.record:
                    with server._cond:
                        server.requests.append(request)
                        server._cond.notify_all()
                status, ctype, body = server.respond(request)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_GET = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, predicate: Callable[[dict], bool] | None = None, timeout: float = 30.0,
                 count: int = 1) -> list[dict]:
        """Wait until ``count`` recorded requests satisfy ``predicate``; return them."""
        pred = predicate or (lambda r: True)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [r for r in self.requests if pred(r)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(hits)}/{count} matching requests after {timeout}s")
                self._cond.wait(left)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpSink(HttpServer):
    """A local HTTP server recording every request: a stand-in receiver speaking a push
    provider's API (ntfy, Apprise json://, form://) on loopback. ``status`` sets the reply."""

    def __init__(self, port: int | None = None, status: int = 200, reply: bytes = b'{"id":"ok"}'):
        super().__init__(port, record=True)
        self.status = status
        self.reply = reply

    def respond(self, request: dict) -> tuple[int, str, bytes]:
        return self.status, "application/json", self.reply
