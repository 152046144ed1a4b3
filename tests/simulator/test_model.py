"""Pure tests of the simulated fleet: exposition validity, size, and that values move right."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator.model import Fleet
from simulator.scenario import parse_event

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def cpu_busy(before: dict, after: dict, dt: float) -> float:
    idle = [after[k] - before[k] for k in after if k[0] == "node_cpu_seconds_total" and ("mode", "idle") in k[1]]
    return 1 - sum(idle) / len(idle) / dt


@pytest.fixture
def fleet() -> tuple[Fleet, Clock]:
    clock = Clock()
    return Fleet(60, seed=3, series_per_host=500, clock=clock), clock


def test_names_labels_and_size(fleet):
    f, _ = fleet
    assert [h.name for h in f.hosts[:3]] == ["web-0001", "web-0002", "web-0003"]
    assert {"web-0030", "app-0012", "db-0009", "cache-0006", "lb-0003"} <= set(f.by_name)
    h = f.by_name["db-0007"]
    assert h.labels["role"] == "db" and h.labels["datacenter"].startswith("dc") and h.labels["env"] in ("prod", "staging")
    for host in (f.by_name["web-0001"], f.by_name["db-0001"], f.by_name["lb-0001"]):
        s = samples(f.render(host))
        assert 480 <= len(s) <= 520, (host.name, len(s))
        names = {k[0] for k in s}
        for need in ("node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
                     "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_disk_read_bytes_total",
                     "node_network_receive_bytes_total", "node_load1", "node_boot_time_seconds",
                     "node_uname_info", "node_scrape_collector_success", "fleetmon_syslog_messages_total",
                     "fleetmon_log_lines_total"):
            assert need in names, (host.name, need)
    web = samples(f.render(f.by_name["web-0001"]))
    assert ("node_uname_info", tuple(sorted({"domainname": "(none)", "machine": "x86_64", "nodename": "web-0001",
            "release": "6.1.0-18-amd64", "sysname": "Linux",
            "version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"}.items()))) in web
    assert any(k[0] == "fleetmon_http_requests_total" for k in web)
    assert any(k[0] == "fleetmon_http_request_duration_seconds_bucket" for k in web)


def test_series_target_is_honoured():
    f = Fleet(5, series_per_host=1000)
    assert 980 <= len(samples(f.render(f.hosts[0]))) <= 1020


def test_counters_monotonic_and_values_move(fleet):
    f, clock = fleet
    host = f.by_name["web-0004"]
    prev = samples(f.render(host))
    moved = set()
    for _ in range(40):
        clock.now += 15
        cur = samples(f.render(host))
        for k, v in cur.items():
            if k[0].endswith(("_total", "_bucket", "_count", "_sum")):
                assert v >= prev[k], k
            if v != prev[k]:
                moved.add(k[0])
        prev = cur
    for name in ("node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1",
                 "fleetmon_http_requests_total", "node_network_transmit_bytes_total", "node_disk_written_bytes_total"):
        assert name in moved, name


def test_every_counter_of_every_host_is_monotonic(fleet):
    f, clock = fleet
    for host in f.hosts:
        prev = samples(f.render(host))
        for step in (7, 300, 911, 1800):
            clock.now += step
            cur = samples(f.render(host))
            bad = [k for k, v in cur.items() if k[0].endswith(("_total", "_bucket", "_count", "_sum")) and v < prev[k]]
            assert not bad, (host.name, bad[:3])
            prev = cur
        clock.now = T0


def test_natural_cpu_stays_below_alert_threshold(fleet):
    f, clock = fleet
    for host in f.hosts:
        a = samples(f.render(host))
        clock.now += 300
        b = samples(f.render(host))
        clock.now -= 300
        assert 0.02 < cpu_busy(a, b, 300) < 0.6, host.name


def test_cpu_event_drives_rate_to_value(fleet):
    f, clock = fleet
    f.add_event(parse_event({"type": "cpu", "hosts": "web-000[12]", "at": "60s", "duration": "10m", "value": 95}, "e"),
                offset=0.0)
    h = f.by_name["web-0001"]
    clock.now = T0 + 60
    a = samples(f.render(h))
    clock.now = T0 + 360
    b = samples(f.render(h))
    assert cpu_busy(a, b, 300) == pytest.approx(0.95, abs=1e-3)
    # Exactly the window: half of [30 s, 90 s] is inside.
    clock.now = T0 + 30
    a = samples(f.render(h))
    clock.now = T0 + 90
    b = samples(f.render(h))
    assert 0.5 < cpu_busy(a, b, 60) < 0.65
    # After the end it goes back to the natural level.
    clock.now = T0 + 700
    a = samples(f.render(h))
    clock.now = T0 + 1000
    b = samples(f.render(h))
    assert cpu_busy(a, b, 300) < 0.6
    assert samples(f.render(f.by_name["web-0003"]))  # others untouched and still rendering


def test_overlapping_events_never_exceed_100_percent(fleet):
    f, clock = fleet
    for v in (90, 99, 70):
        f.add_event(parse_event({"type": "cpu", "hosts": "app-*", "at": 0, "duration": "5m", "value": v}, "e"))
    h = f.by_name["app-0001"]
    a = samples(f.render(h))
    clock.now += 120
    b = samples(f.render(h))
    assert cpu_busy(a, b, 120) == pytest.approx(0.70, abs=1e-3)


def test_disk_fill_memory_and_5xx(fleet):
    f, clock = fleet
    f.add_event(parse_event({"type": "disk_fill", "hosts": "db-0002", "at": 0, "duration": "2m", "value": 97,
                             "mountpoint": "/var/lib/postgresql"}, "e"))
    f.add_event(parse_event({"type": "memory", "hosts": "db-0002", "at": 0, "duration": "5m", "value": 93}, "e"))
    f.add_event(parse_event({"type": "http_5xx", "hosts": "web-0005", "at": 0, "duration": "5m", "value": 30}, "e"))
    key = tuple(sorted({"device": "/dev/nvme0n1p1", "fstype": "xfs", "mountpoint": "/var/lib/postgresql"}.items()))
    clock.now += 60
    mid = samples(f.render(f.by_name["db-0002"]))
    clock.now += 90
    db = samples(f.render(f.by_name["db-0002"]))
    used = lambda s: 1 - s[("node_filesystem_avail_bytes", key)] / s[("node_filesystem_size_bytes", key)]  # noqa: E731
    assert 0.6 < used(mid) < 0.97
    assert used(db) == pytest.approx(0.97, abs=1e-6)
    mem = 1 - db[("node_memory_MemAvailable_bytes", ())] / db[("node_memory_MemTotal_bytes", ())]
    assert mem == pytest.approx(0.93, abs=1e-6)
    web0 = samples(f.render(f.by_name["web-0005"]))
    clock.now += 60
    web1 = samples(f.render(f.by_name["web-0005"]))

    def delta(pred):
        return sum(web1[k] - web0[k] for k in web1 if k[0] == "fleetmon_http_requests_total" and pred(dict(k[1])))
    ratio = delta(lambda lb: lb["status"].startswith("5")) / delta(lambda lb: True)
    assert ratio == pytest.approx(0.30, abs=0.01)


def test_host_down_window(fleet):
    f, clock = fleet
    f.add_event(parse_event({"type": "host_down", "hosts": "cache-0001", "at": "10s", "duration": "1m"}, "e"))
    h = f.by_name["cache-0001"]
    assert not h.is_down(f.sim_time())
    clock.now += 11
    assert h.is_down(f.sim_time())
    clock.now += 60
    assert not h.is_down(f.sim_time())
