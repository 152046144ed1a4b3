"""The whole alert path as real processes on loopback, for fault tests and bench/availability.py.

    probe target (toggled by the test) --scrape 2s--> Prometheus r1, r2 (eval 2s)
        --every replica to every member--> Alertmanager cluster (2 members, gossip)
        --every member to every router--> alert-router a, b (--zk: claims in a 3-node ensemble)
        --SMTP--> SmtpSink (aiosmtpd, can be stopped and stalled)

Each probe is one alert (``FaultProbe``, ``instance=<probe>``) in its own Alertmanager group,
so its firing and its resolve are separate emails whose subjects name the probe. The test
switches probes on and off, applies a fault, and then checks the inbox with ``Ledger``.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.alert_router.conftest import RouterProcess, write_router_files
from tests.harness.servers import (
    EXPOSITION,
    AlertmanagerCluster,
    HttpServer,
    PrometheusServer,
    SmtpSink,
    ZooKeeperEnsemble,
    free_port,
    wait_until,
)


def rules(eval_interval: str) -> dict:
    return {"groups": [{"name": "faults", "interval": eval_interval, "rules": [{
        "alert": "FaultProbe", "expr": "fault_flag == 1", "for": "0s",
        "labels": {"severity": "critical", "notify": "oncall"},
        "annotations": {"summary": "probe {{ $labels.instance }} is on"},
    }]}]}


class ProbeTarget(HttpServer):
    """A scrape target whose ``fault_flag{instance=<probe>}`` samples the test switches."""

    def __init__(self) -> None:
        super().__init__()
        self.on: set[str] = set()
        self.off: set[str] = set()
        self._lock = threading.Lock()

    def set(self, probe: str, on: bool) -> None:
        with self._lock:
            (self.on if on else self.off).add(probe)
            (self.off if on else self.on).discard(probe)

    def text(self) -> str:
        with self._lock:
            lines = [f'fault_flag{{instance="{p}"}} 1' for p in sorted(self.on)]
            lines += [f'fault_flag{{instance="{p}"}} 0' for p in sorted(self.off)]
        return "# TYPE fault_flag gauge\n" + "\n".join(lines) + "\n"

    def respond(self, request: dict) -> tuple[int, str, bytes]:
        return 200, EXPOSITION, self.text().encode()


def prometheus_config(replica: str, probe_port: int, am_addresses: list[str], scrape: str = "2s",
                      evaluation: str = "2s") -> dict:
    return {
        "global": {"scrape_interval": scrape, "scrape_timeout": "1s", "evaluation_interval": evaluation,
                   "external_labels": {"shard": "a", "replica": replica}},
        # As shipped (prometheus/shard.yml.tmpl): both replicas' alerts identical for Alertmanager.
        "alerting": {"alert_relabel_configs": [{"action": "labeldrop", "regex": "replica"}],
                     "alertmanagers": [{"static_configs": [{"targets": am_addresses}]}]},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "probes", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{probe_port}"]}]}],
    }


def alertmanager_config(router_urls: list[str], token_file: Path, group_wait: str = "1s",
                        group_interval: str = "2s") -> dict:
    # Tests: group_wait 1s / group_interval 2s (shipped: 5s / 15s, see prometheus/alertmanager.yml).
    return {
        "route": {"receiver": "routers", "group_by": ["alertname", "instance"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": "1h"},
        "receivers": [{"name": "routers", "webhook_configs": [{
            "url": f"{u}/api/v1/alerts", "send_resolved": True, "max_alerts": 200,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
        } for u in router_urls]}],
    }


@dataclass
class AlertPath:
    """Every part of the path, started; ``stop()`` stops them all by PID."""

    workdir: Path
    zk_session_timeout: float = 6.0
    claim_recheck: str = "1s"
    scrape_interval: str = "2s"
    eval_interval: str = "2s"
    group_wait: str = "1s"
    group_interval: str = "2s"
    peer_timeout: str = "2s"       # Alertmanager --cluster.peer-timeout (shipped: 15s)
    am_size: int = 2
    zk: ZooKeeperEnsemble = field(init=False)
    sink: SmtpSink = field(init=False)
    probes: ProbeTarget = field(init=False)
    routers: list[RouterProcess] = field(init=False)
    ams: AlertmanagerCluster = field(init=False)
    proms: list[PrometheusServer] = field(init=False)

    def start(self) -> AlertPath:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zk = ZooKeeperEnsemble(self.workdir / "zk").start()
        self.sink = SmtpSink(port=free_port()).start()
        self.probes = ProbeTarget().start()
        root = f"/faults-{secrets.token_hex(4)}"
        self.routers = []
        for name in ("a", "b"):
            cfg = write_router_files(
                self.workdir / f"router-{name}", {"oncall": [self.sink.mailto_url()]},
                zk=self.zk.hosts, zk_root=root, router_id=name, zk_session_timeout=self.zk_session_timeout,
                zk_bypass_after=self.zk_session_timeout, claim_recheck=self.claim_recheck,
                retry={"initial_delay": "1s", "max_delay": "4s", "max_age": "1h"},
                flood={"max_per_window": 10000, "window": "60s"})
            r = RouterProcess(self.workdir / f"router-{name}", cfg)
            r.name = f"alert-router-{name}"
            self.routers.append(r.start(timeout=60))
        for r in self.routers:
            wait_until(lambda r=r: r.metric("alert_router_zk_connected") == 1, timeout=30,
                       what=f"{r.name} connected to ZooKeeper")
        token = self.routers[0].workdir / "token"
        self.ams = AlertmanagerCluster(self.workdir / "am", alertmanager_config(
            [r.url for r in self.routers], token, self.group_wait, self.group_interval),
            size=self.am_size, peer_timeout=self.peer_timeout).start()
        self.proms = []
        for replica in ("r1", "r2"):
            wd = self.workdir / f"prometheus-{replica}"
            wd.mkdir(parents=True, exist_ok=True)
            (wd / "rules.yml").write_text(yaml.safe_dump(rules(self.eval_interval)))
            p = PrometheusServer(wd, prometheus_config(replica, self.probes.port, self.ams.addresses,
                                                       self.scrape_interval, self.eval_interval),
                                 name=f"prometheus-{replica}")
            self.proms.append(p.start(timeout=60))
        for p in self.proms:
            p.wait_for_query('up{job="probes"} == 1', timeout=30)
        return self

    def stop(self) -> None:
        for p in getattr(self, "proms", []):
            p.stop()
        if hasattr(self, "ams"):
            self.ams.stop()
        for r in getattr(self, "routers", []):
            r.stop()
        if hasattr(self, "probes"):
            self.probes.stop()
        if hasattr(self, "sink"):
            self.sink.release()
            self.sink.stop()
        if hasattr(self, "zk"):
            self.zk.stop()

    def router_sending(self) -> RouterProcess | None:
        """The router with a delivery in flight (status 'sending'), if any."""
        for r in self.routers:
            if r.running() and r.deliveries(status="sending"):
                return r
        return None


_SUBJECT = re.compile(r"^\[(FIRING|RESOLVED):1\] FaultProbe on (\S+) \(critical\)")


@dataclass
class Ledger:
    """What the test switched, and when, against what the inbox received."""

    sink: SmtpSink
    probes: ProbeTarget
    expected: list[tuple[str, str]] = field(default_factory=list)   # (probe, FIRING|RESOLVED)
    fired_at: dict[str, float] = field(default_factory=dict)
    active_at: dict[str, float] = field(default_factory=dict)       # earliest Prometheus activeAt

    def fire(self, probe: str) -> None:
        self.fired_at[probe] = time.time()
        self.probes.set(probe, True)
        self.expected.append((probe, "FIRING"))

    def resolve(self, probe: str) -> None:
        self.probes.set(probe, False)
        self.expected.append((probe, "RESOLVED"))

    def received(self) -> Counter:
        """(probe, state) -> emails received, for this ledger's probes."""
        mine = {p for p, _ in self.expected}
        out: Counter = Counter()
        with self.sink._cond:
            subjects = [str(m["Subject"]) for m in self.sink.messages]
        for s in subjects:
            m = _SUBJECT.match(s)
            if m and m.group(2) in mine:
                out[(m.group(2), m.group(1))] += 1
        return out

    def missing(self) -> list[tuple[str, str]]:
        got = self.received()
        return [e for e in self.expected if got[e] == 0]

    def wait_all(self, timeout: float = 90.0) -> None:
        wait_until(lambda: not self.missing(), timeout=timeout, interval=0.25,
                   what=f"every state change in the inbox (missing: {self.missing()})")

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received().values() if n > 1)

    def latencies(self, since: str = "switch") -> dict[str, float]:
        """Probe -> seconds to its first FIRING email from switching it on (``since="switch"``)
        or from the alert firing in Prometheus (``"firing"``, needs a FiringWatch)."""
        start = self.fired_at if since == "switch" else self.active_at
        out: dict[str, float] = {}
        with self.sink._cond:
            pairs = [(str(m["Subject"]), e["received"]) for m, e in zip(self.sink.messages, self.sink.envelopes,
                                                                       strict=True)]
        for subject, at in pairs:
            m = _SUBJECT.match(subject)
            if m and m.group(1) == "FIRING" and m.group(2) in start and m.group(2) not in out:
                out[m.group(2)] = at - start[m.group(2)]
        return out


class FiringWatch:
    """Records, per probe, the earliest ``activeAt`` any Prometheus replica reports: the
    moment the alert fired (for: 0s), the start of "firing -> inbox"."""

    def __init__(self, proms: list[PrometheusServer], ledgers: list[Ledger], every: float = 0.5):
        self.proms, self.ledgers, self.every = proms, ledgers, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FiringWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        from datetime import datetime

        while not self._stop.wait(self.every):
            for p in self.proms:
                if not p.running():
                    continue
                try:
                    alerts = p.api("alerts")["alerts"]
                except Exception:  # noqa: BLE001 - a replica being killed answers nothing
                    continue
                for a in alerts:
                    if a["labels"].get("alertname") != "FaultProbe" or a.get("state") != "firing":
                        continue
                    probe = a["labels"].get("instance", "")
                    at = datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00")).timestamp()
                    for led in self.ledgers:
                        if probe in led.fired_at and at >= led.fired_at[probe] - 1:
                            led.active_at[probe] = min(at, led.active_at.get(probe, at))
