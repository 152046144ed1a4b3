"""`make run` hygiene: every link in a delivered email opens on this machine, and a second
`make run` after `make stop` mails the seed's CPU alert again (Alertmanager's notification log
from the first run does not hold it back)."""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import urlsplit

import requests

from fleetmon.stack import DEFAULT_PORTS, port_env
from tests.e2e.parts import REPO, repo_env
from tests.harness.servers import free_port, wait_until

URL = re.compile(r"https?://[^\s<>\"']+")


def stack(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetmon.stack", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cpu_mails(mailbox: str) -> dict[str, dict]:
    msgs = requests.get(f"{mailbox}/api/messages", timeout=5).json()
    return {m["id"]: m for m in msgs
            if "HighCpuUsage" in m["subject"] and "Instance:    web-0042" in m["body"]}


def test_email_links_open_and_restart_mails_again(tmp_path):
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env = repo_env({port_env(n): str(p) for n, p in ports.items()})
    env.pop("FLEETMON_KEEP_ALERT_STATE", None)
    # 90 hosts so that web-0042 exists; 2 s intervals so its CPU alert fires within seconds.
    env.update({"FLEETMON_RUN_DIR": str(tmp_path / "run"), "FLEETMON_SIM_HOSTS": "90",
                "FLEETMON_SCRAPE_INTERVAL": "2s", "FLEETMON_EVAL_INTERVAL": "2s"})
    mailbox = f"http://127.0.0.1:{ports['mailbox']}"
    res = stack(env, "start")
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        first: dict[str, dict] = {}

        def mailed() -> bool:
            first.update(cpu_mails(mailbox))
            return bool(first)
        wait_until(mailed, timeout=120, interval=1, what="HighCpuUsage email for web-0042")

        # Every link points at a URL the stack printed and opens (redirects followed).
        body = next(iter(first.values()))["body"]
        links = URL.findall(body)
        prom_bases = {f"http://127.0.0.1:{ports[f'prometheus-{s}']}" for s in ("a", "b")}
        am_base = f"http://127.0.0.1:{ports['alertmanager']}"
        for base in prom_bases | {am_base}:
            assert base in res.stdout, base  # the stack prints these URLs
        source = [u for u in links if any(u.startswith(b + "/graph?") for b in prom_bases)]
        assert source, f"no Prometheus graph link in:\n{body}"
        assert am_base in links and any(u.startswith(am_base + "/#/silences/new?filter=") for u in links), body
        for link in links:
            parts = urlsplit(link)
            assert parts.hostname == "127.0.0.1", link
            r = requests.get(link, timeout=10)
            assert r.status_code == 200, (link, r.status_code)
        graph = requests.get(source[0], timeout=10)
        assert "/classic/graph" in graph.url and "g0.expr=" in graph.url  # Debian's UI, the alert's query
        assert "Alertmanager" in requests.get(am_base, timeout=10).text

        # A silence (the user's intent) must outlive the restart; the notification log must not.
        silence = {"matchers": [{"name": "alertname", "value": "NoSuchAlert", "isRegex": False}],
                   "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2100-01-01T00:00:00Z",
                   "createdBy": "test", "comment": "kept across make stop / make run"}
        sid = requests.post(f"{am_base}/api/v2/silences", json=silence, timeout=10).json()["silenceID"]

        res = stack(env, "stop")
        assert res.returncode == 0, res.stdout + res.stderr
        nflogs = list((tmp_path / "run").glob("alertmanager*/data*/nflog"))
        assert nflogs and all(f.stat().st_size > 0 for f in nflogs), "Alertmanager kept no notification log"

        # Same checkout, second run: the CPU email comes again (a new message, not the first one).
        res = stack(env, "start")
        assert res.returncode == 0, res.stdout + res.stderr
        # Alertmanager only rewrites its log on maintenance or shutdown: this run started without it.
        assert not [f for f in nflogs if f.exists()]
        silences = requests.get(f"{am_base}/api/v2/silences", timeout=10).json()
        assert [s["id"] for s in silences if s["status"]["state"] == "active"] == [sid]
        wait_until(lambda: set(cpu_mails(mailbox)) - set(first), timeout=120, interval=1,
                   what="a second HighCpuUsage email after make stop / make run")
        assert set(first) <= set(cpu_mails(mailbox))  # the first run's mail is kept
    finally:
        stack(env, "stop")
