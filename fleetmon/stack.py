"""Fleet in a box: the whole fleetmon system on loopback, for `make run` / `make stop` / `make status`.

Every part runs as a plain process with its pid file, log and state under ``.run/``:
ZooKeeper; two Prometheus shards, each with its ``fleet-discovery run`` sidecar (which also
runs the rulesync agent), shard ``a`` as an HA pair (replicas r1 and r2, both scraping every
host of the shard); the global Prometheus with console templates, fed by
``fleet-discovery global``; a 2-member Alertmanager gossip cluster (``prometheus/alertmanager.yml``,
every member posting to both routers); two alert-routers coordinating deliveries through
ZooKeeper (``--zk``); a local SMTP server with a mailbox page; the exporter for this
machine; the host simulator playing ``stack/scenario.yaml``; then ``rulesync apply
stack/rules.yaml``. Ports come from ``FLEETMON_PORT_<NAME>`` environment variables.

    python -m fleetmon.stack start|stop|status
    python -m fleetmon.stack mailbox --smtp-port P --http-port Q --maildir DIR   (internal)
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmon.resources import prometheus_file, real_path
from fleetmon.zk import ENV_INSECURE, ZkSecurityError, env_flag

REPO = Path(__file__).resolve().parents[1]
RUN = Path(os.environ.get("FLEETMON_RUN_DIR", REPO / ".run"))
HOST = "127.0.0.1"
TLS_CA = RUN / "tls" / "fleetmon-stack-ca.crt"  # made by stack_tls(); Alertmanager and probes trust it

# name -> default port; override with FLEETMON_PORT_<NAME> (dashes as underscores).
# Prometheus and Alertmanager sit 100 above their usual ports: Debian's packages start their
# own services on 9090/9093 (and node_exporter on 9100) on a machine with systemd.
DEFAULT_PORTS = {
    "zookeeper": 2181,
    "prometheus-a": 9190,
    "prometheus-b": 9191,
    "prometheus-global": 9192,
    "alertmanager": 9193,
    "alertmanager-2": 9194,
    "prometheus-a2": 9195,
    "alertmanager-gossip": 9196,
    "alertmanager-2-gossip": 9197,
    "sidecar-a": 9848,
    "sidecar-b": 9858,
    "sidecar-a2": 9878,
    "discovery-global": 9868,
    "alert-router": 9849,
    "alert-router-2": 9859,
    "exporter": 9847,
    "simulator": 9850,
    "smtp": 2525,
    "mailbox": 8025,
}
ZK_CLASSPATH = ("/etc/zookeeper/conf", "/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar")
# CA, ZooKeeper keystore, role credentials and the bundle signing key (fleetmon.zkkeys); every
# child process finds them through FLEETMON_ZK_SECURITY_DIR. FLEETMON_ZK_INSECURE=true runs
# ZooKeeper plain and open instead (logged by every client).
SECURITY = RUN / "security"


def zk_insecure() -> bool:
    return env_flag(os.environ.get(ENV_INSECURE), ENV_INSECURE)
SHARDS = ("a", "b")
# Shard a runs as an HA pair: both replicas scrape the same hosts and evaluate the same rules;
# Alertmanager merges their identical alerts (replica is dropped from alert labels) and the
# global Prometheus counts each host once whichever replica answers (prometheus/global.yml).
REPLICAS = {"a": ("r1", "r2"), "b": ("r1",)}
ALERTMANAGERS = ("alertmanager", "alertmanager-2")
ROUTERS = ("alert-router", "alert-router-2")


def replica_name(shard: str, replica: str) -> str:
    """``prometheus-a`` for r1, ``prometheus-a2`` for r2 (the port and process names)."""
    return f"{shard}" if replica == "r1" else f"{shard}{replica[1:]}"
SCRAPE_INTERVAL = os.environ.get("FLEETMON_SCRAPE_INTERVAL", "15s")
EVAL_INTERVAL = os.environ.get("FLEETMON_EVAL_INTERVAL", "15s")


class StackError(RuntimeError):
    """Something the user must fix (port taken, already running, missing binary)."""


def port_env(name: str) -> str:
    return "FLEETMON_PORT_" + name.upper().replace("-", "_")


def ports() -> dict[str, int]:
    out = {}
    for name, default in DEFAULT_PORTS.items():
        raw = os.environ.get(port_env(name), str(default))
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise StackError(f"{port_env(name)}={raw!r}: not a TCP port")
        out[name] = int(raw)
    dup = {p for p in out.values() if list(out.values()).count(p) > 1}
    if dup:
        raise StackError(f"the same port is configured twice: {sorted(dup)}")
    return out


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def tls_verify(url: str) -> str | bool:
    """What requests should verify ``url`` against: the stack's HTTPS services (the routers)
    carry certificates from the stack's own CA."""
    return str(TLS_CA) if url.startswith("https://") and TLS_CA.exists() else True


def http_ok(url: str, timeout: float = 1.0) -> bool:
    import requests

    try:
        return requests.get(url, timeout=timeout, verify=tls_verify(url)).status_code == 200
    except requests.RequestException:
        return False


def zk_ok(port: int) -> bool:
    import ssl

    try:
        with socket.create_connection((HOST, port), timeout=1) as raw:
            s = raw
            if not zk_insecure():
                s = ssl.create_default_context(cafile=str(SECURITY / "ca.pem")).wrap_socket(raw, server_hostname=HOST)
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except (OSError, ssl.SSLError):
        return False


def py(module: str, prog: str, *args: str) -> list[str]:
    """Run a package's click ``main`` from this checkout, with or without its console script."""
    boot = f"import sys; sys.argv[0] = {prog!r}; from {module} import main; sys.exit(main())"
    return [sys.executable, "-c", boot, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- processes

@dataclass
class Proc:
    name: str
    cmd: list[str]
    ready: Callable[[], bool]
    url: str = ""
    what: str = ""
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    probe: str = ""  # health URL for `status` (default: url)

    @property
    def pidfile(self) -> Path:
        return RUN / "pids" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return RUN / "logs" / f"{self.name}.log"


def read_pidfile(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(info: dict[str, Any] | None) -> bool:
    """The recorded process still runs and is the one we started (not a recycled PID)."""
    if not info:
        return False
    pid = int(info.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    argv = [a.decode(errors="replace") for a in cmdline if a]
    if info.get("cmdline"):
        return argv == [a for a in info["cmdline"] if a]
    return bool(argv) and argv[0] == info.get("argv0")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch(p: Proc) -> int:
    p.logfile.parent.mkdir(parents=True, exist_ok=True)
    p.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(p.logfile, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(p.cmd)}\n".encode())
        log.flush()
        child = subprocess.Popen(p.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=REPO, env=child_env(p.env), start_new_session=True)
    p.pidfile.write_text(json.dumps({"pid": child.pid, "argv0": p.cmd[0], "cmdline": p.cmd, "name": p.name,
                                     "url": p.url,
                                     "probe": p.probe or p.url, "what": p.what, "started": time.time()}))
    deadline = time.monotonic() + p.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise StackError(f"{p.name} exited with status {child.returncode} while starting; "
                             f"log {p.logfile}:\n{tail(p.logfile)}")
        try:
            if p.ready():
                return child.pid
        except Exception:  # noqa: BLE001 - a probe fails in many ways until the server is up
            pass
        time.sleep(0.25)
    raise StackError(f"{p.name} not ready after {p.timeout:.0f}s; log {p.logfile}:\n{tail(p.logfile)}")


def run_once(name: str, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    """A one-shot step (rulesync compile/apply); its output goes to .run/logs/<name>.log too."""
    res = subprocess.run(cmd, cwd=REPO, env=child_env(env), capture_output=True, text=True, timeout=timeout)
    out = (res.stdout + res.stderr).strip()
    (RUN / "logs").mkdir(parents=True, exist_ok=True)
    with open(RUN / "logs" / f"{name}.log", "a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n{out}\n")
    if res.returncode != 0:
        raise StackError(f"{name} failed (exit {res.returncode}):\n{out}")
    return out


def stop_pid(info: dict[str, Any], timeout: float = 15.0) -> bool:
    """SIGTERM the process group we started, SIGKILL after ``timeout``. True if it was running."""
    if not pid_alive(info):
        return False
    pid = int(info["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)  # start_new_session made pid the group leader
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(info):
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


# --------------------------------------------------------------------------- configuration

def have_module(mod: str) -> bool:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def write_yaml(path: Path, data: Any, mode: int = 0o644) -> None:
    import yaml

    from fleetmon.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(data, sort_keys=False), mode)


def shard_config(shard: str, port: dict[str, int], pdir: Path, replica: str = "r1") -> str:
    """The shard's Prometheus config, rendered from the shipped template (prometheus/shard.yml.tmpl)
    exactly as production renders it, with the shipped recording rules copied beside it. Every
    replica sends its alerts to every Alertmanager of the cluster."""
    rn = replica_name(shard, replica)
    from discovery.promconfig import render_shard_config

    shipped = pdir / "shard-rules"
    shipped.mkdir(parents=True, exist_ok=True)
    for name in ("recording.yml", "fleet.yml", "liveness.yml"):
        (shipped / name).write_bytes(prometheus_file("rules", name).read_bytes())
    return render_shard_config(
        shard=shard, replica=replica, targets_file="targets.json",
        sidecar_address=f"{HOST}:{port[f'sidecar-{rn}']}",
        prometheus_address=f"{HOST}:{port[f'prometheus-{rn}']}",
        rules_dir="rules", alertmanagers=[f"{HOST}:{port[a]}" for a in ALERTMANAGERS],
        scrape_interval=SCRAPE_INTERVAL, evaluation_interval=EVAL_INTERVAL,
        shipped_rules_glob="shard-rules/*.yml",
    )


def stack_tls() -> tuple[Path, Path]:
    """The router's certificate and key, signed by the stack's CA (``.run/tls``), made once."""
    from fleetmon import tlscerts

    d = TLS_CA.parent
    cert, key = d / "alert-router.crt", d / "alert-router.key"
    if not (TLS_CA.exists() and cert.exists() and key.exists()):
        ca = tlscerts.make_ca(d, TLS_CA.stem)
        tlscerts.issue(ca, d, "alert-router", hosts=(HOST, "localhost"))
    return cert, key


def _router_scrape_over_https(path: Path) -> None:
    """The stack's router serves HTTPS: its scrape job needs the scheme and the stack CA."""
    import yaml

    cfg = yaml.safe_load(path.read_text())
    for job in cfg.get("scrape_configs") or []:
        if job.get("job_name") == "fleetmon-alert-router":
            job["scheme"] = "https"
            job["tls_config"] = {"ca_file": str(TLS_CA)}
            write_yaml(path, cfg)


def alertmanager_config(port: dict[str, int], token_file: Path) -> dict[str, Any]:
    import yaml

    src = prometheus_file("alertmanager.yml")
    cfg = yaml.safe_load(src.read_text()) if src.is_file() else {
        "route": {"receiver": "alert-router", "group_by": ["alertname", "notify", "severity"],
                  "group_wait": "10s", "group_interval": "30s", "repeat_interval": "4h"},
        "receivers": [{"name": "alert-router", "webhook_configs": [{"send_resolved": True}]}]}
    for rcv in cfg.get("receivers", []):
        hooks = rcv.get("webhook_configs", [])
        # One webhook per router (router HA): the shipped file lists two.
        while hooks and len(hooks) < len(ROUTERS):
            hooks.append(dict(hooks[0]))
        for i, wh in enumerate(hooks):
            wh["url"] = f"https://{HOST}:{port[ROUTERS[i % len(ROUTERS)]]}/api/v1/alerts"
            wh["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                                 "tls_config": {"ca_file": str(TLS_CA)}}
    return cfg


def console_dirs() -> tuple[Path, Path]:
    ours = real_path(prometheus_file("consoles"))
    libs = real_path(prometheus_file("console_libraries"))
    debian = Path("/usr/share/doc/prometheus/examples")
    return (ours if ours.is_dir() else debian / "consoles",
            libs if libs.is_dir() else debian / "console_libraries")


def readable_logs() -> list[str]:
    """This machine's real logs the exporter can read, as --log TYPE:PATH flags."""
    found = []
    for typ, path in (("syslog", "/var/log/syslog"), ("syslog", "/var/log/messages"),
                      ("nginx_access", "/var/log/nginx/access.log"), ("nginx_error", "/var/log/nginx/error.log"),
                      ("apache_access", "/var/log/apache2/access.log"),
                      ("apache_error", "/var/log/apache2/error.log")):
        if os.path.isfile(path) and os.access(path, os.R_OK):
            found.append(f"{typ}:{path}")
    return found


def plan(port: dict[str, int], n_hosts: int) -> tuple[list[Proc], list[str]]:
    """The processes to start, in order, and what is missing."""
    zk = f"{HOST}:{port['zookeeper']}"
    token_file = RUN / "alert-router" / "token"
    missing: list[str] = []
    procs: list[Proc] = []
    u = lambda name, path="": f"http://{HOST}:{port[name]}{path}"  # noqa: E731

    java = shutil.which("java")
    from fleetmon import zkkeys

    cp = [p for p in (*ZK_CLASSPATH, *zkkeys.NETTY_JARS) if os.path.exists(p)]
    if java and len(cp) >= 2:
        zdir = RUN / "zookeeper"
        (zdir / "data").mkdir(parents=True, exist_ok=True)
        if zk_insecure():
            listen = [f"clientPort={port['zookeeper']}", f"clientPortAddress={HOST}"]
        else:
            zkkeys.ensure(SECURITY)
            os.environ["FLEETMON_ZK_SECURITY_DIR"] = str(SECURITY)  # inherited by every child (child_env)
            listen = [f"secureClientPort={port['zookeeper']}", f"secureClientPortAddress={HOST}",
                      *zkkeys.zoo_cfg_tls_lines(SECURITY)]
        (zdir / "zoo.cfg").write_text("\n".join([
            "tickTime=2000", "initLimit=10", "syncLimit=5", f"dataDir={zdir / 'data'}", *listen,
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat,mntr", "jute.maxbuffer=4194304", ""]))
        procs.append(Proc("zookeeper", [java, "-Xmx256m", "-XX:+UseSerialGC", f"-Dzookeeper.log.dir={zdir}",
                                        "-Dzookeeper.root.logger=INFO,CONSOLE", "-Djute.maxbuffer=4194304",
                                        "-cp", ":".join(cp), "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                        str(zdir / "zoo.cfg")],
                          lambda: zk_ok(port["zookeeper"]), zk, "ZooKeeper (hosts, shards, rule bundle)",
                          timeout=90))
    else:
        missing.append("ZooKeeper (java or /usr/share/java/zookeeper.jar missing: apt-get install zookeeper)")

    if have_module("aiosmtpd"):
        procs.append(Proc("mailbox", [sys.executable, "-m", "fleetmon.stack", "mailbox",
                                      "--smtp-port", str(port["smtp"]), "--http-port", str(port["mailbox"]),
                                      "--maildir", str(RUN / "mail")],
                          lambda: http_ok(u("mailbox", "/healthz")), u("mailbox", "/"),
                          f"Mailbox: mail the router sent (SMTP on {HOST}:{port['smtp']})"))
    else:
        missing.append("local SMTP server (the [stack] extra: pip install 'fleetmon[stack]')")

    if have_module("alert_router.cli"):
        RUN.joinpath("alert-router").mkdir(parents=True, exist_ok=True)
        cert, key = stack_tls()
        rdir = RUN / "alert-router"
        # The mailbox address is the operator's (this stack's) to set, not the rule author's:
        # stack/rules.yaml names the group, the router's local_recipients fills it in.
        write_yaml(rdir / "local-recipients.yaml", {"recipients": {"oncall": [
            f"mailto://{HOST}:{port['smtp']}?from=fleetmon@localhost&to=oncall@localhost&mode=insecure"]}}, 0o600)
        write_yaml(rdir / "alert-router.yml", {"local_recipients": str(rdir / "local-recipients.yaml")}, 0o600)
        for i, name in enumerate(ROUTERS, start=1):
            # Two routers over HTTPS, each with its own queue, both receiving everything; ZooKeeper
            # claims make each alert state go out once (docs/availability.md).
            ru = lambda path="", name=name: f"https://{HOST}:{port[name]}{path}"  # noqa: E731
            procs.append(Proc(name, py("alert_router.cli", "alert-router", "serve",
                                       "--config", str(rdir / "alert-router.yml"),
                                       "--listen", f"{HOST}:{port[name]}",
                                       "--recipients", str(RUN / "rules-compiled" / "recipients.yaml"),
                                       "--token-file", str(token_file),
                                       "--state-dir", str(rdir / f"state-{i}"),
                                       "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                       "--zk", zk),
                              lambda ru=ru: http_ok(ru("/healthz")), ru("/api/v1/deliveries"),
                              f"alert-router {i} deliveries over HTTPS (CA {TLS_CA}; Alertmanager webhook -> email)",
                              probe=ru("/healthz")))
    else:
        missing.append("alert-router (alert_router package)")

    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if am:
        adir = RUN / "alertmanager"
        write_yaml(adir / "alertmanager.yml", alertmanager_config(port, token_file))
        gossip = {a: port[f"{a}-gossip"] for a in ALERTMANAGERS}
        for name in ALERTMANAGERS:
            peers = [f"--cluster.peer={HOST}:{p}" for a, p in gossip.items() if a != name]
            procs.append(Proc(name, [am, f"--config.file={adir / 'alertmanager.yml'}",
                                     f"--storage.path={adir / ('data' if name == 'alertmanager' else 'data-2')}",
                                     f"--web.listen-address={HOST}:{port[name]}",
                                     f"--web.external-url={u(name)}",
                                     f"--cluster.listen-address={HOST}:{gossip[name]}",
                                     f"--cluster.advertise-address={HOST}:{gossip[name]}", *peers,
                                     "--cluster.settle-timeout=5s"],
                              lambda name=name: http_ok(u(name, "/-/ready")), u(name, "/"),
                              f"Alertmanager (cluster member {ALERTMANAGERS.index(name) + 1})"))
    else:
        missing.append("Alertmanager (apt-get install prometheus-alertmanager)")

    prom = shutil.which("prometheus")
    have_discovery = have_module("discovery.cli")
    for shard in SHARDS:
        for replica in REPLICAS[shard]:
            rn = replica_name(shard, replica)
            pdir = RUN / f"prometheus-{rn}"
            (pdir / "rules").mkdir(parents=True, exist_ok=True)
            if not (pdir / "targets.json").exists():
                (pdir / "targets.json").write_text("[]\n")
            pair = f" (replica {replica})" if len(REPLICAS[shard]) > 1 else ""
            if prom:
                from fleetmon.atomic import write_atomic

                write_atomic(pdir / "prometheus.yml", shard_config(shard, port, pdir, replica))
                name = f"prometheus-{rn}"
                procs.append(Proc(name, [prom, f"--config.file={pdir / 'prometheus.yml'}",
                                         f"--storage.tsdb.path={pdir / 'data'}",
                                         f"--web.listen-address={HOST}:{port[name]}", "--web.enable-lifecycle",
                                         f"--web.external-url={u(name)}", "--storage.tsdb.retention.time=2d"],
                                  lambda name=name: http_ok(u(name, "/-/ready")), u(name, "/classic/graph"),
                                  f"Prometheus shard {shard}{pair}", timeout=90, probe=u(name, "/-/ready")))
            if have_discovery:
                name = f"sidecar-{rn}"
                args = ["run", "--zk", zk, "--shard", shard, "--replica", replica, "--output",
                        str(pdir / "targets.json"), "--listen", f"{HOST}:{port[name]}"]
                if prom:
                    args += ["--prometheus-url", u(f"prometheus-{rn}"), "--rules-dir", str(pdir / "rules")]
                procs.append(Proc(name, py("discovery.cli", "fleet-discovery", *args),
                                  lambda name=name: http_ok(u(name, "/metrics")), u(name, "/metrics"),
                                  f"discovery sidecar of shard {shard}{pair} (+ rulesync agent)"))
    if not prom:
        missing.append("Prometheus (apt-get install prometheus)")
    if not have_discovery:
        missing.append("discovery sidecars (discovery package)")

    gdir = RUN / "prometheus-global"
    (gdir / "targets").mkdir(parents=True, exist_ok=True)
    shipped = real_path(prometheus_file())  # prometheus/ in a checkout, fleetmon/prometheus/ installed
    global_yml = shipped / "global.yml"
    if prom and global_yml.exists():
        # global.yml's paths are relative to its directory: give it a copy with rules/ and targets/.
        shutil.copy(global_yml, gdir / "prometheus.yml")
        _router_scrape_over_https(gdir / "prometheus.yml")
        if (gdir / "rules").is_symlink() or (gdir / "rules").exists():
            (gdir / "rules").unlink() if (gdir / "rules").is_symlink() else shutil.rmtree(gdir / "rules")
        (gdir / "rules").symlink_to(shipped / "rules")
        tfiles = {"alertmanagers.json": [{"targets": [f"{HOST}:{port[a]}" for a in ALERTMANAGERS]}],
                  "alert-router.json": [{"targets": [f"{HOST}:{port[r]}" for r in ROUTERS]}]}
        for fname, content in tfiles.items():
            (gdir / "targets" / fname).write_text(json.dumps(content) + "\n")
        if not (gdir / "targets" / "global-shards.json").exists():
            (gdir / "targets" / "global-shards.json").write_text("[]\n")
        consoles, libs = console_dirs()
        if have_discovery:
            procs.append(Proc("discovery-global", py("discovery.cli", "fleet-discovery", "global", "--zk", zk,
                                                     "--output", str(gdir / "targets" / "global-shards.json"),
                                                     "--listen", f"{HOST}:{port['discovery-global']}"),
                              lambda: http_ok(u("discovery-global", "/metrics")), u("discovery-global", "/metrics"),
                              "discovery of live shards for the global Prometheus"))
        page = "/consoles/index.html.example" if "doc/prometheus" in str(consoles) else "/consoles/index.html"
        procs.append(Proc("prometheus-global", [prom, f"--config.file={gdir / 'prometheus.yml'}",
                                                f"--storage.tsdb.path={gdir / 'data'}",
                                                f"--web.listen-address={HOST}:{port['prometheus-global']}",
                                                f"--web.external-url={u('prometheus-global')}",
                                                "--web.enable-lifecycle", f"--web.console.templates={consoles}",
                                                f"--web.console.libraries={libs}"],
                          lambda: http_ok(u("prometheus-global", "/-/ready")), u("prometheus-global", page),
                          "global Prometheus: console dashboards", timeout=90,
                          probe=u("prometheus-global", "/-/ready")))
        if not (shipped / "consoles").is_dir():
            missing.append("fleetmon console templates (prometheus/consoles): serving Debian's examples")
    elif prom:
        missing.append("global Prometheus (prometheus/global.yml)")

    if have_module("exporter.cli"):
        edir = RUN / "exporter"
        edir.mkdir(parents=True, exist_ok=True)
        args = ["--listen", f"{HOST}:{port['exporter']}", "--zk", zk, "--state-file", str(edir / "offsets.json")]
        for flag in readable_logs():
            args += ["--log", flag]
        procs.append(Proc("exporter", py("exporter.cli", "fleet-exporter", *args),
                          lambda: http_ok(u("exporter", "/metrics"), timeout=5), u("exporter", "/metrics"),
                          "fleet-exporter for this machine"))
    else:
        missing.append("fleet-exporter (exporter package)")

    sim_args = ["--hosts", str(n_hosts), "--listen", f"{HOST}:{port['simulator']}",
                "--scenario", str(REPO / "stack" / "scenario.yaml")]
    if procs and procs[0].name == "zookeeper":
        sim_args += ["--zk", zk]
    procs.append(Proc("simulator", [sys.executable, "-m", "simulator", *sim_args],
                      lambda: http_ok(u("simulator", "/-/healthy")), u("simulator", "/"),
                      f"host simulator: {n_hosts} hosts, scenario stack/scenario.yaml"))
    return procs, missing


# --------------------------------------------------------------------------- commands

def running() -> list[dict[str, Any]]:
    out = []
    for pf in sorted((RUN / "pids").glob("*.pid")) if (RUN / "pids").is_dir() else []:
        info = read_pidfile(pf)
        if pid_alive(info):
            out.append(info)  # type: ignore[arg-type]
    return out


def reset_alert_state(run: Path) -> list[Path]:
    """Drop each Alertmanager's notification log (``<storage.path>/nflog``) left by an earlier run.

    It records what was already sent: kept, it makes Alertmanager hold back the same alerts
    (the seed's CPU alert for web-0042) for repeat_interval (4h) after a `make stop` / `make run`,
    as if they had been mailed in this run. Silences (``silences``), the shards' metric history,
    the router's delivery history and the mailbox are kept. Returns the files removed.
    """
    removed = []
    for nflog in sorted(run.glob("alertmanager*/data*/nflog")):
        nflog.unlink(missing_ok=True)
        removed.append(nflog)
    return removed


def reset_router_claims(zk_hosts: str, root: str = "/fleetmon") -> bool:
    """Delete the routers' done records (``<root>/alert-router/done``) left by an earlier run.

    They are alerting state too: kept, a router treats an alert of this run whose start falls
    within ``claim_start_skew`` (30 s) of the last run's as already delivered, so a quick
    `make stop` / `make run` mails nothing. Returns whether there were any."""
    from fleetmon.zk import make_client

    client = make_client(zk_hosts, role="admin")
    client.start(timeout=15)
    try:
        path = f"{root}/alert-router/done"
        if client.exists(path) is None:
            return False
        client.delete(path, recursive=True)
        return True
    finally:
        client.stop()
        client.close()


def start(n_hosts: int, keep_alert_state: bool = False) -> int:
    up = running()
    if up:
        names = ", ".join(i["name"] for i in up)
        print(f"fleetmon stack is already running ({len(up)} processes: {names}).\n"
              f"`make status` shows it; `make stop` ends it.", file=sys.stderr)
        return 1
    port = ports()
    taken = [(n, p) for n, p in port.items() if not port_free(p)]
    if taken:
        lines = [f"  {n}: {HOST}:{p} is in use (set {port_env(n)} to move it)" for n, p in taken]
        print("cannot start: ports taken\n" + "\n".join(lines)
              + "\n(`ss -ltnp` shows who holds them; Debian's own services such as zookeeper.service"
              " can be stopped with systemctl)", file=sys.stderr)
        return 1
    RUN.mkdir(parents=True, exist_ok=True)
    for d in ("pids", "logs"):
        (RUN / d).mkdir(exist_ok=True)
    for stale in (RUN / "pids").glob("*.pid"):
        stale.unlink()
    if not keep_alert_state and reset_alert_state(RUN):
        print("alerting state: clean (the last run's Alertmanager notification log removed; "
              "--keep-alert-state keeps it)")
    token_file = RUN / "alert-router" / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24) + "\n")
        token_file.chmod(0o600)
    procs, missing = plan(port, n_hosts)
    t0 = time.monotonic()
    try:
        if have_module("rulesync.cli"):
            run_once("rulesync-compile", py("rulesync.cli", "rulesync", "compile", str(REPO / "stack" / "rules.yaml"),
                                            "--out", str(RUN / "rules-compiled")))
        for p in procs:
            print(f"starting {p.name:<18} ", end="", flush=True)
            pid = launch(p)
            print(f"pid {pid}  ({time.monotonic() - t0:.1f}s)")
            if p.name == "zookeeper" and not zk_insecure():
                # Every subtree made up front with its ACL (admin), before any role could squat one.
                run_once("zk-acl-repair", py("discovery.cli", "fleet-discovery", "acl", "repair", "--zk",
                                             f"{HOST}:{port['zookeeper']}"))
            if p.name == "zookeeper" and not keep_alert_state and reset_router_claims(f"{HOST}:{port['zookeeper']}"):
                print("alerting state: the last run's router delivery records removed")
        if have_module("rulesync.cli") and any(p.name.startswith("sidecar-") for p in procs):
            print("applying stack/rules.yaml to every shard (rulesync apply) ...", flush=True)
            out = run_once("rulesync-apply", py("rulesync.cli", "rulesync", "apply",
                                                str(REPO / "stack" / "rules.yaml"), "--zk",
                                                f"{HOST}:{port['zookeeper']}", "--timeout", "90"),
                           timeout=150)
            print("  " + out.replace("\n", "\n  "))
        elif not have_module("rulesync.cli"):
            missing.append("rulesync (alert rules not applied)")
    except (StackError, subprocess.TimeoutExpired) as exc:
        print(f"\nFAILED: {exc}\nstopping what was started ...", file=sys.stderr)
        stop(quiet=True)
        return 1
    print(f"\nfleetmon stack is up in {time.monotonic() - t0:.0f}s. State, pid files and logs: {RUN}/\n")
    for p in procs:
        print(f"  {p.what:<62} {p.url}")
    # web-NNNN hosts are 10 of every 20 (simulator/model.py): web-0042 needs 84 hosts.
    if n_hosts >= 84:
        print("\n  The seed's alert (HighCpuUsage: 5-minute average CPU above 80%) fires for web-0042 within")
        print("  a few minutes and its email appears in the mailbox page; more scenario events follow")
        print("  (stack/scenario.yaml).")
    else:
        print(f"\n  Note: with {n_hosts} simulated hosts the scenario's web-0042 does not exist (needs 84):")
        print("  its CPU alert will not fire.")
    print(f"  The router's deliveries API wants the bearer token in {token_file}.")
    print("  `make status` checks every part; `make stop` ends them all.")
    if missing:
        print("\nnot started (missing):\n  " + "\n  ".join(missing))
    return 0


def stop(quiet: bool = False) -> int:
    pids = RUN / "pids"
    infos = [(pf, read_pidfile(pf)) for pf in sorted(pids.glob("*.pid"))] if pids.is_dir() else []
    # Stop in reverse start order: producers before the servers they talk to.
    infos.sort(key=lambda x: (x[1] or {}).get("started", 0), reverse=True)
    stopped = 0
    for pf, info in infos:
        if info and stop_pid(info):
            stopped += 1
            if not quiet:
                print(f"stopped {info['name']} (pid {info['pid']})")
        pf.unlink(missing_ok=True)
    if not quiet:
        print("nothing was running" if not stopped else f"fleetmon stack stopped ({stopped} processes)")
    return 0


def status() -> int:
    pids = RUN / "pids"
    infos = [read_pidfile(pf) for pf in sorted(pids.glob("*.pid"))] if pids.is_dir() else []
    infos = sorted((i for i in infos if i), key=lambda i: i.get("started", 0))
    if not infos:
        print("fleetmon stack is not running (`make run` starts it)")
        return 3
    bad = 0
    print(f"{'component':<18} {'pid':>7}  {'process':<8} {'check':<6} url")
    for info in infos:
        alive = pid_alive(info)
        url = info.get("url", "")
        if not alive:
            check = "-"
        elif url.startswith("http"):
            check = "ok" if http_ok(info.get("probe") or url, timeout=3) else "FAIL"
        else:
            check = "ok" if zk_ok(int(url.rsplit(":", 1)[1])) else "FAIL"
        bad += (not alive) or check != "ok"
        print(f"{info['name']:<18} {info['pid']:>7}  {'up' if alive else 'DOWN':<8} {check:<6} {url}")
    print("all up" if not bad else f"{bad} component(s) not healthy: see {RUN}/logs/")
    for line in ha_summary(infos):
        print(line)
    return 0 if not bad else 1


def ha_summary(infos: list[dict[str, Any]]) -> list[str]:
    """One line per redundant part of the alert path (docs/availability.md): how many
    Alertmanagers see each other, and whether the routers coordinate through ZooKeeper."""
    import requests

    out = []
    ams = [i for i in infos if i["name"] in ALERTMANAGERS and pid_alive(i)]
    if ams:
        try:
            peers = len(requests.get(ams[0]["url"].rstrip("/") + "/api/v2/status", timeout=3)
                        .json()["cluster"]["peers"] or [])
        except (requests.RequestException, ValueError, KeyError, TypeError):
            peers = 0
        out.append(f"alertmanager cluster: {peers} member(s) gossiping, {len(ams)} of {len(ALERTMANAGERS)} running")
    for i in infos:
        if i["name"] not in ROUTERS or not pid_alive(i):
            continue
        base = i.get("probe", "").rsplit("/", 1)[0]
        try:
            text = requests.get(f"{base}/metrics", timeout=3, verify=tls_verify(base)).text
            zk = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("alert_router_zk_connected ")), "?")
        except requests.RequestException:
            zk = "?"
        state = {"1.0": "claims on (ZooKeeper connected)", "0.0": "claims OFF (ZooKeeper unreachable)"}.get(zk, "?")
        out.append(f"{i['name']}: {state}")
    return out


# --------------------------------------------------------------------------- mailbox

def mailbox(smtp_port: int, http_port: int, maildir: Path) -> None:
    """A local SMTP server storing every message in a Maildir, and a page listing them."""
    import mailbox as mb
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    box = mb.Maildir(str(maildir), create=True)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
            box.add(mb.MaildirMessage(envelope.original_content or envelope.content))
            return "250 Message accepted for delivery"

    def messages() -> list[dict[str, Any]]:
        out = []
        for key in box.keys():
            try:
                with open(os.path.join(str(maildir), "new", key), "rb") as fh:
                    raw = fh.read()
            except OSError:
                try:
                    raw = box.get_bytes(key)
                except KeyError:
                    continue
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            part = msg.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            out.append({"id": key, "subject": str(msg.get("Subject", "")), "from": str(msg.get("From", "")),
                        "to": str(msg.get("To", "")), "date": str(msg.get("Date", "")), "body": body})
        out.sort(key=lambda m: email.utils.parsedate_to_datetime(m["date"]).timestamp() if m["date"] else 0,
                 reverse=True)
        return out

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path == "/healthz":
                return self._send(200, "text/plain", b"ok\n")
            if self.path.startswith("/api/messages"):
                return self._send(200, "application/json", json.dumps(messages()).encode())
            if self.path not in ("/", "/index.html"):
                return self._send(404, "text/plain", b"not found\n")
            rows = []
            for m in messages():
                rows.append(f"<details><summary><b>{html.escape(m['subject'])}</b> &mdash; {html.escape(m['date'])}"
                            f" &mdash; to {html.escape(m['to'])}</summary><pre>{html.escape(m['body'])}</pre>"
                            "</details>")
            page = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=10>"
                    "<title>fleetmon mailbox</title><style>body{font-family:sans-serif;margin:2em}"
                    "summary{padding:.3em 0;cursor:pointer}pre{background:#f4f4f4;padding:1em}</style>"
                    f"<h1>fleetmon mailbox</h1><p>{len(rows)} message(s) received on SMTP {HOST}:{smtp_port}"
                    f" (Maildir {html.escape(str(maildir))}); refreshes every 10 s. JSON: "
                    "<a href=/api/messages>/api/messages</a></p>" + "".join(rows))
            self._send(200, "text/html; charset=utf-8", page.encode())

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    controller = Controller(Handler(), hostname=HOST, port=smtp_port)
    controller.start()
    httpd = ThreadingHTTPServer((HOST, http_port), Page)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"mailbox: SMTP {HOST}:{smtp_port}, page http://{HOST}:{http_port}/, Maildir {maildir}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fleetmon.stack", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start", help="start the whole stack on loopback")
    st.add_argument("--hosts", type=int, default=int(os.environ.get("FLEETMON_SIM_HOSTS", "300")),
                    help="simulated hosts (default $FLEETMON_SIM_HOSTS or 300)")
    st.add_argument("--keep-alert-state", action="store_true",
                    default=os.environ.get("FLEETMON_KEEP_ALERT_STATE", "") not in ("", "0"),
                    help="keep Alertmanager's notification log from the last run: alerts it already "
                         "sent are not sent again for 4h (default: start clean; $FLEETMON_KEEP_ALERT_STATE=1)")
    sub.add_parser("stop", help="stop everything `start` started")
    sub.add_parser("status", help="what is up")
    mb = sub.add_parser("mailbox", help="(internal) local SMTP server + mailbox page")
    mb.add_argument("--smtp-port", type=int, required=True)
    mb.add_argument("--http-port", type=int, required=True)
    mb.add_argument("--maildir", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "start":
            return start(args.hosts, keep_alert_state=args.keep_alert_state)
        if args.cmd == "stop":
            return stop()
        if args.cmd == "status":
            return status()
        mailbox(args.smtp_port, args.http_port, args.maildir)
        return 0
    except (StackError, ZkSecurityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
