"""fleetmon's own processes for the dashboard tests, run exactly as their console scripts do.

Each runs as a plain child process through the harness's ManagedProcess (own workdir and
log, readiness check, stopped by PID). The command is the console script's entry point
(setup.cfg ``console_scripts``) run by this interpreter, so it does not depend on the
scripts in .venv/bin having been regenerated after a package was added.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from tests.harness.servers import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {
    "fleet-exporter": "exporter.cli:main",
    "fleet-discovery": "discovery.cli:main",
    "rulesync": "rulesync.cli:main",
    "alert-router": "alert_router.cli:main",
}


def console_script(name: str) -> list[str]:
    module, func = ENTRY_POINTS[name].split(":")
    return [sys.executable, "-c",
            f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; sys.exit({func}())"]


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class FleetProcess(ManagedProcess):
    """A fleetmon CLI; ``ready_url`` (if any) must answer 200."""

    def __init__(self, workdir: Path, name: str, script: str, args: list[str], ready_url: str | None = None,
                 ready_path: Path | None = None):
        self.name = name
        super().__init__(workdir)
        self.script = script
        self.args = args
        self.ready_url = ready_url
        self.ready_path = ready_path

    def command(self) -> list[str]:
        return [*console_script(self.script), *self.args]

    def env(self) -> dict[str, str]:
        return script_env()

    def ready(self) -> bool:
        if self.ready_path is not None and not self.ready_path.exists():
            return False
        if self.ready_url is not None:
            return requests.get(self.ready_url, timeout=1).status_code == 200
        return True


def exporter(workdir: Path, config: Path, port: int) -> FleetProcess:
    return FleetProcess(workdir, "fleet-exporter", "fleet-exporter",
                        ["--config", str(config), "--listen", f"127.0.0.1:{port}"],
                        ready_url=f"http://127.0.0.1:{port}/metrics")


def sidecar(workdir: Path, zk: str, root: str, shard: str, replica: str, output: Path,
            prometheus_url: str, rules_dir: Path) -> tuple[FleetProcess, int]:
    port = free_port()
    return FleetProcess(workdir, f"fleet-discovery-{shard}-{replica}", "fleet-discovery", [
        "run", "--zk", zk, "--root", root, "--shard", shard, "--replica", replica, "--output", str(output),
        "--listen", f"127.0.0.1:{port}", "--prometheus-url", prometheus_url, "--rules-dir", str(rules_dir),
        "--debounce", "0.1", "--retention", "0",
    ], ready_url=f"http://127.0.0.1:{port}/metrics"), port


def global_discovery(workdir: Path, zk: str, root: str, output: Path) -> FleetProcess:
    return FleetProcess(workdir, "fleet-discovery-global", "fleet-discovery", [
        "global", "--zk", zk, "--root", root, "--output", str(output), "--debounce", "0.1",
    ])


def alert_router(workdir: Path, port: int, recipients: Path, token_file: Path) -> FleetProcess:
    return FleetProcess(workdir, "alert-router", "alert-router", [
        "serve", "--listen", f"127.0.0.1:{port}", "--recipients", str(recipients),
        "--state-dir", str(workdir / "state"), "--token-file", str(token_file),
    ], ready_url=f"http://127.0.0.1:{port}/healthz")
