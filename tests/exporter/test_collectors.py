"""Host collectors against a fixture procfs with known values, and their failure modes
(a hung statfs, a missing file, a slow collector)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from exporter.collectors import REGISTRY, Roots
from exporter.collectors.base import Collector
from exporter.collectors.filesystem import FilesystemCollector
from exporter.host import HostMetrics, build_collectors
from exporter.metrics import Family, render
from tests.exporter.conftest import parse_samples, value, write_procfs


def scrape(host: HostMetrics) -> dict:
    return parse_samples(render(host.collect()).decode())


def test_fixture_values(tmp_path: Path) -> None:
    proc = write_procfs(tmp_path)
    roots = Roots(proc=str(proc), sys=str(tmp_path / "sys"), udev=str(tmp_path / "udev"))
    host = HostMetrics(build_collectors(roots, {"filesystem": {"enabled": False}}))
    s = scrape(host)
    hz = os.sysconf("SC_CLK_TCK")
    assert value(s, "node_cpu_seconds_total", cpu="1", mode="user") == 200 / hz
    assert value(s, "node_cpu_seconds_total", cpu="0", mode="steal") == 1 / hz
    assert len(s["node_cpu_seconds_total"]) == 16  # 2 CPUs x 8 modes, no aggregate "cpu" line
    assert value(s, "node_cpu_guest_seconds_total", cpu="1", mode="nice") == 3 / hz
    assert value(s, "node_memory_MemTotal_bytes") == 16384000 * 1024
    assert value(s, "node_memory_MemAvailable_bytes") == 8192000 * 1024
    assert value(s, "node_memory_Active_anon_bytes") == 10000 * 1024
    assert value(s, "node_memory_HugePages_Total") == 0
    assert value(s, "node_load1") == 0.5 and value(s, "node_load15") == 0.1
    assert value(s, "node_boot_time_seconds") == 1764300000
    assert value(s, "node_context_switches_total") == 987654
    assert value(s, "node_forks_total") == 4242
    assert value(s, "node_intr_total") == 123456
    assert value(s, "node_procs_running") == 3 and value(s, "node_procs_blocked") == 1
    # diskstats: sectors -> bytes, ms -> s; partitions and loop devices filtered as node_exporter does.
    assert value(s, "node_disk_read_bytes_total", device="sda") == 800 * 512
    assert value(s, "node_disk_written_bytes_total", device="sda") == 1600 * 512
    assert value(s, "node_disk_read_time_seconds_total", device="sda") == 0.05
    assert value(s, "node_disk_io_time_weighted_seconds_total", device="sda") == 0.12
    assert value(s, "node_disk_flush_requests_total", device="sda") == 5
    assert {dict(k)["device"] for k in s["node_disk_reads_completed_total"]} == {"sda", "nvme0n1"}
    assert value(s, "node_disk_info", device="sda", major="8", minor="0") == 1
    # netdev: lo excluded by default, nohandler from sysfs.
    assert value(s, "node_network_receive_bytes_total", device="eth0") == 5000
    assert value(s, "node_network_transmit_drop_total", device="eth0") == 4
    assert value(s, "node_network_receive_multicast_total", device="eth0") == 3
    assert value(s, "node_network_receive_nohandler_total", device="eth0") == 8
    assert value(s, "node_network_receive_bytes_total", device="lo") is None
    # uname(2), not --path.procfs, as node_exporter: the fixture's kernel/hostname are not used.
    un = os.uname()
    assert value(s, "node_uname_info", nodename=un.nodename, release=un.release, sysname=un.sysname) == 1
    for name in REGISTRY:
        if name != "filesystem":
            assert value(s, "node_scrape_collector_success", collector=name) == 1, name
    assert value(s, "node_scrape_collector_success", collector="filesystem") is None


def test_collector_options_and_filters(tmp_path: Path) -> None:
    proc = write_procfs(tmp_path)
    roots = Roots(proc=str(proc), sys=str(tmp_path / "sys"))
    host = HostMetrics(build_collectors(roots, {
        "netdev": {"device_exclude": ""}, "diskstats": {"device_include": "^sda1$"},
        "filesystem": {"enabled": False}, "cpu": {"enabled": False}}))
    s = scrape(host)
    assert value(s, "node_network_receive_bytes_total", device="lo") == 1000
    assert {dict(k)["device"] for k in s["node_disk_reads_completed_total"]} == {"sda1"}
    assert "node_cpu_seconds_total" not in s


def test_missing_file_fails_only_that_collector(tmp_path: Path) -> None:
    proc = write_procfs(tmp_path)
    (proc / "loadavg").unlink()
    host = HostMetrics(build_collectors(Roots(proc=str(proc), sys=str(tmp_path / "sys")),
                                        {"filesystem": {"enabled": False}}))
    s = scrape(host)
    assert value(s, "node_scrape_collector_success", collector="loadavg") == 0
    assert value(s, "node_scrape_collector_success", collector="meminfo") == 1
    assert "node_load1" not in s


def test_hung_statfs_is_time_boxed_and_reported_stale(tmp_path: Path) -> None:
    proc = write_procfs(tmp_path)
    release = threading.Event()
    calls: list[str] = []

    def statfs(path: str) -> os.statvfs_result:
        calls.append(path)
        if path == "/srv/stuck":
            release.wait(60)  # a dead NFS server: statfs blocks until it comes back
        return os.statvfs(tmp_path)

    fs = FilesystemCollector(Roots(proc=str(proc)), statfs=statfs, mount_timeout=0.3)
    host = HostMetrics([fs], timeout=5)
    try:
        t0 = time.monotonic()
        s = scrape(host)
        first = time.monotonic() - t0
        assert first < 2.0
        good = str(tmp_path / "data")
        assert value(s, "node_filesystem_device_error", mountpoint="/srv/stuck", device="/dev/sdz2") == 1
        assert value(s, "node_filesystem_device_error", mountpoint=good) == 0
        assert value(s, "node_filesystem_size_bytes", mountpoint=good, fstype="ext4", device="/dev/sdz1") > 0
        assert value(s, "node_filesystem_size_bytes", mountpoint="/srv/stuck") is None
        assert value(s, "node_scrape_collector_success", collector="filesystem") == 1
        # Later scrapes skip the stuck mount entirely: fast, no second thread stuck on it.
        t0 = time.monotonic()
        s = scrape(host)
        assert time.monotonic() - t0 < 0.25
        assert calls.count("/srv/stuck") == 1
        assert value(s, "node_filesystem_device_error", mountpoint="/srv/stuck") == 1
        assert fs.stuck_mounts() == ["/srv/stuck"]
        # The server comes back: the mount is statted again and reported healthy.
        release.set()
        from tests.harness.servers import wait_until
        wait_until(lambda: fs.stuck_mounts() == [], timeout=5, what="stuck statfs to return")
        s = scrape(host)
        assert value(s, "node_filesystem_device_error", mountpoint="/srv/stuck") == 0
        assert value(s, "node_filesystem_readonly", mountpoint="/srv/stuck") == 1
    finally:
        release.set()
        host.close()


class _SlowCollector(Collector):
    """A collector that answers once, then blocks until released (a stuck kernel read)."""

    name = "slow"

    def __init__(self) -> None:
        super().__init__(Roots())
        self.gate = threading.Event()
        self.calls = 0

    def collect(self) -> list[Family]:
        self.calls += 1
        if self.calls > 1:
            self.gate.wait(30)
        return [Family("slow_value", "gauge", "A value.").add((), self.calls)]


def test_slow_collector_serves_no_stale_value_and_does_not_slow_the_scrape(tmp_path: Path) -> None:
    slow = _SlowCollector()
    proc = write_procfs(tmp_path)
    fast = build_collectors(Roots(proc=str(proc)), {"filesystem": {"enabled": False}})
    host = HostMetrics([slow, *fast], timeout=0.3)
    try:
        s = scrape(host)
        assert value(s, "slow_value") == 1 and value(s, "node_scrape_collector_success", collector="slow") == 1
        t0 = time.monotonic()
        s = scrape(host)  # blocks inside collect(): time-boxed to 0.3 s
        assert time.monotonic() - t0 < 1.5
        assert "slow_value" not in s  # no stale sample with a fresh timestamp
        assert value(s, "node_scrape_collector_success", collector="slow") == 0
        assert value(s, "node_load1") == 0.5
        t0 = time.monotonic()
        s = scrape(host)  # still stuck: not called again, no wait at all
        assert time.monotonic() - t0 < 0.25
        assert slow.calls == 2
        assert "slow_value" not in s and value(s, "node_scrape_collector_success", collector="slow") == 0
        slow.gate.set()  # unstuck: the next scrape calls it again and serves its fresh value
        from tests.harness.servers import wait_until
        wait_until(lambda: value(scrape(host), "slow_value") is not None, timeout=5, what="fresh value")
        assert value(scrape(host), "node_scrape_collector_success", collector="slow") == 1
    finally:
        slow.gate.set()
        host.close()


def test_textfile_collector(tmp_path: Path) -> None:
    d = tmp_path / "textfile"
    d.mkdir()
    (d / "backup.prom").write_text('# HELP backup_last_success_seconds Last backup.\n'
                                   '# TYPE backup_last_success_seconds gauge\n'
                                   'backup_last_success_seconds{job="db"} 1764300000\n')
    (d / "ignored.txt").write_text("not a prom file\n")
    proc = write_procfs(tmp_path)
    only = {n: {"enabled": False} for n in REGISTRY}
    only["textfile"] = {"directory": str(d)}
    host = HostMetrics(build_collectors(Roots(proc=str(proc)), only))
    s = scrape(host)
    assert value(s, "backup_last_success_seconds", job="db") == 1764300000
    assert value(s, "node_textfile_scrape_error") == 0
    mtime = value(s, "node_textfile_mtime_seconds", file=str(d / "backup.prom"))
    assert mtime == int((d / "backup.prom").stat().st_mtime)  # the path, whole seconds: node_exporter's
    (d / "broken.prom").write_text("this is { not valid\n")
    s = scrape(host)
    assert value(s, "node_textfile_scrape_error") == 1
    assert value(s, "backup_last_success_seconds", job="db") == 1764300000


def test_stuck_statfs_returning_just_after_the_deadline_does_not_deadlock(tmp_path: Path, monkeypatch) -> None:
    """The interleaving that froze the exporter: a stuck statfs returns after the scrape's
    wait timed out but before the collector has recorded the mount as stuck. The wait is
    wrapped so that this happens every time, not one run in a thousand."""
    import exporter.collectors.filesystem as fsmod

    proc = write_procfs(tmp_path)
    release = threading.Event()
    returned = threading.Event()

    def statfs(path: str) -> os.statvfs_result:
        if path == "/srv/stuck":
            release.wait(30)
            returned.set()
        return os.statvfs(tmp_path)

    real_wait = fsmod.wait_futures

    def wait_then_finish_the_stragglers(fs, timeout=None):  # noqa: ANN001, ANN202
        done, not_done = real_wait(fs, timeout=timeout)
        if not_done:  # the deadline passed; now let the stuck call return and complete
            release.set()
            real_wait(not_done, timeout=10)
        return done, not_done

    monkeypatch.setattr(fsmod, "wait_futures", wait_then_finish_the_stragglers)
    fs = FilesystemCollector(Roots(proc=str(proc)), statfs=statfs, mount_timeout=0.2)
    host = HostMetrics([fs], timeout=5)
    result: list[dict] = []
    t = threading.Thread(target=lambda: result.append(scrape(host)), daemon=True)
    try:
        t.start()
        t.join(15)
        assert not t.is_alive(), "scrape deadlocked when the stuck statfs returned after the deadline"
        assert returned.is_set()
        s = result[0]
        assert value(s, "node_filesystem_device_error", mountpoint="/srv/stuck") == 1
        assert value(s, "node_filesystem_device_error", mountpoint=str(tmp_path / "data")) == 0
        # The call has returned, so the next scrape statfs's the mount again and reports it.
        monkeypatch.setattr(fsmod, "wait_futures", real_wait)
        s = scrape(host)
        assert value(s, "node_filesystem_device_error", mountpoint="/srv/stuck") == 0
        assert fs.stuck_mounts() == []
    finally:
        release.set()
        host.close()


def test_textfile_parsing_follows_node_exporter(tmp_path: Path) -> None:
    from exporter.collectors.cpu import parse_cpu_list
    from exporter.collectors.textfile import TextfileCollector

    assert parse_cpu_list("0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8] and parse_cpu_list("\n") == []
    d = tmp_path / "tf"
    d.mkdir()
    (d / "a.prom").write_text('# TYPE jobs counter\njobs{q="x"} 3\n# TYPE job_created gauge\njob_created 17\n'
                              'esc{path="C:\\\\dir\\"q\\"\\n"} 1\n')
    (d / ".hidden.prom").write_text("hidden_metric 1\n")
    host = HostMetrics([TextfileCollector(Roots(), directory=str(d))])
    s = scrape(host)
    text = render(host.collect()).decode()
    assert '\njobs{q="x"} 3\n' in text  # no renaming to jobs_total, as node_exporter
    assert value(s, "job_created") == 17  # a *_created gauge keeps its samples
    assert value(s, "esc", path='C:\\dir"q"\n') == 1
    assert f"# HELP esc Metric read from {d / 'a.prom'}\n" in text
    assert value(s, "hidden_metric") == 1  # node_exporter reads every *.prom name, dotfiles too
    assert value(s, "node_textfile_scrape_error") == 0
    for bad in ('ts_metric 1 1764000000000\n', 'x{a="1" 1\n', '# TYPE x summary\n# TYPE x gauge\n', 'x 1 2 3\n',
                'x{a="1",a="2"} 1\n', "x abc\n"):
        (d / "bad.prom").write_text("good 1\n" + bad)
        s = scrape(host)
        assert value(s, "node_textfile_scrape_error") == 1, bad
        assert "good" not in s and "ts_metric" not in s, bad  # the whole file is skipped
        assert value(s, "job_created") == 17


def test_textfile_changes_are_seen_and_merged_families_stay_whole(tmp_path: Path) -> None:
    from exporter.collectors.textfile import TextfileCollector

    d = tmp_path / "tf"
    d.mkdir()
    (d / "a.prom").write_text('shared{f="a"} 1\n')
    (d / "b.prom").write_text('shared{f="b"} 2\n')
    host = HostMetrics([TextfileCollector(Roots(), directory=str(d))])
    for _ in range(3):  # the merged family is built afresh each time, never grows
        text = render(host.collect()).decode()
        assert text.count("shared{") == 2, text
    tmp = d / "a.prom.tmp"
    tmp.write_text('shared{f="a"} 5\n')
    os.replace(tmp, d / "a.prom")  # the atomic replacement cron jobs do
    assert value(scrape(host), "shared", f="a") == 5
    (d / "a.prom").write_text('shared{f="a"} 7\n')  # rewritten in place, same size
    st = (d / "a.prom").stat()
    os.utime(d / "a.prom", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert value(scrape(host), "shared", f="a") == 7
    (d / "b.prom").unlink()
    assert value(scrape(host), "shared", f="b") is None
