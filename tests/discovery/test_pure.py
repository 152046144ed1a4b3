"""Pure parts of discovery: layout validation, rendezvous sharding, file_sd rendering."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery import layout, sharding, targets
from discovery.cli import fleet_status, load_targets_file, main
from discovery.layout import InvalidHostData
from discovery.watcher import FleetView
from tests.harness.servers import use_zk_security

HOSTS = [f"host-{i:05d}.dc{i % 3}.example" for i in range(25_000)]


def test_bucket_of_is_stable_and_spread() -> None:
    assert layout.bucket_of("web-1") == layout.bucket_of("web-1")
    assert all(len(layout.bucket_of(h)) == 2 for h in HOSTS[:100])
    counts = Counter(layout.bucket_of(h) for h in HOSTS)
    assert set(counts) == set(layout.all_buckets())  # every bucket used, 256 of them
    # ~98 hosts per bucket; a flat parent of 25,000 is what bucketing avoids.
    assert max(counts.values()) < 160
    assert layout.host_path("/fleetmon", "web-1") == f"/fleetmon/hosts/{layout.bucket_of('web-1')}/web-1"


@pytest.mark.parametrize("data, field", [
    (b"", "data"),
    (b"\xff\xfe", "data"),
    (b"not json", "data"),
    (b"[1,2]", "data"),
    (b"[" * 60_000, "data"),
    (b"{" + b" " * 70_000 + b"}", "data"),
    (b'{"labels": {}}', "address"),
    (b'{"address": "nohostport"}', "address"),
    (b'{"address": "h:99999"}', "address"),
    (b'{"address": "h/x:80"}', "address"),
    (b'{"address": 80}', "address"),
    (b'{"address": "h:80", "labels": {"__scheme__": "https"}}', "labels.__scheme__"),
    (b'{"address": "h:80", "labels": {"1bad": "x"}}', "labels.1bad"),
    (b'{"address": "h:80", "labels": {"role": 5}}', "labels.role"),
    (b'{"address": "h:80", "labels": {"instance": "spoof"}}', "labels.instance"),
    (b'{"address": "h:80", "labels": ["a"]}', "labels"),
    (b'{"address": "h:80", "metrics_path": "metrics"}', "metrics_path"),
    (b'{"address": "h:80", "surprise": 1}', "surprise"),
])
def test_garbage_host_data_is_rejected_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidHostData) as exc:
        layout.parse_host_data("web-1", data)
    assert str(exc.value).startswith(field)


def test_valid_host_data_round_trips() -> None:
    spec = layout.make_host("web-1", "[::1]:9100", {"datacenter": "dc1", "role": "web"}, "/probe")
    assert layout.parse_host_data("web-1", spec.to_json()) == spec
    assert layout.parse_host_data("x", b'{"address": "10.0.0.1:9100"}').metrics_path == "/metrics"
    for bad in ("", "a/b", "..", "has space", "x" * 300):
        with pytest.raises(InvalidHostData):
            layout.validate_name(bad)


def test_every_host_in_exactly_one_shard_and_balanced() -> None:
    shards = ["s1", "s2", "s3", "s4", "s5"]
    parts = sharding.partition(HOSTS, shards)
    assert sorted(h for v in parts.values() for h in v) == sorted(HOSTS)
    ideal = len(HOSTS) / len(shards)
    for s, members in parts.items():
        assert abs(len(members) - ideal) / ideal < 0.05, (s, len(members))
    # The answer does not depend on the order the shards are listed in.
    assert all(sharding.assign(h, list(reversed(shards))) == sharding.assign(h, shards) for h in HOSTS[:500])


def test_adding_a_shard_moves_one_nth_unlike_hashmod() -> None:
    four, five = ["s1", "s2", "s3", "s4"], ["s1", "s2", "s3", "s4", "s5"]
    moved = sharding.moved_fraction(HOSTS, four, five)
    assert abs(moved - 0.20) < 0.02
    # Everything that moved went to the new shard.
    assert all(sharding.assign(h, five) == "s5" for h in HOSTS[:3000]
               if sharding.assign(h, four) != sharding.assign(h, five))
    assert sharding.moved_fraction(HOSTS, four, five, hashmod=True) > 0.7


def test_removing_a_shard_moves_only_its_hosts() -> None:
    before = sharding.partition(HOSTS, ["a", "b", "c"])
    after = sharding.partition(HOSTS, ["a", "b"])
    assert set(before["a"]) <= set(after["a"]) and set(before["b"]) <= set(after["b"])
    assert set(after["a"]) | set(after["b"]) == set(HOSTS)


def test_targets_for_a_shard() -> None:
    hosts = {n: layout.make_host(n, f"10.0.0.{i}:9847", {"role": "web", "datacenter": "dc1"})
             for i, n in enumerate(["web-1", "web-2", "db-1", "db-2", "cache-1"], start=1)}
    hosts["db-1"] = layout.make_host("db-1", "10.0.0.3:9104", {"role": "db"}, "/probe")
    files = {s: json.loads(targets.render(targets.shard_targets(hosts, ["a", "b"], s))) for s in ("a", "b")}
    seen = [g["labels"]["instance"] for f in files.values() for g in f]
    assert sorted(seen) == sorted(hosts)
    db1 = next(g for f in files.values() for g in f if g["labels"]["instance"] == "db-1")
    assert db1 == {"targets": ["10.0.0.3:9104"],
                   "labels": {"__metrics_path__": "/probe", "instance": "db-1", "role": "db"}}
    # Same state, same bytes (the two replicas of a shard write identical files).
    assert targets.render(targets.shard_targets(dict(reversed(hosts.items())), ["b", "a"], "a")) == \
        targets.render(targets.shard_targets(hosts, ["a", "b"], "a"))
    # A shard that is not (yet) in the live set still counts itself.
    assert targets.shard_hosts(hosts, [], "a") == [hosts[n] for n in sorted(hosts)]


def test_global_targets() -> None:
    reps = {"s1": {"r1": {"prometheus_url": "http://10.0.0.1:9090"},
                   "r2": {"prometheus_url": "https://u:pw@10.0.0.2:9090/prom/"}},
            "s2": {"r1": {"prometheus_url": None}, "r2": {}}}
    assert targets.global_targets(reps) == [
        {"targets": ["10.0.0.1:9090"], "labels": {"shard": "s1", "replica": "r1"}},
        {"targets": ["10.0.0.2:9090"], "labels": {"shard": "s1", "replica": "r2",
                                                   "__metrics_path__": "/prom/federate", "__scheme__": "https"}},
    ]


def test_from_file_lines_and_yaml(tmp_path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# node exporters\nnode-a 10.0.0.1:9100 role=db\n10.0.0.2:9100\n\n")
    specs = load_targets_file(f, {"env": "prod"}, "/metrics")
    assert [(s.name, s.address, s.labels) for s in specs] == [
        ("node-a", "10.0.0.1:9100", {"env": "prod", "role": "db"}),
        ("10.0.0.2", "10.0.0.2:9100", {"env": "prod"})]
    y = tmp_path / "t.yaml"
    y.write_text("- {name: pg-1, address: 'db1:9187', labels: {role: db}, metrics_path: /m}\n")
    assert load_targets_file(y, {}, "/metrics")[0].metrics_path == "/m"


def test_register_rejects_bad_file_naming_file_and_line(tmp_path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("ok 10.0.0.1:9100\nbad 10.0.0.2:notaport\n")
    res = CliRunner().invoke(main, ["register", "--zk", "127.0.0.1:1", "--from-file", str(f)])
    assert res.exit_code == 2
    assert f"{f}:2" in res.output and "address" in res.output
    res = CliRunner().invoke(main, ["register", "--zk", "127.0.0.1:1", "--address", "h:1", "--label", "__x=1"])
    assert res.exit_code == 2 and "reserved" in res.output


def test_status_summary() -> None:
    view = FleetView(hosts={n: layout.make_host(n, "h:1") for n in ("a", "b", "c")},
                     invalid={"junk": "data: not JSON"}, alive={"a", "b", "ghost"},
                     replicas={"s1": {"r1": {}}, "s2": {"r1": {}, "r2": {}}, "dead": {}})
    st = fleet_status(view)
    assert sum(v["hosts"] for v in st["shards"].values()) == 3
    assert sum(v["agents_down"] for v in st["shards"].values()) == 1
    assert set(st["shards"]) == {"s1", "s2"} and st["shards"]["s2"]["replicas"] == ["r1", "r2"]
    assert st["invalid"] == {"junk": "data: not JSON"} and st["alive_without_inventory"] == ["ghost"]
    assert fleet_status(FleetView(hosts=view.hosts))["unassigned"] == ["a", "b", "c"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 json_values.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(["address", "labels", "metrics_path", "x"]), json_values)
                 .map(lambda v: json.dumps(v).encode())))
def test_any_znode_data_parses_or_is_rejected_cleanly(data: bytes) -> None:
    try:
        spec = layout.parse_host_data("h1", data)
    except InvalidHostData:
        return
    assert layout.parse_host_data("h1", spec.to_json()) == spec
    json.loads(targets.render(targets.shard_targets({"h1": spec}, ["a"], "a")))


def test_run_reports_bad_flags_and_a_busy_port(tmp_path) -> None:
    import socket

    # The sidecar's credential check comes before the port: give this process the harness's
    # credentials, as a ZooKeeper test run before this one would have (order must not matter).
    use_zk_security()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        res = CliRunner().invoke(main, ["run", "--zk", "127.0.0.1:1", "--shard", "a", "--output",
                                        str(tmp_path / "t.json"), "--listen", f"127.0.0.1:{port}"])
        assert res.exit_code == 1 and "Address already in use" in res.output
    finally:
        busy.close()
    res = CliRunner().invoke(main, ["run", "--zk", "127.0.0.1:1", "--shard", "a/b", "--output", str(tmp_path / "t")])
    assert res.exit_code == 2 and "--shard 'a/b'" in res.output
    for flag, value in (("--listen", "9848"), ("--listen", "::1:9848"), ("--reap-interval", "soon")):
        res = CliRunner().invoke(main, ["run", "--zk", "127.0.0.1:1", "--shard", "a", "--output",
                                        str(tmp_path / "t.json"), flag, value])
        assert res.exit_code == 2 and f"'{flag}'" in res.output and repr(value) in res.output, res.output
    assert not (tmp_path / "t.json").exists()
