"""Registration and sidecars against the session's real ZooKeeper (file-level outcomes)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from discovery import layout, reaper, sharding
from discovery.cli import main
from discovery.registry import Registrar
from discovery.sidecar import Sidecar
from fleetmon import zksession
from fleetmon.zk import make_client
from tests.harness.servers import free_port, wait_until


def read_targets(path: Path) -> dict[str, dict]:
    """{instance: target group} of a file_sd file ({} while it does not exist)."""
    if not path.exists():
        return {}
    return {g["labels"]["instance"]: g for g in json.loads(path.read_text())}


@pytest.fixture
def sidecars(zk_server, zk_root, tmp_path):
    started: list[Sidecar] = []

    def make(shard: str, replica: str = "r1", **kw) -> Sidecar:
        kw.setdefault("listen", f"127.0.0.1:{free_port()}")
        sc = Sidecar(zk_server.hosts, tmp_path / f"{shard}-{replica}.json", shard=shard, replica=replica,
                     root=zk_root, debounce=0.2, session_timeout=4.0, **kw)
        started.append(sc.start())
        return sc

    yield make
    for sc in started:
        sc.stop()


@pytest.fixture
def registrar(zk_server, zk_root):
    regs: list[Registrar] = []

    def make(**kw) -> Registrar:
        r = Registrar(zk_server.hosts, root=zk_root, session_timeout=kw.pop("session_timeout", 4.0), **kw)
        regs.append(r.start())
        return r

    yield make
    for r in regs:
        r.stop()


def expire_session(client_like, hosts: str) -> None:
    """Expire a kazoo session for real: join it from a second client, then close that one."""
    sid, passwd = client_like.client_id
    other = make_client(hosts, client_id=(sid, passwd))
    other.start(timeout=10)
    other.stop()
    other.close()


def test_registrar_writes_inventory_and_liveness_and_survives_expiry(registrar, zk_client, zk_root, zk_server):
    reg = registrar()
    reg.add("web-1", "127.0.0.1:9100", {"role": "web"})
    reg.add_many([{"name": f"sim-{i}", "address": f"127.0.0.1:{2000 + i}"} for i in range(200)])
    assert reg.wait(20)
    data, _ = zk_client.get(layout.host_path(zk_root, "web-1"))
    assert json.loads(data) == {"address": "127.0.0.1:9100", "metrics_path": "/metrics", "labels": {"role": "web"}}
    alive_stat = zk_client.exists(layout.host_alive_path(zk_root, "sim-7"))
    assert zksession.owned_by_us(reg.client, alive_stat)
    old_sid = zksession.session_id(reg.client)

    # Someone deletes an inventory entry by hand while the session is gone: both come back.
    expire_session(reg.client, zk_server.hosts)
    zk_client.delete(layout.host_path(zk_root, "sim-3"))
    wait_until(lambda: zksession.session_id(reg.client) not in (None, old_sid), 20, what="new session")
    assert reg.wait(20)
    stat = zk_client.exists(layout.host_alive_path(zk_root, "web-1"))
    assert zksession.owned_by_us(reg.client, stat)
    assert zk_client.exists(layout.host_path(zk_root, "sim-3")) is not None
    assert reg.session_expirations == 1

    # Updating the address rewrites the inventory; remove(deregister=False) keeps inventory only.
    reg.add("web-1", "127.0.0.1:9200", {"role": "web"})
    reg.remove("sim-1", deregister=False)
    reg.remove("sim-2")
    assert reg.wait(20)
    assert json.loads(zk_client.get(layout.host_path(zk_root, "web-1"))[0])["address"] == "127.0.0.1:9200"
    assert zk_client.exists(layout.host_path(zk_root, "sim-1")) is not None
    assert zk_client.exists(layout.host_alive_path(zk_root, "sim-1")) is None
    assert zk_client.exists(layout.host_path(zk_root, "sim-2")) is None


def _foreign_passes(caplog, needle: str) -> int:
    """How many times fleetmon.zksession logged leaving a node matching ``needle`` alone."""
    return sum(needle in r.getMessage() for r in caplog.records if r.name == "fleetmon.zksession")


def test_registrar_leaves_another_sessions_liveness_and_takes_it_once_that_session_ends(
        registrar, zk_server, zk_client, zk_root, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.zksession")
    ap = layout.host_alive_path(zk_root, "web-1")
    other = make_client(zk_server.hosts, timeout=4.0, role="registrar")  # e.g. our previous process
    other.start(timeout=15)
    try:
        other.create(ap, b"previous process", ephemeral=True, makepath=True)
        reg = registrar()
        reg.add("web-1", "127.0.0.1:9100")
        wait_until(lambda: _foreign_passes(caplog, ap) >= 2, 20, what="two passes leaving the node alone")
        assert not reg.wait(0)
        data, stat = zk_client.get(ap)
        assert data == b"previous process" and zksession.owned_by_us(other, stat)
    finally:
        other.stop()  # the other session ends: ZooKeeper removes its node
        other.close()
    assert reg.wait(20)
    data, stat = zk_client.get(ap)
    assert zksession.owned_by_us(reg.client, stat) and json.loads(data)["agent"] == "fleetmon"


def test_sidecar_leaves_another_sessions_replica_node_and_takes_it_once_that_session_ends(
        sidecars, zk_server, zk_client, zk_root, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.zksession")
    rp = layout.replica_path(zk_root, "s1", "r1")
    twin = make_client(zk_server.hosts, timeout=4.0, role="sidecar")  # a twin with the same --replica
    twin.start(timeout=15)
    try:
        twin.create(rp, layout.replica_data("s1", "r1", "http://twin:9090"), ephemeral=True, makepath=True)
        sc = sidecars("s1", prometheus_url="http://127.0.0.1:9090")
        wait_until(lambda: _foreign_passes(caplog, rp) >= 2, 20, what="two passes leaving the node alone")
        data, stat = zk_client.get(rp)
        assert json.loads(data)["prometheus_url"] == "http://twin:9090" and zksession.owned_by_us(twin, stat)
    finally:
        twin.stop()
        twin.close()
    wait_until(lambda: zksession.owned_by_us(sc.client, zk_client.exists(rp)), 10,
               what="the sidecar's own replica node once the twin's session ended")
    assert json.loads(zk_client.get(rp)[0])["prometheus_url"] == "http://127.0.0.1:9090"


def test_registrar_start_never_raises_without_zookeeper() -> None:
    reg = Registrar(f"127.0.0.1:{free_port()}", session_timeout=2.0).start()
    try:
        reg.add("web-1", "127.0.0.1:9100")
        assert not reg.wait(1.0)
        assert reg.status()["connected"] is False
    finally:
        reg.stop()


def test_shards_split_hosts_and_a_stopped_shard_moves_only_its_hosts(registrar, sidecars, zk_root, zk_client):
    reg = registrar()
    names = [f"h{i:03d}" for i in range(90)]
    reg.add_many([(n, f"127.0.0.1:{3000 + i}", {"env": "test"}) for i, n in enumerate(names)])
    a, b, c = sidecars("a"), sidecars("b"), sidecars("c")
    a2 = sidecars("a", replica="r2")
    assert reg.wait(20)

    def files():
        return {sc.shard + sc.replica: read_targets(sc.output) for sc in (a, b, c, a2)}

    def split_ok():
        f = files()
        return (sorted(set(f["ar1"]) | set(f["br1"]) | set(f["cr1"])) == names
                and len(f["ar1"]) + len(f["br1"]) + len(f["cr1"]) == 90)

    wait_until(split_ok, 30, what="90 hosts split over 3 shards")
    expected = sharding.partition(names, ["a", "b", "c"])
    assert sorted(files()["br1"]) == expected["b"]
    assert a.output.read_bytes() == wait_until(lambda: a2.output.exists() and a2.output.read_bytes()
                                               if a2.output.read_bytes() == a.output.read_bytes() else None, 10)
    g = files()["br1"][expected["b"][0]]
    assert g["labels"] == {"instance": expected["b"][0], "env": "test", "__metrics_path__": "/metrics"}

    # A persistent znode under shards/ (left by hand) does not make a shard live.
    zk_client.create(layout.replica_path(zk_root, "ghost", "r1"), b"{}", makepath=True)
    reg.add("h-probe", "127.0.0.1:3999")
    wait_until(lambda: "h-probe" in set(files()["ar1"]) | set(files()["br1"]) | set(files()["cr1"]), 20)
    reg.remove("h-probe")
    wait_until(split_ok, 20, what="h-probe to leave")
    assert a.live_shards == ["a", "b", "c"]

    before = files()
    c.stop()
    wait_until(lambda: len(files()["ar1"]) + len(files()["br1"]) == 90, 30, what="c's hosts to move")
    after = files()
    assert set(before["ar1"]) <= set(after["ar1"]) and set(before["br1"]) <= set(after["br1"])
    assert set(after["ar1"]) - set(before["ar1"]) | set(after["br1"]) - set(before["br1"]) == set(before["cr1"])
    # Its own file is left as it was (the stopped sidecar never empties it).
    assert read_targets(c.output) == before["cr1"]


def test_burst_is_debounced_and_garbage_is_skipped(registrar, sidecars, zk_client, zk_root, zk_server):
    sc = sidecars("only")
    reg = registrar()
    reg.add("good-1", "127.0.0.1:9100")
    wait_until(lambda: "good-1" in read_targets(sc.output), 20)
    writes, t0 = sc.writes, time.monotonic()
    reg.add_many([(f"burst-{i}", f"127.0.0.1:{4000 + i}") for i in range(1000)])
    wait_until(lambda: len(read_targets(sc.output)) == 1001, 30, what="1000 registrations in the file")
    # At most one write per debounce interval while the burst lasts (a handful, not 1,000).
    allowed = (time.monotonic() - t0) / sc.debounce + 2
    assert sc.writes - writes <= allowed, (sc.writes - writes, allowed)

    for name, data in (("junk-1", b"{not json"), ("junk-2", b'{"address": "x:1", "labels": {"__a": "b"}}'),
                       ("junk-3", b"")):
        zk_client.create(layout.host_path(zk_root, name), data, makepath=True)
    wrong = "00" if layout.bucket_of("misplaced") != "00" else "01"
    zk_client.create(f"{layout.host_bucket_path(zk_root, wrong)}/misplaced", b'{"address": "h:1"}', makepath=True)
    zk_client.set(layout.host_path(zk_root, "burst-5"), b"\x00\x01garbage")
    reg.add("good-2", "127.0.0.1:9101")
    wait_until(lambda: "good-2" in read_targets(sc.output), 20)
    t = read_targets(sc.output)
    # Garbage never becomes a target; a host whose data went bad keeps its last good entry.
    assert "junk-1" not in t and "junk-2" not in t and "misplaced" not in t and len(t) == 1002
    assert t["burst-5"]["targets"] == ["127.0.0.1:4005"]
    metrics = requests.get(f"http://{sc.listen}/metrics", timeout=5).text
    assert 'fleetmon_discovery_invalid_entries{replica="r1",shard="only"} 5.0' in metrics
    assert 'fleetmon_discovery_shard_hosts{replica="r1",shard="only"} 1002.0' in metrics
    assert 'fleetmon_discovery_agent_alive{instance="good-2"} 1.0' in metrics
    assert 'fleetmon_discovery_stale{replica="r1",shard="only"} 0.0' in metrics
    assert "process_resident_memory_bytes" in metrics
    lint = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=metrics,
                          capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    res = CliRunner().invoke(main, ["status", "--zk", zk_server.hosts, "--root", zk_root, "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    text = CliRunner().invoke(main, ["status", "--zk", zk_server.hosts, "--root", zk_root]).output
    assert "only" in text and "1001" in text and "invalid junk-1: data: not JSON" in text
    assert st["shards"]["only"]["hosts"] == 1001 and set(st["invalid"]) == {"junk-1", "junk-2", "junk-3", "burst-5",
                                                                            "misplaced"}


def test_sidecar_session_expiry_recreates_its_shard_node_and_keeps_the_file(registrar, sidecars, zk_client,
                                                                             zk_root, zk_server):
    sc = sidecars("s1", prometheus_url="http://admin:secret@127.0.0.1:9090")
    reg = registrar()
    reg.add("web-1", "127.0.0.1:9100")
    wait_until(lambda: "web-1" in read_targets(sc.output), 20)
    rp = layout.replica_path(zk_root, "s1", "r1")
    wait_until(lambda: zk_client.exists(rp), 10, what="shard replica node")
    assert json.loads(zk_client.get(rp)[0]) == {"shard": "s1", "replica": "r1",
                                                "prometheus_url": "http://127.0.0.1:9090"}
    content = sc.output.read_bytes()
    old = zksession.session_id(sc.client)
    expire_session(sc.client, zk_server.hosts)
    wait_until(lambda: zksession.session_id(sc.client) != old and zksession.owned_by_us(sc.client, zk_client.exists(rp)),
               20, what="shard node re-created by the new session")
    wait_until(lambda: sc.watcher.session_expirations == 1 and sc.watcher.ready, 20)
    assert sc.output.read_bytes() == content
    reg.add("web-2", "127.0.0.1:9101")
    wait_until(lambda: "web-2" in read_targets(sc.output), 20, what="updates after expiry")


def test_retention_reaps_only_long_gone_hosts(registrar, zk_server, zk_client, zk_root):
    reg = registrar()
    reg.add_many([("gone", "127.0.0.1:1"), ("back", "127.0.0.1:2"), ("here", "127.0.0.1:3")])
    assert reg.wait(20)
    reg.remove("gone", deregister=False)
    reg.remove("back", deregister=False)
    assert reg.wait(20)
    r1 = reaper.reap_once(zk_client, zk_root, retention=3600, now=1000.0)
    assert sorted(r1.marked) == ["back", "gone"] and not r1.deleted
    # A garbage mark (here NaN) restarts the clock; it never deletes early.
    zk_client.create(layout.host_path(zk_root, "weird"), layout.make_host("weird", "h:1").to_json(), makepath=True)
    zk_client.create(layout.host_absent_path(zk_root, "weird"), b'{"since": NaN}', makepath=True)
    reg.add("back", "127.0.0.1:2")
    assert reg.wait(20)
    r2 = reaper.reap_once(zk_client, zk_root, retention=3600, now=2000.0)
    assert r2.cleared == ["back"] and r2.waiting == {"gone": 1000.0, "weird": 0.0}
    r3 = reaper.reap_once(zk_client, zk_root, retention=3600, now=4601.0)
    assert r3.deleted == ["gone"] and r3.waiting == {"weird": 2601.0}
    assert zk_client.exists(layout.host_path(zk_root, "gone")) is None
    assert zk_client.exists(layout.host_path(zk_root, "back")) is not None
    assert zk_client.exists(layout.host_path(zk_root, "here")) is not None
    sidecar = make_client(zk_server.hosts, role="sidecar")  # reaping is the sidecars' (fleetmon/zkacl.py)
    sidecar.start(timeout=15)
    try:
        mine, other = reaper.ReaperLock(zk_client, zk_root, "test"), reaper.ReaperLock(sidecar, zk_root, "other")
        assert mine.hold() and mine.hold() and not other.hold() and mine.holder() == "test"
    finally:
        sidecar.stop()
        sidecar.close()


def test_register_cli_holds_liveness_until_sigterm_then_gc(zk_server, zk_client, zk_root, tmp_path):
    import os
    import signal
    import sys

    f = tmp_path / "targets.txt"
    f.write_text("pg-1 10.0.0.1:9187 role=db\nnode-2 10.0.0.2:9100\n10.0.0.3:9100  # name from address\n")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "fleet-discovery"), "register", "--zk", zk_server.hosts,
         "--root", zk_root, "--from-file", str(f), "--label", "env=test", "--session-timeout", "4"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        names = ["pg-1", "node-2", "10.0.0.3"]
        wait_until(lambda: all(zk_client.exists(layout.host_alive_path(zk_root, n)) for n in names), 30,
                   what="3 liveness nodes")
        data = json.loads(zk_client.get(layout.host_path(zk_root, "pg-1"))[0])
        assert data["labels"] == {"env": "test", "role": "db"}
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert b"registered 3 target(s)" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(zk_client.exists(layout.host_alive_path(zk_root, n)) for n in names)
    assert all(zk_client.exists(layout.host_path(zk_root, n)) for n in names)  # still targets

    run = CliRunner().invoke
    res = run(main, ["gc", "--zk", zk_server.hosts, "--root", zk_root, "--retention", "0s"])
    assert res.exit_code == 0 and "marked absent: 3" in res.output, res.output
    res = run(main, ["gc", "--zk", zk_server.hosts, "--root", zk_root, "--retention", "0s", "--dry-run"])
    assert "would delete: 3" in res.output and zk_client.exists(layout.host_path(zk_root, "pg-1"))
    res = run(main, ["gc", "--zk", zk_server.hosts, "--root", zk_root, "--retention", "0s"])
    assert "deleted: 3" in res.output, res.output
    assert not any(zk_client.exists(layout.host_path(zk_root, n)) for n in names)
    res = run(main, ["gc", "--zk", zk_server.hosts, "--root", zk_root, "--retention", "1h30m"])
    assert res.exit_code == 0 and "deleted: 0" in res.output, res.output
    res = run(main, ["gc", "--zk", zk_server.hosts, "--root", zk_root, "--retention", "soon"])
    assert res.exit_code == 2 and "'--retention'" in res.output and "got 'soon'" in res.output


def test_a_root_without_hosts_never_empties_an_existing_file(sidecars, tmp_path):
    out = tmp_path / "nohosts-r1.json"
    out.write_text('[{"targets":["10.0.0.1:9100"],"labels":{"instance":"kept"}}]\n')
    before = out.read_bytes()
    sc = sidecars("nohosts")  # zk_root is fresh: no <root>/hosts at all
    wait_until(lambda: sc.watcher.ready and sc.last_render > 0, 20, what="a render")
    assert out.read_bytes() == before and sc.writes == 0


def test_elected_sidecar_reaps_after_retention_and_the_target_stays_until_then(registrar, sidecars,
                                                                               zk_client, zk_root):
    reg = registrar()
    reg.add_many([("stays", "127.0.0.1:1"), ("crashed", "127.0.0.1:2")])
    a = sidecars("a", retention=2.0, reap_interval=0.5)
    b = sidecars("b", retention=2.0, reap_interval=0.5)

    def all_targets():
        return set(read_targets(a.output)) | set(read_targets(b.output))

    wait_until(lambda: all_targets() == {"stays", "crashed"}, 20)
    reg.remove("crashed", deregister=False)  # the agent is gone; the host is still a target
    wait_until(lambda: zk_client.exists(layout.host_absent_path(zk_root, "crashed")), 20, what="absent mark")
    assert all_targets() == {"stays", "crashed"}
    wait_until(lambda: all_targets() == {"stays"}, 20, what="retention to remove the entry")
    assert zk_client.exists(layout.host_path(zk_root, "crashed")) is None
    assert [sc.is_reaper for sc in (a, b)].count(True) == 1 and a.reaped + b.reaped == 1


def test_rules_dir_and_prometheus_url_run_the_rule_agent_with_the_sidecar(sidecars, tmp_path):
    from rulesync.agent import RuleAgent

    plain = sidecars("norules", prometheus_url="http://127.0.0.1:1")  # one of the two: no agent
    sc = sidecars("rules", rules_dir=tmp_path / "rules", prometheus_url="http://127.0.0.1:1")
    assert plain.rule_agent is None
    assert isinstance(sc.rule_agent, RuleAgent)
    assert (sc.rule_agent.shard, sc.rule_agent.replica, sc.rule_agent.rules_dir) == ("rules", "r1", tmp_path / "rules")
    assert sc.rule_agent.root == sc.root and sc.rule_agent._thread.is_alive()
    sc.stop()
    assert not sc.rule_agent._thread.is_alive()
