"""Delivery claims (alert_router/claims.py) against a real ZooKeeper."""

from __future__ import annotations

import time

from alert_router.claims import BYPASS, DONE, HELD, MINE, WAIT, Claims
from fleetmon.zk import make_client
from tests.harness.servers import free_port, wait_until

K1, K2, K3 = "a1" + "0" * 62, "b2" + "1" * 62, "a1" + "2" * 62


def _claims(hosts: str, root: str, role: str = "router", **kw) -> Claims:
    counts: dict[str, int] = {}
    dups: list[int] = []
    c = Claims(make_client(hosts, timeout=4.0, role=role), root=root, on_outcome=lambda o, n: counts.__setitem__(
        o, counts.get(o, 0) + n), on_duplicate=dups.append, **kw)
    c.counts, c.dups = counts, dups  # type: ignore[attr-defined]
    return c


def _started(c: Claims) -> Claims:
    c.start(janitor_every=3600)
    wait_until(c.connected, timeout=20, what="claims client connected")
    return c


def test_one_router_sends_the_other_waits_then_sees_done(zk_server, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root, router_id="a"))
    b = _started(_claims(zk_server.hosts, zk_root, router_id="b"))
    try:
        ra = a.acquire([K1, K2])
        assert sorted(ra.send) == sorted([K1, K2]) and not ra.later and not ra.done
        rb = b.acquire([K1, K2, K3])
        assert sorted(rb.later) == sorted([K1, K2]), "a peer's claims must make b wait"
        assert rb.send == [K3]
        b.complete([K3])
        a.complete([K1])      # delivered: done znode, then the claim goes
        a.release([K2])       # failed: the claim goes, nothing recorded
        rb2 = b.acquire([K1, K2])
        assert rb2.done == [K1], "b must see a's done znode and not send again"
        assert rb2.send == [K2], "a released K2 without delivering: b takes it"
        # The claim znode of a done key is released at once; the done znode persists.
        assert a.client.exists(a.claim_path(K1)) is None
        assert a.client.exists(a.done_path(K1)) is not None
        assert a.counts[MINE] == 2 and b.counts[HELD] == 2 and b.counts[DONE] == 1
    finally:
        a.stop()
        b.stop()


def test_claims_vanish_with_the_session(zk_server, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root, router_id="a"))
    b = _started(_claims(zk_server.hosts, zk_root, router_id="b"))
    try:
        assert a.acquire([K1]).send == [K1]
        assert b.acquire([K1]).later == [K1]
        a.stop()  # the session closes: its ephemeral claims go with it
        assert wait_until(lambda: b.acquire([K1]).send == [K1], timeout=15, interval=0.2,
                          what="b to take over a's claim")
    finally:
        a.stop()
        b.stop()


def test_own_claim_left_by_a_retried_create_counts_as_mine(zk_server, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root, router_id="a"))
    try:
        assert a.acquire([K1]).send == [K1]
        # A create retried after a connection loss finds its own node: still ours, not a peer's.
        assert a.acquire([K1]).send == [K1]
    finally:
        a.stop()


def test_zookeeper_unreachable_waits_then_bypasses():
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    c = _claims(dead, "/x", bypass_after=1.0)
    c.start(janitor_every=3600)
    try:
        first = c.acquire([K1])
        assert first.later == [K1] and not first.send, "a short outage must not cause duplicates"
        res = wait_until(lambda: (r := c.acquire([K1])).send and r, timeout=10, interval=0.1,
                         what="bypass after bypass_after")
        assert res.bypassed == [K1]
        assert c.counts[WAIT] >= 1 and c.counts[BYPASS] >= 1
        c.complete([K1])  # sent while away: remembered for when ZooKeeper is back
        assert K1 in c._unrecorded
    finally:
        c.stop()


def test_sends_made_without_zookeeper_are_recorded_later_and_duplicates_counted(zk_server, zk_root):
    peer = _started(_claims(zk_server.hosts, zk_root, router_id="peer"))
    away = _claims(zk_server.hosts, zk_root, router_id="away", bypass_after=0.0)
    try:
        # 'away' has not connected yet: it sends K1 and K2 without claims.
        res = away.acquire([K1, K2])
        assert sorted(res.bypassed) == sorted([K1, K2])
        away.complete([K1, K2])
        # Meanwhile the peer delivered K1 normally.
        assert peer.acquire([K1]).send == [K1]
        peer.complete([K1])
        _started(away)
        # The janitor records the stashed deliveries once connected; K1 is a known duplicate.
        wait_until(lambda: away.dups, timeout=15, what="duplicate detection")
        assert away.dups == [1]
        assert peer.client.exists(peer.done_path(K2)) is not None
        assert peer.acquire([K2]).done == [K2]
    finally:
        peer.stop()
        away.stop()


def test_prune_done_deletes_only_old_done_znodes(zk_server, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root, done_ttl=3600))
    try:
        for k in (K1, K2):
            assert a.acquire([k]).send == [k]
            a.complete([k])
        assert a.prune_done() == 0
        assert a.prune_done(now=time.time() + 7200) == 2
        assert a.client.exists(a.done_path(K1)) is None and a.client.exists(a.done_path(K2)) is None
    finally:
        a.stop()


def test_done_counts_for_the_same_episode_only(zk_server, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root, router_id="a", start_skew=30))
    b = _started(_claims(zk_server.hosts, zk_root, router_id="b", start_skew=30))
    t0 = 1_800_000_000.0
    try:
        assert a.acquire([K1], {K1: t0}).send == [K1]
        a.complete([K1], {K1: t0})
        # The same episode as the other Prometheus replica saw it (started 2 s later): done.
        assert b.acquire([K1], {K1: t0 + 2}).done == [K1]
        # The alert fired again later: a new episode, sent.
        assert b.acquire([K1], {K1: t0 + 600}).send == [K1]
        b.complete([K1], {K1: t0 + 600})
        # Both episodes are remembered.
        assert a.acquire([K1], {K1: t0 + 1}).done == [K1]
        assert a.acquire([K1], {K1: t0 + 601}).done == [K1]
        assert a.acquire([K1], {K1: t0}).done == [K1]
        assert not b.dups
    finally:
        a.stop()
        b.stop()


def test_completing_a_bypassed_send_leaves_the_peers_claim(zk_server, zk_root):
    peer = _started(_claims(zk_server.hosts, zk_root, router_id="peer"))
    other = _started(_claims(zk_server.hosts, zk_root, router_id="other"))
    try:
        assert peer.acquire([K1]).send == [K1]
        # 'other' sent K1 while it could not reach ZooKeeper (no claim held), and records it now.
        other.complete([K1], held=())
        assert other.client.exists(other.claim_path(K1)) is not None, "the peer's claim must stay"
        assert other.client.exists(other.done_path(K1)) is not None
    finally:
        peer.stop()
        other.stop()


def test_bad_zk_hosts_are_a_config_error_naming_the_field(tmp_path):
    import pytest

    from alert_router.config import ConfigError, from_dict

    assert from_dict({"zk": "127.0.0.1:2181,127.0.0.2:2181/fleet"}).zk == "127.0.0.1:2181,127.0.0.2:2181/fleet"
    for bad in ("127.0.0.1:notaport", "127.0.0.1:2181,:2181", "h:70000"):
        with pytest.raises(ConfigError, match=r"router.yml: zk: expected HOST:PORT"):
            from_dict({"zk": bad}, "router.yml")
    with pytest.raises(ConfigError, match="claim_recheck"):
        from_dict({"zk": "127.0.0.1:2181", "claim_recheck": "soon"}, "router.yml")


def test_claims_survive_their_znodes_being_wiped(zk_server, zk_client, zk_root):
    a = _started(_claims(zk_server.hosts, zk_root))
    try:
        assert a.acquire([K1]).send == [K1]
        a.complete([K1])
        # ZooKeeper restored from nothing (or an operator deleted the tree): buckets are re-made.
        zk_client.delete(zk_root, recursive=True)  # an admin: the router role may not
        assert a.acquire([K3]).later == [K3], "K3's bucket (K1's) is gone: this attempt fails"
        assert a.acquire([K3]).send == [K3]
    finally:
        a.stop()


def test_a_refusing_zookeeper_ends_in_bypass_not_silence(zk_server, zk_root):
    """Connected but refused (here: the reader role, which may not write claims: NoAuth, as a
    wrong ACL or credential would be): deliveries wait bypass_after, then go out unclaimed."""
    c = _started(_claims(zk_server.hosts, zk_root, role="reader", router_id="a", bypass_after=2.0))
    try:
        first = c.acquire([K1])
        assert first.send == [] and first.later == [K1]
        res = wait_until(lambda: (r := c.acquire([K1])).send and r, timeout=20, interval=0.5,
                         what="the refused claim to end in a bypass")
        assert res.send == res.bypassed == [K1]
        assert c.counts.get(BYPASS, 0) >= 1
    finally:
        c.stop()
