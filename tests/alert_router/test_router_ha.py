"""Two real `alert-router serve --zk` processes sharing one ZooKeeper: each alert state is
sent once, a router killed mid-send is taken over, and ZooKeeper being away never stops delivery."""

from __future__ import annotations

import time

from tests.alert_router.conftest import load_payload
from tests.harness.servers import SmtpSink, ZooKeeperServer, free_port, wait_until

HA = {"zk_session_timeout": "3s", "claim_recheck": "0.5s", "zk_bypass_after": "2s"}


def _pair(router_factory, sink: SmtpSink, hosts: str, root: str, **extra):
    routers = []
    for name in ("a", "b"):
        routers.append(router_factory({"default": [sink.mailto_url()]}, args=["--zk", hosts],
                                      zk_root=root, router_id=name, **{**HA, **extra}))
    for r in routers:
        wait_until(lambda r=r: r.metric("alert_router_zk_connected") == 1, timeout=20,
                   what=f"{r.config['router_id']} connected to ZooKeeper")
    return routers


def test_both_routers_get_every_notification_one_email(router_factory, smtp_sink, zk_server, zk_root):
    a, b = _pair(router_factory, smtp_sink, zk_server.hosts, zk_root)
    payload = load_payload("am025_grouped_firing_25_alerts.json")
    resolved = load_payload("am025_resolved_single.json")
    for p in (payload, resolved):
        # As Alertmanager does with a webhook per router: the same notification to both.
        assert a.post(p).status_code == 200 and b.post(p).status_code == 200
    wait_until(lambda: sum(len(r.deliveries(status="delivered")) for r in (a, b)) == 2 * 26, timeout=40,
               what="every row delivered on both routers (by itself or by its peer)")
    assert len(smtp_sink.messages) == 2, [m["Subject"] for m in smtp_sink.messages]
    by_peer = sum(1 for r in (a, b) for d in r.deliveries() if d["by_peer"])
    assert by_peer == 26, "each state sent by one router, recorded as sent by its peer on the other"
    sent = sum(r.metric("alert_router_deliveries_delivered_total") for r in (a, b))
    assert sent == 26
    assert sum(r.metric("alert_router_claims_total", outcome="bypassed") for r in (a, b)) == 0


def test_router_killed_mid_send_peer_finishes_within_session_timeout(router_factory, smtp_sink, zk_server,
                                                                      zk_root):
    a, b = _pair(router_factory, smtp_sink, zk_server.hosts, zk_root)
    payload = load_payload("am025_firing_single.json")
    smtp_sink.stall_next(1)
    assert a.post(payload).status_code == 200
    assert smtp_sink.stalled.wait(30), "router a never reached the mail server"
    # a now holds the claim and waits for the 250; b gets the same notification and must wait.
    assert b.post(payload).status_code == 200
    wait_until(lambda: b.metric("alert_router_claims_total", outcome="held_by_peer") >= 1, timeout=20,
               what="b to find a's claim")
    assert len(smtp_sink.messages) == 0
    a.kill()
    killed = time.monotonic()
    # The mail server got a's whole message (its 250 was lost with a): it counts as received.
    smtp_sink.wait_for(timeout=10)
    smtp_sink.release()
    smtp_sink.wait_for(count=2, timeout=30)
    took = time.monotonic() - killed
    # Session timeout (3 s) + one recheck (0.5 s), with margin for a loaded machine.
    assert took < 15, f"peer took {took:.1f}s to finish a dead router's delivery"
    wait_until(lambda: b.deliveries()[0]["status"] == "delivered", timeout=10, what="b to record its send")
    assert not b.deliveries()[0]["by_peer"]
    # One duplicate for the one send in flight at the kill, and nothing more.
    assert len(smtp_sink.messages) == 2


def test_zookeeper_away_still_delivers_and_counts_duplicates(router_factory, smtp_sink, tmp_path, zk_root):
    zk = ZooKeeperServer(tmp_path / "zk", port=free_port()).start()
    try:
        a, b = _pair(router_factory, smtp_sink, zk.hosts, zk_root)
        zk.stop()
        wait_until(lambda: a.metric("alert_router_zk_connected") == 0, timeout=20, what="a to lose ZooKeeper")
        payload = load_payload("am025_firing_single.json")
        assert a.post(payload).status_code == 200 and b.post(payload).status_code == 200
        # Both send after zk_bypass_after (2 s): a duplicate rather than silence.
        smtp_sink.wait_for(count=2, timeout=30)
        for r in (a, b):
            assert r.metric("alert_router_claims_total", outcome="bypassed") >= 1
            assert r.metric("alert_router_claims_total", outcome="waiting_for_zk") >= 1
        assert "without claims (possible duplicates)" in a.log_path.read_text()
        zk.start()
        # Back: both record what they sent; the second finds the first's done znode.
        wait_until(lambda: sum(r.metric("alert_router_duplicate_sends_total") for r in (a, b)) == 1,
                   timeout=40, what="the duplicate to be counted once")
        # And nothing more is sent for it.
        assert len(smtp_sink.messages) == 2
    finally:
        zk.stop()
