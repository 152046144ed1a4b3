"""fleetmon.zksession against a real ZooKeeper: the one rule for another session's ephemeral node."""

from __future__ import annotations

from fleetmon import zksession
from fleetmon.zk import make_client
from tests.harness.servers import wait_until


def test_claim_waits_for_a_foreign_ephemeral_and_takes_the_path_once_it_is_gone(zk_server, zk_client, zk_root):
    path = f"{zk_root}/alive/00/web-1"
    other = make_client(zk_server.hosts, timeout=4.0, role="registrar")
    other.start(timeout=15)
    try:
        assert zksession.session_id(other) not in (None, zksession.session_id(zk_client))
        assert zksession.claim_ephemeral(other, path, b"old") == zksession.CREATED
        # Another session's node is left alone, however often we try.
        assert zksession.claim_ephemeral(zk_client, path, b"new") == zksession.FOREIGN
        assert zksession.claim_ephemeral(zk_client, path, b"new") == zksession.FOREIGN
        data, stat = zk_client.get(path)
        assert data == b"old" and zksession.owned_by_us(other, stat) and not zksession.owned_by_us(zk_client, stat)
    finally:
        other.stop()  # closing the session removes its ephemeral node at once
        other.close()
    assert wait_until(lambda: zksession.claim_ephemeral(zk_client, path, b"new") == zksession.CREATED, 20,
                      what="the path once the other session ended")
    assert zksession.claim_ephemeral(zk_client, path, b"newer") == zksession.OURS
    data, stat = zk_client.get(path)
    assert data == b"newer" and zksession.is_ephemeral(stat) and zksession.owned_by_us(zk_client, stat)


def test_a_persistent_node_is_never_ours_and_never_deleted(zk_client, zk_root):
    path = f"{zk_root}/shards/s1/r1"
    zk_client.create(path, b"by hand", makepath=True)
    assert zksession.claim_ephemeral(zk_client, path, b"x") == zksession.FOREIGN
    _, stat = zk_client.get(path)
    assert not zksession.is_ephemeral(stat) and zk_client.get(path)[0] == b"by hand"


def test_claim_many_is_the_same_rule_pipelined(zk_server, zk_client, zk_root):
    paths = [f"{zk_root}/alive/{i % 3:02d}/h{i}" for i in range(50)]
    other = make_client(zk_server.hosts, timeout=4.0, role="registrar")
    other.start(timeout=15)
    try:
        assert zksession.claim_ephemerals(other, [(p, b"old") for p in paths[:10]]) == \
            dict.fromkeys(paths[:10], zksession.CREATED)
        assert zksession.claim_ephemeral(zk_client, paths[10], b"mine") == zksession.CREATED
        got = zksession.claim_ephemerals(zk_client, [(p, b"new") for p in paths])
        assert got == {**dict.fromkeys(paths[:10], zksession.FOREIGN), paths[10]: zksession.OURS,
                       **dict.fromkeys(paths[11:], zksession.CREATED)}
        assert all(zk_client.get(p)[0] == b"old" for p in paths[:10])
        assert zk_client.get(paths[10])[0] == b"new"
    finally:
        other.stop()
        other.close()
    assert wait_until(lambda: set(zksession.claim_ephemerals(zk_client, [(p, b"new") for p in paths]).values())
                      == {zksession.CREATED, zksession.OURS}, 20, what="the paths once the other session ended")
    assert all(zksession.owned_by_us(zk_client, zk_client.exists(p)) for p in paths)
