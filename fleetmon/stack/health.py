"""Health checks of the local stack: is a port free, does an HTTP(S) endpoint or ZooKeeper
answer, and ``status`` (every recorded process, whether it runs and answers, and how the
redundant parts of the alert path see each other)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from fleetmon.stack.layout import ALERTMANAGERS, HOST, ROUTERS, RUN, SECURITY, TLS_CA, StackError, zk_insecure
from fleetmon.stack.processes import Proc, pid_alive, read_pidfile, tail


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


def wait_ready(p: Proc, child: subprocess.Popen[bytes]) -> int:
    """Poll ``p.ready`` until it holds (return the PID), the process exits, or ``p.timeout``
    passes (StackError with the tail of its log either way)."""
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



def print_urls(procs: list[Proc], n_hosts: int, token_file: Path, missing: list[str], took: float) -> None:
    """What ``start`` says once everything is up: each part's URL, what to expect of the
    scenario's alert, and what could not be started."""
    print(f"\nfleetmon stack is up in {took:.0f}s. State, pid files and logs: {RUN}/\n")
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
