"""`--sessions per-host`: every simulated host holds its own ZooKeeper session, as a real fleet."""

from __future__ import annotations

from click.testing import CliRunner
from kazoo.handlers.gevent import SequentialGeventHandler

from discovery import layout
from fleetmon import zksession
from fleetmon.zk import make_client
from simulator.cli import simulate
from simulator.sessions import plan_processes
from tests.harness.servers import wait_until
from tests.simulator.simproc import SimulatorProcess

HOSTS = 24


def _alive(zk_client, root: str) -> dict[str, int]:
    """Liveness node name -> the session that owns it."""
    out = {}
    base = f"{root}/alive"
    if not zk_client.exists(base):
        return out
    for bucket in zk_client.get_children(base):
        for name in zk_client.get_children(f"{base}/{bucket}"):
            stat = zk_client.exists(f"{base}/{bucket}/{name}")
            if stat is not None:
                out[name] = stat.ephemeralOwner
    return out


def test_each_host_holds_its_own_session(tmp_path, zk_server, zk_client, zk_root):
    sim = SimulatorProcess(tmp_path / "sim", hosts=HOSTS, args=[
        "--zk", zk_server.hosts, "--zk-root", zk_root, "--session-timeout", "4",
        "--sessions", "per-host", "--session-procs", "2"]).start()
    try:
        owners = wait_until(lambda: (a := _alive(zk_client, zk_root)) and len(a) == HOSTS and a, timeout=60,
                            what=f"{HOSTS} liveness nodes")
        # One session per host: no two liveness nodes share an owner, and none is ours.
        assert len(set(owners.values())) == HOSTS
        assert zksession.session_id(zk_client) not in owners.values()
        status = wait_until(lambda: (s := _status(sim)).get("synced") == HOSTS and s, timeout=30,
                            what="workers report every host in sync")
        assert status["workers"] == 2 and status["workers_running"] == 2
        assert status["connected"] == HOSTS and status["expired"] == 0

        # A dead host closes only its own session: the others keep theirs.
        sim.post_event({"type": "host_down", "hosts": "db-0002", "at": 0, "deregister_after": "never"})
        wait_until(lambda: "db-0002" not in _alive(zk_client, zk_root), timeout=30, what="db-0002 liveness gone")
        after = _alive(zk_client, zk_root)
        assert {n: o for n, o in owners.items() if n != "db-0002"} == after
        assert zk_client.exists(layout.host_path(zk_root, "db-0002")) is not None  # inventory stays
    finally:
        sim.stop(timeout=30)
    # Stopping the simulator closes every session: all liveness goes at once, inventory stays.
    wait_until(lambda: not _alive(zk_client, zk_root), timeout=30, what="every liveness node gone")
    assert zk_client.exists(layout.host_path(zk_root, "web-0001")) is not None


def _status(sim: SimulatorProcess) -> dict:
    import requests

    return requests.get(f"{sim.url}/-/sessions", timeout=5).json()


def test_per_host_needs_zk():
    res = CliRunner().invoke(simulate, ["--hosts", "2", "--sessions", "per-host"])
    assert res.exit_code == 2 and "--sessions per-host needs --zk" in res.output


def test_process_plan():
    assert plan_processes(1, None) == 1
    assert plan_processes(2500, None) == 1
    assert plan_processes(2501, None) == 2
    assert plan_processes(25_000, None) == 10
    assert plan_processes(10, 4) == 4 and plan_processes(3, 8) == 3


def test_make_client_keeps_one_sleep_function_per_handler():
    # kazoo refuses retries whose sleep differs from the handler's; make_client matches them.
    handler = SequentialGeventHandler()
    # Open mode: this checks the retry wiring, not security (which needs no server either way).
    client = make_client("127.0.0.1:1", handler=handler, reconnect_jitter=0.8, insecure=True)
    assert client.handler is handler
    assert client._conn_retry.sleep_func is handler.sleep_func
    assert client._conn_retry.max_jitter == 0.8
    assert client.randomize_hosts
    plain = make_client("127.0.0.1:1", insecure=True)
    assert plain._conn_retry.max_jitter == 0.4 and plain._conn_retry.max_delay == 5.0
