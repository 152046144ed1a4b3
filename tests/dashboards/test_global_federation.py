"""The global Prometheus (prometheus/global.yml) federates the recorded series of two real
shard Prometheus servers, and only those, and computes the fleet aggregates itself."""

from __future__ import annotations

from tests.dashboards.promsetup import start_global, start_shard


def self_as_host(instance: str, datacenter: str, role: str):
    """Each shard scrapes its own /metrics as a fleet host (a real target with host labels)."""
    def configs(server):
        return [{
            "job_name": "fleet",
            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"],
                                "labels": {"datacenter": datacenter, "role": role, "env": "test"}}],
            "relabel_configs": [{"target_label": "instance", "replacement": instance}],
        }]
    return configs


def test_global_federates_recorded_series_from_both_shards(prometheus_factory, tmp_path):
    # Shard s0 is an HA pair: replicas a and b both scrape host-s0. Shard s1 scrapes host-s1.
    s0a = start_shard(prometheus_factory, tmp_path, "s0", "a", self_as_host("host-s0", "dc1", "web"))
    s0b = start_shard(prometheus_factory, tmp_path, "s0", "b", self_as_host("host-s0", "dc1", "web"))
    s1 = start_shard(prometheus_factory, tmp_path, "s1", "a", self_as_host("host-s1", "dc1", "web"))
    glob = start_global(prometheus_factory, tmp_path, [s0a, s0b, s1],
                        [{"shard": "s0", "replica": "a"}, {"shard": "s0", "replica": "b"},
                         {"shard": "s1", "replica": "a"}])

    res = glob.wait_for_query("instance:up:bool", lambda r: len(r) == 3, timeout=40)
    seen = {(r["metric"]["instance"], r["metric"]["shard"], r["metric"]["replica"]) for r in res}
    # honor_labels keeps the host's labels and the shards' external labels.
    assert seen == {("host-s0", "s0", "a"), ("host-s0", "s0", "b"), ("host-s1", "s1", "a")}
    assert all(r["metric"]["datacenter"] == "dc1" and r["metric"]["job"] == "fleet" for r in res)

    # The fleet aggregates are computed on the global over both shards' hosts, each host
    # counted once although the HA pair reports host-s0 twice.
    total = glob.wait_for_query('datacenter_role:hosts_total:count{datacenter="dc1",role="web"}',
                                lambda r: r and float(r[0]["value"][1]) == 2, timeout=30)
    assert "shard" not in total[0]["metric"]
    up = glob.wait_for_query('datacenter_role:hosts_up:count{datacenter="dc1",role="web"}',
                             lambda r: r and float(r[0]["value"][1]) == 2, timeout=30)
    assert "shard" not in up[0]["metric"]
    down = glob.query('datacenter_role:hosts_down:count{datacenter="dc1",role="web"}')
    assert float(down[0]["value"][1]) == 0

    # Only recorded per-host series cross: no raw series, no shard-level aggregates.
    assert s0a.query('up{instance="host-s0"}')
    assert glob.query('up{instance=~"host-.*"}') == []
    assert glob.query('{__name__="prometheus_build_info", shard=~".+"}') == []
    # The shard evaluates its own fleet group on its own schedule: wait for its first result.
    assert s0a.wait_for_query("datacenter_role:hosts_up:count", timeout=20)
    assert glob.query('datacenter_role:hosts_up:count{shard=~".+"}') == []

    # Every replica is a federated target, labelled as fleet-discovery global labels them.
    targets = {(t["labels"]["shard"], t["labels"]["replica"], t["health"]) for t in glob.targets()
               if t["labels"]["job"] == "fleetmon-federate"}
    assert targets == {("s0", "a", "up"), ("s0", "b", "up"), ("s1", "a", "up")}

    # A replica lost: the host stays counted once, from the other replica.
    s0b.stop()
    glob.wait_for_query('up{job="fleetmon-federate",replica="b"} == 0', timeout=30)
    after = glob.query('datacenter_role:hosts_total:count{datacenter="dc1",role="web"}')
    assert float(after[0]["value"][1]) == 2
