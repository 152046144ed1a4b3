"""Packaging figures: .deb sizes, install time of each package, and the exporter's start time and
RSS installed from the package vs run from the checkout, beside prometheus-node-exporter.

    python -m bench packaging [--debs DIR] [--runs N]

Needs root and the .debs of `make deb` (default: the newest build in /tmp/fleetmon-deb-cache or
build/deb). Installs both packages, measures, then purges them and deletes the users it made.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from fleetmon.stack import py
from tests.harness.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fleetmon-exporter", "fleetmon-server")


def find_debs(where: Path | None) -> dict[str, Path]:
    dirs = [where] if where else sorted(Path("/tmp/fleetmon-deb-cache").glob("*/"), key=os.path.getmtime,
                                        reverse=True) + [REPO / "build" / "deb"]
    for d in dirs:
        debs = {p: next(iter(sorted(d.glob(f"{p}_*.deb"))), None) for p in PACKAGES}
        if all(debs.values()):
            return debs  # type: ignore[return-value]
    sys.exit("no .debs found: run `make deb` first (or give --debs DIR)")


def sh(*cmd: str) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL).stdout


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_and_rss(cmd: list[str], port: int, env: dict[str, str] | None = None, scrapes: int = 10) -> tuple[float, float]:
    """Seconds from spawn to the first 200 on /metrics, and MiB RSS after ``scrapes`` scrapes."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd="/")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError(f"{cmd[0]} not serving after 60 s")
            time.sleep(0.02)
        started = time.monotonic() - t0
        for _ in range(scrapes):
            requests.get(url, timeout=10)
        return started, rss_kib(proc.pid) / 1024
    finally:
        stop_process(proc, 20)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench packaging", description=__doc__.splitlines()[0])
    ap.add_argument("--debs", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (dpkg -i)")
    debs = find_debs(args.debs)
    if any(subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode == 0
           and "install ok installed" in sh("dpkg-query", "-W", "-f=${Status}", p) for p in PACKAGES):
        sys.exit(f"{PACKAGES} must not be installed before the benchmark")
    users_before = {u for u in ("fleetmon-exporter", "fleetmon") if _exists(u)}

    print("package              .deb size   installed size")
    for p, deb in debs.items():
        inst = int(sh("dpkg-deb", "-f", str(deb), "Installed-Size"))
        print(f"{p:20s} {deb.stat().st_size / 1e6:7.2f} MB   {inst / 1024:7.1f} MiB")
    try:
        print("\ninstall time (dpkg -i, postinst included)")
        for p, deb in debs.items():
            t0 = time.monotonic()
            sh("dpkg", "-i", str(deb))
            print(f"  {p:20s} {time.monotonic() - t0:6.1f} s")

        node = shutil.which("prometheus-node-exporter")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "exporter.yml"
            cfg.write_text("logs: []\n")
            state = Path(tmp) / "offsets.json"
            variants = {
                "installed (/usr/bin/fleet-exporter)": lambda port: ["/usr/bin/fleet-exporter", "--config", str(cfg),
                                                                     "--listen", f"127.0.0.1:{port}",
                                                                     "--state-file", str(state)],
                "checkout (.venv, editable)": lambda port: py("exporter.cli", "fleet-exporter", "--config", str(cfg),
                                                              "--listen", f"127.0.0.1:{port}",
                                                              "--state-file", str(state)),
            }
            if node:
                variants["prometheus-node-exporter 1.5 (reference)"] = lambda port: [
                    node, f"--web.listen-address=127.0.0.1:{port}", "--no-collector.systemd"]
            print(f"\nexporter start (spawn -> first /metrics 200) and RSS after 10 scrapes, median of {args.runs}")
            for name, make in variants.items():
                env = dict(os.environ)
                if "checkout" in name:
                    env["PYTHONPATH"] = str(REPO)
                else:
                    env.pop("PYTHONPATH", None)
                runs = []
                for _ in range(args.runs):
                    port = free_port()
                    runs.append(start_and_rss(make(port), port, env))
                starts, rss = [r[0] for r in runs], [r[1] for r in runs]
                print(f"  {name:42s} start {statistics.median(starts):5.2f} s (max {max(starts):5.2f})"
                      f"   RSS {statistics.median(rss):6.1f} MiB")
    finally:
        subprocess.run(["dpkg", "--purge", *PACKAGES], capture_output=True)
        for u in ("fleetmon-exporter", "fleetmon"):
            if u not in users_before and _exists(u):
                subprocess.run(["deluser", "--quiet", "--system", u], capture_output=True)
                subprocess.run(["delgroup", "--quiet", "--system", u], capture_output=True)
    return 0


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


if __name__ == "__main__":
    sys.exit(main())
