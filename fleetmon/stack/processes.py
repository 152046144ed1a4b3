"""Processes of the local stack, started and stopped by PID: a ``Proc`` is one long-running
part with its pid file (``.run/pids/<name>.pid``, which records the command line so that a
recycled PID is never taken for ours) and its log (``.run/logs/<name>.log``); ``run_once`` runs
a one-shot step. Children run from this checkout (``child_env``, ``py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmon.stack.layout import REPO, RUN, StackError


def py(module: str, prog: str, *args: str) -> list[str]:
    """Run a package's click ``main`` from this checkout, with or without its console script."""
    boot = f"import sys; sys.argv[0] = {prog!r}; from {module} import main; sys.exit(main())"
    return [sys.executable, "-c", boot, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


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


def launch(p: Proc) -> subprocess.Popen[bytes]:
    """Start ``p`` in its own session (so that stopping its group ends its children too) and
    record its pid file; ``health.wait_ready`` then waits for it."""
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
    return child


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


def running() -> list[dict[str, Any]]:
    out = []
    for pf in sorted((RUN / "pids").glob("*.pid")) if (RUN / "pids").is_dir() else []:
        info = read_pidfile(pf)
        if pid_alive(info):
            out.append(info)  # type: ignore[arg-type]
    return out


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
