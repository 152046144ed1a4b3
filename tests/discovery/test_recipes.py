"""kazoo recipes in discovery: the reaper's Lock (one reaper, handed over on session loss)."""

from __future__ import annotations

from kazoo.client import KazooClient

from discovery import layout
from discovery.reaper import ReaperLock
from fleetmon.zk import make_client
from tests.harness.servers import wait_until


def expire_session(client: KazooClient, hosts: str) -> None:
    """Expire a kazoo session for real: join it from a second client, then close that one."""
    sid, passwd = client.client_id
    other = KazooClient(hosts=hosts, client_id=(sid, passwd))
    other.start(timeout=10)
    other.stop()
    other.close()


def started(hosts: str) -> KazooClient:
    c = make_client(hosts, timeout=4.0)
    c.start(timeout=15)
    return c


def test_one_reaper_and_the_lock_moves_when_its_session_expires(zk_server, zk_root):
    a_client, b_client = started(zk_server.hosts), started(zk_server.hosts)
    try:
        a, b = ReaperLock(a_client, zk_root, "s1/r1"), ReaperLock(b_client, zk_root, "s2/r1")
        assert a.hold() and not b.hold() and a.hold()
        assert a.holder() == b.holder() == "s1/r1"
        # b's failed tries leave no contender behind: only a's node is under <root>/reaper.
        assert len(b_client.get_children(layout.reaper_path(zk_root))) == 1

        old = a_client.client_id[0]
        expire_session(a_client, zk_server.hosts)
        assert wait_until(lambda: b.hold(), 20, interval=0.1, what="b to take the lock")
        wait_until(lambda: a_client.connected and a_client.client_id[0] != old, 20, what="a's new session")
        # kazoo's Lock still says is_acquired for a; the ownership check against ZooKeeper wins.
        assert a.lock.is_acquired and not a.hold() and not a.lock.is_acquired
        assert b.holder() == "s2/r1"

        b.release()
        assert a.hold() and not b.hold()
    finally:
        for c in (a_client, b_client):
            c.stop()
            c.close()


def test_a_sidecar_from_before_the_lock_keeps_reaping_alone_until_it_leaves(zk_server, zk_client, zk_root):
    legacy = started(zk_server.hosts)
    try:
        # The old layout: <root>/reaper itself is the holder's ephemeral node.
        legacy.create(layout.reaper_path(zk_root), b"old/r1", ephemeral=True, makepath=True)
        new = ReaperLock(zk_client, zk_root, "s1/r1")
        assert not new.hold() and not new.hold()
    finally:
        legacy.stop()
        legacy.close()
    assert wait_until(lambda: new.hold(), 20, interval=0.1, what="the lock once the old holder left")
    assert new.holder() == "s1/r1"
