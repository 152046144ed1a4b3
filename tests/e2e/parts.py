"""fleetmon's own components as real subprocesses for end-to-end tests and benchmarks."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import requests

from fleetmon.stack import child_env, py
from tests.harness.servers import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]


# The same boot the local stack uses: a package's click main from this checkout.
py_cmd = py
repo_env = child_env


class CliProcess(ManagedProcess):
    """A fleetmon CLI server (sidecar, router ...) with an HTTP readiness URL."""

    def __init__(self, workdir: Path, name: str, cmd: list[str], ready_url: str,
                 env: dict[str, str] | None = None):
        self.name = name
        super().__init__(workdir)
        self._cmd = cmd
        self.ready_url = ready_url
        self._env = env or {}

    def command(self) -> list[str]:
        return self._cmd

    def env(self) -> dict[str, str]:
        return repo_env(self._env)

    def ready(self) -> bool:
        return requests.get(self.ready_url, timeout=1).status_code == 200


def sidecar(workdir: Path, zk: str, root: str, shard: str, output: Path, prometheus_url: str,
            rules_dir: Path) -> CliProcess:
    port = free_port()
    return CliProcess(workdir, f"sidecar-{shard}", py_cmd(
        "discovery.cli", "fleet-discovery", "run", "--zk", zk, "--root", root, "--shard", shard,
        "--replica", "r1", "--output", str(output), "--listen", f"127.0.0.1:{port}", "--debounce", "0.2",
        "--prometheus-url", prometheus_url, "--rules-dir", str(rules_dir)),
        f"http://127.0.0.1:{port}/metrics")


def alert_router(workdir: Path, recipients: Path, token_file: Path) -> CliProcess:
    port = free_port()
    proc = CliProcess(workdir, "alert-router", py_cmd(
        "alert_router.cli", "alert-router", "serve", "--listen", f"127.0.0.1:{port}",
        "--recipients", str(recipients), "--token-file", str(token_file), "--state-dir", str(workdir / "state")),
        f"http://127.0.0.1:{port}/healthz")
    proc.port = port  # type: ignore[attr-defined]
    return proc


def router_for_rules(tmp: Path, rules_text: str, mailto_url: str) -> tuple[CliProcess, Path]:
    """Compile ``rules_text`` (its ``@MAILTO@`` replaced by ``mailto_url``) and return an unstarted
    alert-router reading the compiled recipients, with a fresh bearer token file. The rules
    stay at ``tmp / "rules.yaml"`` for a later ``rulesync apply``."""
    rules = tmp / "rules.yaml"
    rules.write_text(rules_text.replace("@MAILTO@", mailto_url))
    rulesync("compile", str(rules), "--out", str(tmp / "compiled"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(16) + "\n")
    return alert_router(tmp / "router", tmp / "compiled" / "recipients.yaml", token), token


def rulesync(*args: str, timeout: float = 60) -> str:
    res = subprocess.run(py_cmd("rulesync.cli", "rulesync", *args), cwd=REPO, env=repo_env(),
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"rulesync {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res.stdout + res.stderr
