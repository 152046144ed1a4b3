"""``python -m fleetmon.stack start|stop|status`` (and the internal ``mailbox``): parses the
flags and wires the stack's parts together: ``start`` checks the ports, resets the last
run's alerting state, writes the configs and starts the process table in order
(fleetmon.stack.plan), waiting for each to be ready (fleetmon.stack.health), then
compiles and applies stack/rules.yaml."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from fleetmon.stack.alertstate import reset_alert_state, reset_router_claims
from fleetmon.stack.health import port_free, print_urls, status, wait_ready
from fleetmon.stack.layout import HOST, REPO, RUN, StackError, port_env, ports, zk_insecure
from fleetmon.stack.mailbox import mailbox
from fleetmon.stack.plan import have_module, plan
from fleetmon.stack.processes import launch, py, run_once, running, stop
from fleetmon.zk import ZkSecurityError

DESCRIPTION = "Fleet in a box: the whole fleetmon system on loopback, for `make run` / `make stop` / `make status`."


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
            pid = wait_ready(p, launch(p))
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
    print_urls(procs, n_hosts, token_file, missing, time.monotonic() - t0)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fleetmon.stack", description=DESCRIPTION)
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
