"""Kill each part of the alert path while alerts keep firing and resolving.

One stack for the module (tests/faults/alert_path.py): a 3-node ZooKeeper ensemble, two
Prometheus replicas, a 2-member Alertmanager cluster, two routers with --zk, an SMTP sink.
Each test applies one fault, keeps switching probes on and off through it, restores the
part, and asserts: every state change reached the inbox, duplicates at most one per send
that was in flight at a kill plus those the routers counted (ZooKeeper away), and every
firing reached the inbox within 60 s of the probe being switched on.

Outages are shortened for the suite budget (issue 15 allows it): SMTP down
FLEETMON_FAULT_SMTP_DOWN seconds (default 20, the issue's 60 in bench/availability.py),
ZooKeeper down FLEETMON_FAULT_ZK_DOWN seconds (default 30, as in the issue).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.alert_path import AlertPath, Ledger
from tests.harness.servers import wait_until

SMTP_DOWN = float(os.environ.get("FLEETMON_FAULT_SMTP_DOWN", "20"))
ZK_DOWN = float(os.environ.get("FLEETMON_FAULT_ZK_DOWN", "30"))
LATENCY_BUDGET = 60.0


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertPath]:
    p = AlertPath(tmp_path_factory.mktemp("alert-path"))
    try:
        p.start()
        yield p
    finally:
        p.stop()


def _counted_duplicates(path: AlertPath) -> float:
    return sum(r.metric("alert_router_duplicate_sends_total") for r in path.routers if r.running())


def traffic(ledger: Ledger, prefix: str, seconds: float, every: float = 4.0) -> None:
    """For ``seconds``: every ``every`` s fire a new probe and resolve the previous one
    (each probe stays on ``every`` s: two scrapes and evaluations at least)."""
    pace = threading.Event()
    deadline = time.monotonic() + seconds
    prev = None
    i = 0
    while True:
        probe = f"{prefix}-t{i}"
        ledger.fire(probe)
        if prev:
            ledger.resolve(prev)
        prev, i = probe, i + 1
        pace.wait(every)  # pacing the traffic, not waiting for an outcome
        if time.monotonic() >= deadline:
            break
    ledger.resolve(prev)


def run_fault(path: AlertPath, name: str, fault: Callable[[Ledger], None], restore: Callable[[], None],
              during: Callable[[Ledger], None], in_flight: int = 0) -> Ledger:
    """Before, during and after ``fault``: fire and resolve probes and check the inbox."""
    ledger = Ledger(path.sink, path.probes)
    dups_before = _counted_duplicates(path)
    ledger.fire(f"{name}-0")
    ledger.fire(f"{name}-1")
    ledger.wait_all(timeout=60)             # healthy path first
    fault(ledger)
    ledger.resolve(f"{name}-0")
    ledger.fire(f"{name}-2")
    during(ledger)
    restore()
    ledger.resolve(f"{name}-1")
    ledger.resolve(f"{name}-2")
    ledger.fire(f"{name}-3")
    ledger.wait_all(timeout=90)
    # Late duplicates would show up after the last expected email: give them the time a
    # retry or a takeover would take, then count.
    ledger.resolve(f"{name}-3")
    ledger.wait_all(timeout=60)
    counted = _counted_duplicates(path) - dups_before
    dups = ledger.duplicates()
    received = ledger.received()
    assert dups <= in_flight + counted, (
        f"{dups} duplicate email(s), allowed {in_flight} in flight + {counted:.0f} counted: "
        f"{sorted(k for k, n in received.items() if n > 1)}")
    lat = ledger.latencies()
    assert set(lat) == {p for p, s in ledger.expected if s == "FIRING"}
    slow = {p: round(t, 1) for p, t in lat.items() if t >= LATENCY_BUDGET}
    assert not slow, f"firing -> inbox over {LATENCY_BUDGET:.0f}s: {slow}"
    return ledger


def _keep_traffic_until_all_in(prefix: str, seconds: float = 8.0) -> Callable[[Ledger], None]:
    def during(ledger: Ledger) -> None:
        traffic(ledger, prefix, seconds)
        ledger.wait_all(timeout=60)  # delivered by the surviving parts, fault still in place
    return during


def test_sigkill_one_alertmanager(path: AlertPath):
    # The member at position 0, which sends the notifications: the others take over after
    # their peer timeout.
    victim = path.ams.first()
    run_fault(path, "am", lambda _l: victim.kill(), lambda: (victim.start(timeout=60), path.ams.wait_joined()),
              _keep_traffic_until_all_in("am-dead"))


def test_sigkill_one_router_mid_send(path: AlertPath):
    victims: list = []

    def fault(ledger: Ledger) -> None:
        path.sink.stall_next(1)
        ledger.fire("router-stalled")
        assert path.sink.stalled.wait(60), "no send reached the mail server"
        victim = wait_until(path.router_sending, timeout=10, what="the router holding the send")
        victims.append(victim)
        victim.kill()      # SIGKILL while it waits for the mail server's 250
        path.sink.release()

    def restore() -> None:
        victims[0].start(timeout=60)
        wait_until(lambda: victims[0].metric("alert_router_zk_connected") == 1, timeout=30,
                   what="restarted router connected")

    ledger = run_fault(path, "router", fault, restore, _keep_traffic_until_all_in("router-dead"), in_flight=1)
    # The survivor took over the stalled send: ZooKeeper session timeout + one recheck.
    assert ledger.latencies()["router-stalled"] < path.zk_session_timeout + 20


def test_sigkill_one_prometheus_replica(path: AlertPath):
    victim = path.proms[0]

    def restore() -> None:
        victim.start(timeout=60)
        victim.wait_for_query('up{job="probes"} == 1', timeout=30)

    run_fault(path, "prom", lambda _l: victim.kill(), restore, _keep_traffic_until_all_in("prom-dead"))


def test_sigkill_zookeeper_leader(path: AlertPath):
    victims: list = []

    def fault(_ledger: Ledger) -> None:
        leader = path.zk.leader()
        victims.append(leader)
        leader.kill()

    def restore() -> None:
        victims[0].start(timeout=90)

    run_fault(path, "zkleader", fault, restore, _keep_traffic_until_all_in("zkleader-dead"))


def test_smtp_server_down(path: AlertPath):
    def during(ledger: Ledger) -> None:
        traffic(ledger, "smtp-down", SMTP_DOWN)

    def restore() -> None:
        path.sink.start()

    run_fault(path, "smtp", lambda _l: path.sink.stop(), restore, during)
    # Deliveries failed and were retried while it was down, none given up.
    assert sum(r.metric("alert_router_delivery_attempts_failed_total") for r in path.routers) > 0
    assert sum(r.metric("alert_router_deliveries_dead_lettered_total") for r in path.routers) == 0


def test_zookeeper_down(path: AlertPath):
    def fault(_ledger: Ledger) -> None:
        path.zk.stop()

    def during(ledger: Ledger) -> None:
        traffic(ledger, "zk-down", ZK_DOWN, every=5.0)
        # Routers deliver without claims while ZooKeeper is away.
        ledger.wait_all(timeout=60)

    def restore() -> None:
        path.zk.start()
        for r in path.routers:
            wait_until(lambda r=r: r.metric("alert_router_zk_connected") == 1, timeout=60,
                       what=f"{r.name} back on ZooKeeper")

    run_fault(path, "zk", fault, restore, during)
    assert sum(r.metric("alert_router_claims_total", outcome="bypassed") for r in path.routers) > 0


def test_alert_path_logs_keep_secrets(path: AlertPath):
    token = (path.routers[0].workdir / "token").read_text().strip()
    for r in path.routers:
        assert token not in Path(r.log_path).read_text(errors="replace")
