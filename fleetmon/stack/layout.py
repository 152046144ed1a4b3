"""What the local stack is made of and where it lives: the run directory (``.run/``), the
loopback host, each component's port (``FLEETMON_PORT_<NAME>``), the shards and their
replicas, the Alertmanager and router pairs. Every other module of fleetmon.stack reads these.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetmon.zk import ENV_INSECURE, env_flag

REPO = Path(__file__).resolve().parents[2]
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

