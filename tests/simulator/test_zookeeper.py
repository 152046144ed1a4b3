"""The simulator registers every host in ZooKeeper through discovery's Registrar."""

from __future__ import annotations

import json

from discovery import layout
from tests.harness.servers import wait_until
from tests.simulator.simproc import SimulatorProcess


def test_registers_hosts_and_drops_liveness_of_dead_host(tmp_path, zk_server, zk_client, zk_root):
    sim = SimulatorProcess(tmp_path / "sim", hosts=40,
                           args=["--zk", zk_server.hosts, "--zk-root", zk_root, "--session-timeout", "4"]).start()
    try:
        def registered(kind: str) -> set[str]:
            base = f"{zk_root}/{kind}"
            names = set()
            if not zk_client.exists(base):
                return names
            for bucket in zk_client.get_children(base):
                names.update(zk_client.get_children(f"{base}/{bucket}"))
            return names

        wait_until(lambda: len(registered("hosts")) == 40 and len(registered("alive")) == 40, timeout=30,
                   what="40 hosts registered")
        data, _ = zk_client.get(layout.host_path(zk_root, "db-0002"))
        doc = json.loads(data)
        assert doc["address"] == f"127.0.0.1:{sim.port}"
        assert doc["metrics_path"] == "/hosts/db-0002/metrics"
        assert doc["labels"]["role"] == "db" and set(doc["labels"]) == {"datacenter", "role", "env"}

        sim.post_event({"type": "host_down", "hosts": "db-0002", "at": 0, "deregister_after": "2s"})
        wait_until(lambda: "db-0002" not in registered("alive"), timeout=15, what="liveness of db-0002 gone")
        wait_until(lambda: "db-0002" not in registered("hosts"), timeout=15, what="db-0002 deregistered")
        assert len(registered("hosts")) == 39
    finally:
        sim.stop()
