"""The simulator as a real subprocess for tests (tests/simulator and tests/e2e)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from tests.harness.servers import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]


class SimulatorProcess(ManagedProcess):
    name = "simulator"

    def __init__(self, workdir: Path, hosts: int = 20, args: list[str] | None = None, port: int | None = None):
        super().__init__(workdir)
        self.port = port or free_port()
        self.hosts = hosts
        self.args = list(args or [])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "simulator", "--hosts", str(self.hosts),
                "--listen", f"127.0.0.1:{self.port}", *self.args]

    def env(self) -> dict[str, str]:
        # Run from the repo checkout, whatever the editable install's package list says.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        return env

    def start(self, timeout: float = 20.0) -> SimulatorProcess:
        super().start(timeout=timeout)
        return self

    def ready(self) -> bool:
        return requests.get(f"{self.url}/-/healthy", timeout=1).status_code == 200

    def post_event(self, event: dict) -> dict:
        r = requests.post(f"{self.url}/-/events", json=event, timeout=5)
        r.raise_for_status()
        return r.json()
