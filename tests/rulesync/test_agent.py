"""RuleAgent robustness against a real Prometheus and ZooKeeper: Prometheus down, session expiry."""

from __future__ import annotations

import json
import logging

from fleetmon import zksession
from fleetmon.zk import make_client
from rulesync import bundle, publish
from rulesync.agent import RuleAgent
from rulesync.pipeline import compile_paths
from tests.harness.servers import wait_until
from tests.rulesync.conftest import RECORDING, TESTDATA


def _status(client, root: str) -> dict:
    data, _ = client.get(f"{root}/rules/status/s/r")
    return json.loads(data)


def test_agent_retries_when_prometheus_was_down_and_survives_session_expiry(
        rules_prometheus, zk_server, zk_root, zk_client) -> None:
    prom, rules_dir = rules_prometheus("agent")
    # fleetmon's recording rules beside the generated ones (not ours: the agent never deletes
    # them); in-windows.yaml's memory rule reads one of their series.
    (rules_dir / "fleetmon-recording.rules.yml").write_text(RECORDING.read_text())
    _, files, _ = compile_paths([TESTDATA / "golden" / "in-seed.yaml"])
    b = bundle.make(files)
    client = make_client(zk_server.hosts, role="sidecar")
    client.start(timeout=15)
    agent = RuleAgent(client, zk_root, "s", "r", rules_dir, prom.url, verify_timeout=5)
    try:
        prom.stop()
        agent.start()
        publish.publish(zk_client, zk_root, b)
        st = wait_until(lambda: zk_client.exists(f"{zk_root}/rules/status/s/r") and _status(zk_client, zk_root),
                        timeout=30, what="agent status")
        assert st["version"] == b.version and not st["ok"] and "reload request" in st["error"]
        # Prometheus comes back: the agent tries again on its own.
        prom.start()
        wait_until(lambda: _status(zk_client, zk_root)["ok"], timeout=40, what="agent retry to succeed")
        assert "HighCpuUsage" in {r["name"] for g in prom.rules() for r in g["rules"]}

        # Expire the agent's session (close it from a second client holding the same id): the
        # ephemeral status goes with it and must come back once kazoo has a new session.
        old_session = zksession.session_id(client)
        sid, pwd = client.client_id
        twin = make_client(zk_server.hosts, client_id=(sid, pwd))
        twin.start(timeout=15)
        twin.stop()
        twin.close()
        wait_until(lambda: client.connected and zksession.session_id(client) != old_session, timeout=30,
                   what="a new session")
        st = wait_until(lambda: zk_client.exists(f"{zk_root}/rules/status/s/r") and _status(zk_client, zk_root),
                        timeout=30, what="status re-created after session expiry")
        assert st["ok"] and st["version"] == b.version
        # And the watch still works in the new session.
        _, files2, _ = compile_paths([TESTDATA / "golden" / "in-windows.yaml"])
        b2 = bundle.make(files2)
        publish.publish(zk_client, zk_root, b2)
        wait_until(lambda: _status(zk_client, zk_root)["version"] == b2.version and
                   _status(zk_client, zk_root)["ok"], timeout=30, what="new bundle after expiry")
        assert "MemMax" in {r["name"] for g in prom.rules() for r in g["rules"]}
    finally:
        agent.stop()
        client.stop()
        client.close()
    assert not zk_client.exists(f"{zk_root}/rules/status/s/r")


def test_agent_leaves_another_sessions_status_and_publishes_once_that_session_ends(
        zk_server, zk_root, zk_client, tmp_path, caplog) -> None:
    """fleetmon.zksession's rule: a status node of another session (our previous process, or a
    twin with the same shard/replica) is neither replaced nor deleted, even by stop()."""
    caplog.set_level(logging.INFO, logger="fleetmon.zksession")
    path = f"{zk_root}/rules/status/s/r"
    twin = make_client(zk_server.hosts, timeout=4.0, role="sidecar")
    twin.start(timeout=15)
    client = make_client(zk_server.hosts, role="sidecar")
    client.start(timeout=15)
    # No bundle published: the agent reports what is on disk (nothing); no Prometheus needed.
    agents = [RuleAgent(client, zk_root, "s", "r", tmp_path / f"rules-{i}", "http://127.0.0.1:1",
                        precheck=False, allow_unsigned=True) for i in range(2)]
    try:
        twin.create(path, b'{"by": "twin"}', ephemeral=True, makepath=True)
        agents[0].start()
        wait_until(lambda: sum(path in r.getMessage() for r in caplog.records) >= 2, 20,
                   what="two attempts leaving the twin's status alone")
        agents[0].stop()
        data, stat = zk_client.get(path)
        assert data == b'{"by": "twin"}' and zksession.owned_by_us(twin, stat)

        agents[1].start()
        twin.stop()  # the twin's session ends: ZooKeeper removes its node, the agent publishes
        twin.close()
        wait_until(lambda: zksession.owned_by_us(client, zk_client.exists(path)), 15,
                   what="the agent's own status once the twin's session ended")
        assert _status(zk_client, zk_root)["ok"] is True
    finally:
        for agent in agents:
            agent.stop()
        twin.stop()
        twin.close()
        client.stop()
        client.close()
    assert not zk_client.exists(path)
