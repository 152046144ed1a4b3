"""Scenario files: valid ones load, every mistake is named by file, event and field."""

from __future__ import annotations

import pytest

from simulator.scenario import FOREVER, ScenarioError, load_scenario, parse_duration


def write(tmp_path, text):
    p = tmp_path / "scenario.yaml"
    p.write_text(text)
    return p


def test_full_example_loads(tmp_path):
    s = load_scenario(write(tmp_path, """
version: 1
events:
  - {type: cpu, hosts: web-0042, at: 60s, duration: 10m, value: 95}
  - {type: disk_fill, hosts: db-0007, at: 2m, duration: 5m, value: 98, mountpoint: /var/lib/postgresql}
  - {type: http_5xx, hosts: ["web-*", "lb-*"], at: 5m, duration: 2m, value: 30}
  - {type: memory, hosts: cache-*, at: 0, value: 92}
  - {type: host_down, hosts: app-0003, at: 3m, deregister_after: never}
"""))
    cpu, disk, err, mem, down = s.events
    assert (cpu.at, cpu.duration, cpu.value, cpu.hosts) == (60, 600, 95, ("web-0042",))
    assert disk.mountpoint == "/var/lib/postgresql" and disk.at == 120
    assert err.matches("lb-0001") and err.matches("web-0100") and not err.matches("db-0001")
    assert mem.duration == FOREVER
    assert down.deregister_after is None and down.duration == FOREVER
    # host_down deregisters after 10 minutes unless told otherwise
    s2 = load_scenario(write(tmp_path, "events: [{type: host_down, hosts: x, at: 1s}]"))
    assert s2.events[0].deregister_after == 600


@pytest.mark.parametrize("text, needle", [
    ("events: [{type: cpu, hosts: a, value: 95, at: soon}]", "events[0].at"),
    ("events: [{type: cpux, hosts: a}]", "events[0].type"),
    ("events: [{type: cpu, value: 95}]", "events[0].hosts"),
    ("events: [{type: cpu, hosts: a}]", "events[0].value: required"),
    ("events: [{type: cpu, hosts: a, value: 150}]", "events[0].value"),
    ("events: [{type: cpu, hosts: a, value: 50}, {type: cpu, hosts: a, value: 50, colour: red}]",
     "events[1]: unknown field(s) colour"),
    ("events: [{type: host_down, hosts: a, value: 3}]", "host_down takes no value"),
    ("events: [{type: cpu, hosts: a, value: 50, mountpoint: /}]", "only disk_fill"),
    ("events: [{type: disk_fill, hosts: a, mountpoint: var}]", "mountpoint"),
    ("events: [{type: cpu, hosts: a, value: 50, duration: 0}]", "duration: must be positive"),
    ("events: {type: cpu}", "events: must be a list"),
    ("version: 2\nevents: []", "version"),
    ("events: [", "invalid YAML"),
    ("- 1", "top level must be a mapping"),
])
def test_errors_name_file_event_and_field(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert str(p) in str(exc.value)
    assert needle in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


def test_durations():
    assert parse_duration("1.5h", "x") == 5400
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("1h30m", "x") == 5400  # the one grammar (fleetmon.durations)
    assert parse_duration(7, "x") == 7
    for bad in ("-1s", True, "5 minutes", None, -3):
        with pytest.raises(ScenarioError, match=r"^events\[2\]\.at: "):
            parse_duration(bad, "events[2].at")


def test_listen_takes_ipv6_and_defaults_to_loopback() -> None:
    from simulator.cli import parse_listen

    assert parse_listen("[::1]:9850") == ("::1", 9850)
    assert parse_listen(":9850") == ("127.0.0.1", 9850)
    assert parse_listen("0.0.0.0:9850") == ("0.0.0.0", 9850)


def test_cli_refuses_bad_scenario_and_taken_port(tmp_path):
    import socket

    from click.testing import CliRunner

    from simulator import simulate

    bad = write(tmp_path, "events: [{type: cpu, hosts: web-0001, value: 150}]")
    res = CliRunner().invoke(simulate, ["--hosts", "3", "--scenario", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}: events[0].value: a percent between 0 and 100" in res.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = CliRunner().invoke(simulate, ["--hosts", "3", "--listen", f"127.0.0.1:{port}"])
    assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output
    res = CliRunner().invoke(simulate, ["--listen", "nowhere"])
    assert res.exit_code == 2 and "HOST:PORT" in res.output and "--listen" in res.output
