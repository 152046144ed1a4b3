"""kazoo recipes in discovery: the reaper's Lock (one reaper, handed over on session loss)."""

from __future__ import annotations

from kazoo.client import KazooClient

from discovery import layout
from discovery.reaper import ReaperLock
from fleetmon import zksession
from fleetmon.zk import make_client
from tests.discovery.test_zk import expire_session
from tests.harness.servers import wait_until


def started(hosts: str) -> KazooClient:
    c = make_client(hosts, timeout=4.0, role="sidecar")  # the role that reaps (fleetmon/zkacl.py)
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

        old = zksession.session_id(a_client)
        expire_session(a_client, zk_server.hosts)
        assert wait_until(lambda: b.hold(), 20, interval=0.1, what="b to take the lock")
        wait_until(lambda: a_client.connected and zksession.session_id(a_client) != old, 20, what="a's new session")
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


def test_a_stopped_reaper_hands_retention_to_another_sidecar(zk_server, zk_root, tmp_path):
    from discovery.sidecar import Sidecar

    def start(shard: str) -> Sidecar:
        return Sidecar(zk_server.hosts, tmp_path / f"{shard}.json", shard=shard, replica="r1", root=zk_root,
                       listen=None, debounce=0.2, session_timeout=4.0, retention=3600.0,
                       reap_interval=0.3).start()

    a = start("a")
    b = None
    try:
        wait_until(lambda: a.is_reaper, 20, what="a to lead retention")
        b = start("b")
        wait_until(lambda: b.watcher.ready, 20, what="b to follow ZooKeeper")
        lock = ReaperLock(b.client, zk_root, "probe")
        assert lock.holder() == "a/r1" and not b.is_reaper
        a.stop()
        assert not a.is_reaper
        wait_until(lambda: b.is_reaper, 20, what="b to take retention over")
        assert lock.holder() == "b/r1"
    finally:
        a.stop()
        if b is not None:
            b.stop()
