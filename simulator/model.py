"""The simulated fleet: hosts, their node_exporter-shaped metric templates and moving values.

Cheap by construction, so one core can serve 10,000 hosts at a 15 s scrape interval:

- Hosts of one role share one *shape*: the exposition text of all their series, built once
  as a bytes ``%`` template. Values that never move (sizes, info metrics, collector
  outcomes) are baked into the text; only moving values are placeholders.
- Every moving value is ``a * X[j] + b * X[k] + c`` over a short per-host *driver* vector
  ``X`` (uptime, integral of CPU busy fraction, integral of HTTP requests, memory used
  fraction ...). Drivers have closed forms (a smooth sine plus scenario windows), so a
  counter's value at any instant is computed directly: no per-series state, counters are
  exactly monotonic and ``rate()`` over them gives back the driver (95% CPU reads as 95%).
- A scrape is: compute ~15 drivers, one list comprehension over the slots, one ``%``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.scenario import FOREVER, Event

# Driver indexes into a host's X vector.
ONE, UPTIME, JCPU, JHTTP, J5XX, GMEM, L1, L5, L15, NOW, BOOT, UCPU, RHTTP = range(13)
FS0 = 13  # then one used-fraction driver per filesystem of the shape

CPU_MODES = (  # mode -> share of the busy fraction (idle takes the rest)
    ("idle", None), ("iowait", 0.04), ("irq", 0.01), ("nice", 0.02),
    ("softirq", 0.03), ("steal", 0.01), ("system", 0.22), ("user", 0.67),
)
HTTP_METHODS = (("GET", 0.82), ("POST", 0.12), ("HEAD", 0.03), ("PUT", 0.02), ("DELETE", 0.01))
HTTP_OK_STATUS = (("200", 0.86), ("301", 0.03), ("304", 0.06), ("404", 0.045), ("499", 0.005))
HTTP_5XX_STATUS = (("500", 0.5), ("502", 0.3), ("503", 0.2))
LATENCY_BUCKETS = (  # le -> cumulative fraction of requests
    ("0.005", 0.08), ("0.01", 0.21), ("0.025", 0.46), ("0.05", 0.68), ("0.1", 0.84), ("0.25", 0.94),
    ("0.5", 0.975), ("1", 0.99), ("2.5", 0.997), ("5", 0.999), ("10", 0.9998), ("+Inf", 1.0),
)
SYSLOG_SEVERITIES = (("emerg", 0.0), ("alert", 0.0), ("crit", 0.0002), ("err", 0.01), ("warning", 0.03),
                     ("notice", 0.05), ("info", 0.8), ("debug", 0.0))
GIB = 1024 ** 3


@dataclass(frozen=True)
class RoleSpec:
    weight: int               # hosts of this role per 20 hosts
    ncpu: int
    mem_gib: int
    cpu_mean: float           # natural CPU busy fraction
    mem_mean: float
    http_rate: float          # requests/s of its web server log (0: no web server)
    filesystems: tuple[tuple[str, str, str, float, float], ...]  # device, fstype, mountpoint, GiB, used
    disks: tuple[str, ...]
    nics: tuple[str, ...] = ("eth0", "eth1", "lo")


_BASE_FS = (("/dev/sda1", "ext4", "/", 40, 0.42), ("/dev/sda2", "ext4", "/var/log", 20, 0.31),
            ("tmpfs", "tmpfs", "/run", 1.6, 0.02), ("/dev/sda15", "vfat", "/boot/efi", 0.12, 0.05))
ROLES: dict[str, RoleSpec] = {
    "web": RoleSpec(10, 8, 16, 0.22, 0.45, 120.0, _BASE_FS + (("/dev/sdb1", "xfs", "/srv", 200, 0.35),),
                    ("sda", "sdb")),
    "app": RoleSpec(4, 8, 32, 0.30, 0.55, 60.0, _BASE_FS + (("/dev/sdb1", "xfs", "/srv", 100, 0.28),),
                    ("sda", "sdb")),
    "db": RoleSpec(3, 16, 64, 0.33, 0.62, 0.0,
                   _BASE_FS + (("/dev/nvme0n1p1", "xfs", "/var/lib/postgresql", 1024, 0.51),),
                   ("sda", "nvme0n1")),
    "cache": RoleSpec(2, 4, 32, 0.15, 0.70, 0.0, _BASE_FS, ("sda",)),
    "lb": RoleSpec(1, 4, 8, 0.12, 0.30, 400.0, _BASE_FS, ("sda",)),
}
ROLE_CYCLE = [r for r, spec in ROLES.items() for _ in range(spec.weight)]
DATACENTERS = ("dc1", "dc2", "dc3")


# --------------------------------------------------------------------------- text template

def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items()) + "}"


@dataclass
class Shape:
    """One role's exposition template and the slot formulas of its moving values."""

    role: str
    template: bytes = b""
    slots: list[tuple[float, int, float, int, float]] = field(default_factory=list)
    series: int = 0
    filesystems: tuple[str, ...] = ()


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.slots: list[tuple[float, int, float, int, float]] = []
        self.series = 0

    def family(self, name: str, mtype: str, help_text: str) -> None:
        self.parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {mtype}\n")

    def const(self, name: str, labels: dict[str, str], value: float | int | str) -> None:
        self.parts.append(f"{name}{_labels(labels)} {value}\n".replace("%", "%%"))
        self.series += 1

    def slot(self, name: str, labels: dict[str, str], fmt: str, a: float, j: int, b: float = 0.0,
             k: int = ONE, c: float = 0.0) -> None:
        """A moving value ``a*X[j] + b*X[k] + c`` printed with ``fmt`` (%d or %.Nf)."""
        self.parts.append(f"{name}{_labels(labels)} ".replace("%", "%%") + fmt + "\n")
        self.slots.append((a, j, b, k, c))
        self.series += 1

    def raw(self, text: str) -> None:
        self.parts.append(text)


def build_shape(role: str, series_target: int = 500) -> Shape:
    """The metric set of a host of ``role``, padded with per-CPU interrupt counters up to
    about ``series_target`` series (node_exporter's own size on a real server varies alike)."""
    spec = ROLES[role]
    b = _Builder()
    # First placeholder: the host name (uname nodename); see Fleet.render.
    b.family("node_uname_info", "gauge", "Labeled system information as provided by the uname system call.")
    b.raw('node_uname_info{domainname="(none)",machine="x86_64",nodename="%s",release="6.1.0-18-amd64",'
          'sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"} 1\n')
    b.series += 1
    b.family("node_os_info", "gauge", "A metric with a constant '1' value labeled by os release details.")
    b.const("node_os_info", {"build_id": "", "id": "debian", "id_like": "", "image_id": "", "image_version": "",
                             "name": "Debian GNU/Linux", "pretty_name": "Debian GNU/Linux 12 (bookworm)",
                             "variant": "", "variant_id": "", "version": "12 (bookworm)",
                             "version_codename": "bookworm", "version_id": "12"}, 1)
    b.family("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.")
    b.slot("node_boot_time_seconds", {}, "%d", 1, BOOT)
    b.family("node_time_seconds", "gauge", "System time in seconds since epoch (1970).")
    b.slot("node_time_seconds", {}, "%.3f", 1, NOW)

    # CPU: every mode's rate is linear in the busy fraction u: idle 1-u, others share*u.
    b.family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.")
    for cpu in range(spec.ncpu):
        for mode, share in CPU_MODES:
            off = 1000.0 + 37.0 * cpu  # constant per-CPU offsets so CPUs differ, rates stay exact
            if share is None:
                b.slot("node_cpu_seconds_total", {"cpu": str(cpu), "mode": mode}, "%.2f", 1.0, UPTIME, -1.0, JCPU, off)
            else:
                b.slot("node_cpu_seconds_total", {"cpu": str(cpu), "mode": mode}, "%.2f", share, JCPU, 0, ONE, off * share)
    b.family("node_cpu_guest_seconds_total", "counter", "Seconds the CPUs spent in guests (VMs) for each mode.")
    for cpu in range(spec.ncpu):
        for mode in ("nice", "user"):
            b.const("node_cpu_guest_seconds_total", {"cpu": str(cpu), "mode": mode}, 0)
    for metric, help_text, per_busy in (
            ("node_softnet_processed_total", "Number of processed packets", 900.0),
            ("node_softnet_dropped_total", "Number of dropped packets", 0.0),
            ("node_softnet_times_squeezed_total", "Number of times processing packets ran out of quota", 0.3)):
        b.family(metric, "counter", help_text)
        for cpu in range(spec.ncpu):
            b.slot(metric, {"cpu": str(cpu)}, "%d", per_busy, JCPU)

    # Memory: every figure is c + e * used_fraction.
    total = spec.mem_gib * GIB
    mem = [  # name, constant, per-used-fraction
        ("MemTotal", total, 0), ("MemFree", 0.25 * total, -0.25 * total), ("MemAvailable", total, -total),
        ("Buffers", 0.03 * total, -0.03 * total), ("Cached", 0.55 * total, -0.5 * total),
        ("SwapCached", 0, 0.001 * total), ("Active", 0.1 * total, 0.6 * total),
        ("Inactive", 0.3 * total, -0.1 * total), ("Active_anon", 0, 0.5 * total),
        ("Inactive_anon", 0, 0.05 * total), ("Active_file", 0.1 * total, 0.1 * total),
        ("Inactive_file", 0.3 * total, -0.15 * total), ("Unevictable", 0, 0), ("Mlocked", 0, 0),
        ("SwapTotal", 2 * GIB, 0), ("SwapFree", 2 * GIB, -0.2 * GIB), ("Dirty", 1 << 20, 8 << 20),
        ("Writeback", 0, 0), ("AnonPages", 0, 0.52 * total), ("Mapped", 0.02 * total, 0.03 * total),
        ("Shmem", 0.005 * total, 0.01 * total), ("KReclaimable", 0.02 * total, 0),
        ("Slab", 0.03 * total, 0.01 * total), ("SReclaimable", 0.02 * total, 0),
        ("SUnreclaim", 0.01 * total, 0.01 * total), ("KernelStack", 12 << 20, 4 << 20),
        ("PageTables", 20 << 20, 0.005 * total), ("CommitLimit", 0.5 * total + 2 * GIB, 0),
        ("Committed_AS", 0.1 * total, 0.9 * total), ("VmallocTotal", 35184372087808, 0),
        ("VmallocUsed", 40 << 20, 0), ("HugePages_Total", 0, 0), ("HugePages_Free", 0, 0),
        ("Hugepagesize", 2 << 20, 0), ("DirectMap4k", 300 << 20, 0), ("DirectMap2M", total - (300 << 20), 0),
    ]
    for key, const, per in mem:
        name = f"node_memory_{key}_bytes" if not key.startswith("HugePages_") else f"node_memory_{key}"
        b.family(name, "gauge", f"Memory information field {key}{'_bytes' if name.endswith('_bytes') else ''}.")
        if per:
            b.slot(name, {}, "%d", per, GMEM, 0, ONE, const)
        else:
            b.const(name, {}, int(const))

    b.family("node_load1", "gauge", "1m load average.")
    b.slot("node_load1", {}, "%.2f", spec.ncpu, L1)
    b.family("node_load5", "gauge", "5m load average.")
    b.slot("node_load5", {}, "%.2f", spec.ncpu, L5)
    b.family("node_load15", "gauge", "15m load average.")
    b.slot("node_load15", {}, "%.2f", spec.ncpu, L15)

    # Filesystems: used fraction g (1 - avail/size) is a driver per mountpoint.
    fs_labels = []
    for i, (dev, fstype, mnt, gib, _used) in enumerate(spec.filesystems):
        fs_labels.append(({"device": dev, "fstype": fstype, "mountpoint": mnt}, gib * GIB, FS0 + i))
    for metric, help_text in (("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
                              ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
                              ("node_filesystem_size_bytes", "Filesystem size in bytes."),
                              ("node_filesystem_files", "Filesystem total file nodes."),
                              ("node_filesystem_files_free", "Filesystem total free file nodes."),
                              ("node_filesystem_readonly", "Filesystem read-only status."),
                              ("node_filesystem_device_error", "Whether an error occurred while getting statistics.")):
        b.family(metric, "gauge", help_text)
        for labels, size, drv in fs_labels:
            files = int(size / 16384)
            if metric == "node_filesystem_avail_bytes":
                b.slot(metric, labels, "%d", -size, drv, 0, ONE, size)
            elif metric == "node_filesystem_free_bytes":
                b.slot(metric, labels, "%d", -0.95 * size, drv, 0, ONE, 0.95 * size + 0.05 * size)
            elif metric == "node_filesystem_size_bytes":
                b.const(metric, labels, int(size))
            elif metric == "node_filesystem_files":
                b.const(metric, labels, files)
            elif metric == "node_filesystem_files_free":
                b.slot(metric, labels, "%d", -0.4 * files, drv, 0, ONE, files)
            else:
                b.const(metric, labels, 0)

    # Disks: I/O counters grow with CPU busy time (iowait-shaped load) plus a floor.
    disk_metrics = (
        ("reads_completed_total", "The total number of reads completed successfully.", 2.0, 40.0, "%d"),
        ("reads_merged_total", "The total number of reads merged.", 0.1, 2.0, "%d"),
        ("read_bytes_total", "The total number of bytes read successfully.", 16384.0, 600000.0, "%d"),
        ("read_time_seconds_total", "The total number of seconds spent by all reads.", 0.001, 0.02, "%.3f"),
        ("writes_completed_total", "The total number of writes completed successfully.", 5.0, 80.0, "%d"),
        ("writes_merged_total", "The number of writes merged.", 1.0, 20.0, "%d"),
        ("written_bytes_total", "The total number of bytes written successfully.", 65536.0, 1500000.0, "%d"),
        ("write_time_seconds_total", "This is the total number of seconds spent by all writes.", 0.002, 0.05, "%.3f"),
        ("io_time_seconds_total", "Total seconds spent doing I/Os.", 0.002, 0.1, "%.3f"),
        ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", 0.003, 0.12, "%.3f"),
        ("discards_completed_total", "The total number of discards completed successfully.", 0.0, 0.0, "%d"),
        ("discards_merged_total", "The total number of discards merged.", 0.0, 0.0, "%d"),
        ("discarded_sectors_total", "The total number of sectors discarded successfully.", 0.0, 0.0, "%d"),
        ("discard_time_seconds_total", "This is the total number of seconds spent by all discards.", 0.0, 0.0, "%d"),
        ("flush_requests_total", "The total number of flush requests completed successfully", 0.2, 3.0, "%d"),
        ("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.",
         0.0002, 0.003, "%.3f"),
    )
    b.family("node_disk_info", "gauge", "Info of /sys/block/<block_device>.")
    for i, dev in enumerate(spec.disks):
        b.const("node_disk_info", {"device": dev, "major": "8" if dev.startswith("sd") else "259",
                                   "minor": str(16 * i), "model": "QEMU HARDDISK" if dev.startswith("sd") else
                                   "SAMSUNG MZQL21T9HCJR-00A07", "path": f"pci-0000:00:0{5 + i}.0-scsi-0:0:{i}:0",
                                   "revision": "2.5+", "serial": f"drive-scsi{i}", "wwn": ""}, 1)
    b.family("node_disk_io_now", "gauge", "The number of I/Os currently in progress.")
    for dev in spec.disks:
        b.slot("node_disk_io_now", {"device": dev}, "%d", 4.0, UCPU)
    for suffix, help_text, floor, per_busy, fmt in disk_metrics:
        name = f"node_disk_{suffix}"
        b.family(name, "counter", help_text)
        for dev in spec.disks:
            b.slot(name, {"device": dev}, fmt, floor, UPTIME, per_busy * spec.ncpu, JCPU)

    # Network: traffic follows the web server's request integral (JHTTP) plus a floor.
    net_metrics = (
        ("receive_bytes_total", 2000.0, 900.0), ("receive_packets_total", 20.0, 3.0),
        ("receive_errs_total", 0.0, 0.0), ("receive_drop_total", 0.001, 0.0),
        ("receive_fifo_total", 0.0, 0.0), ("receive_frame_total", 0.0, 0.0),
        ("receive_compressed_total", 0.0, 0.0), ("receive_multicast_total", 0.01, 0.0),
        ("transmit_bytes_total", 3000.0, 14000.0), ("transmit_packets_total", 25.0, 12.0),
        ("transmit_errs_total", 0.0, 0.0), ("transmit_drop_total", 0.0, 0.0),
        ("transmit_fifo_total", 0.0, 0.0), ("transmit_colls_total", 0.0, 0.0),
        ("transmit_carrier_total", 0.0, 0.0), ("transmit_compressed_total", 0.0, 0.0),
    )
    for suffix, floor, per_req in net_metrics:
        name = f"node_network_{suffix}"
        b.family(name, "counter", f"Network device statistic {suffix[:-6]}.")
        for nic in spec.nics:
            scale = 0.05 if nic == "lo" else (1.0 if nic == "eth0" else 0.2)
            b.slot(name, {"device": nic}, "%d", floor * scale, UPTIME, per_req * scale, JHTTP)
    b.family("node_network_up", "gauge", "Value is 1 if operstate is 'up', 0 otherwise.")
    for nic in spec.nics:
        b.const("node_network_up", {"device": nic}, 0 if nic == "lo" else 1)
    b.family("node_network_mtu_bytes", "gauge", "Network device property: mtu_bytes")
    for nic in spec.nics:
        b.const("node_network_mtu_bytes", {"device": nic}, 65536 if nic == "lo" else 1500)
    b.family("node_network_speed_bytes", "gauge", "Network device property: speed_bytes")
    for nic in spec.nics:
        if nic != "lo":
            b.const("node_network_speed_bytes", {"device": nic}, 1250000000)

    b.family("node_context_switches_total", "counter", "Total number of context switches.")
    b.slot("node_context_switches_total", {}, "%d", 800.0 * spec.ncpu, UPTIME, 9000.0 * spec.ncpu, JCPU)
    b.family("node_intr_total", "counter", "Total number of interrupts serviced.")
    b.slot("node_intr_total", {}, "%d", 500.0 * spec.ncpu, UPTIME, 6000.0 * spec.ncpu, JCPU)
    b.family("node_forks_total", "counter", "Total number of forks.")
    b.slot("node_forks_total", {}, "%d", 2.0, UPTIME, 20.0, JCPU)
    b.family("node_procs_running", "gauge", "Number of processes in runnable state.")
    b.slot("node_procs_running", {}, "%d", spec.ncpu, UCPU, 0, ONE, 1)
    b.family("node_procs_blocked", "gauge", "Number of processes blocked waiting for I/O to complete.")
    b.slot("node_procs_blocked", {}, "%d", 0.5 * spec.ncpu, UCPU)
    for key, per_s in (("pgfault", 3000.0), ("pgmajfault", 0.2), ("pgpgin", 500.0), ("pgpgout", 1200.0),
                       ("pswpin", 0.0), ("pswpout", 0.0), ("oom_kill", 0.0)):
        b.family(f"node_vmstat_{key}", "untyped", f"/proc/vmstat information field {key}.")
        b.slot(f"node_vmstat_{key}", {}, "%d", per_s, UPTIME)
    for key, floor, per_req in (("Tcp_ActiveOpens", 2.0, 0.0), ("Tcp_PassiveOpens", 1.0, 0.3),
                                ("Tcp_InSegs", 40.0, 6.0), ("Tcp_OutSegs", 45.0, 11.0),
                                ("Tcp_RetransSegs", 0.01, 0.002), ("Udp_InDatagrams", 3.0, 0.0),
                                ("Udp_OutDatagrams", 3.0, 0.0), ("Udp_InErrors", 0.0, 0.0)):
        b.family(f"node_netstat_{key}", "untyped", f"Statistic {key}.")
        b.slot(f"node_netstat_{key}", {}, "%d", floor, UPTIME, per_req, JHTTP)
    b.family("node_netstat_Tcp_CurrEstab", "untyped", "Statistic TcpCurrEstab.")
    b.slot("node_netstat_Tcp_CurrEstab", {}, "%d", 0.5, RHTTP, 0, ONE, 12)
    b.family("node_sockstat_TCP_inuse", "gauge", "Number of TCP sockets in state inuse.")
    b.slot("node_sockstat_TCP_inuse", {}, "%d", 0.6, RHTTP, 0, ONE, 15)
    b.family("node_sockstat_sockets_used", "gauge", "Number of IPv4 sockets in use.")
    b.slot("node_sockstat_sockets_used", {}, "%d", 0.7, RHTTP, 0, ONE, 160)
    b.family("node_filefd_allocated", "gauge", "File descriptor statistics: allocated.")
    b.slot("node_filefd_allocated", {}, "%d", 1.0, RHTTP, 0, ONE, 2400)
    b.family("node_filefd_maximum", "gauge", "File descriptor statistics: maximum.")
    b.const("node_filefd_maximum", {}, 9223372036854775807)
    b.family("node_entropy_available_bits", "gauge", "Bits of available entropy.")
    b.const("node_entropy_available_bits", {}, 256)

    # fleetmon log families (names from docs/architecture.md) for roles with a web server.
    logs = ["syslog"] + (["nginx_access", "nginx_error"] if spec.http_rate else [])
    if spec.http_rate:
        b.family("fleetmon_http_requests_total", "counter", "HTTP requests counted from access logs.")
        for method, mshare in HTTP_METHODS:
            for status, sshare in HTTP_OK_STATUS:
                # ok requests = JHTTP - J5XX
                w = mshare * sshare
                b.slot("fleetmon_http_requests_total", {"log": "nginx_access", "method": method, "status": status},
                       "%d", w, JHTTP, -w, J5XX)
            for status, sshare in HTTP_5XX_STATUS:
                b.slot("fleetmon_http_requests_total", {"log": "nginx_access", "method": method, "status": status},
                       "%d", mshare * sshare, J5XX)
        b.family("fleetmon_http_response_bytes_total", "counter", "Bytes sent in responses, from access logs.")
        b.slot("fleetmon_http_response_bytes_total", {"log": "nginx_access"}, "%d", 14000.0, JHTTP)
        b.family("fleetmon_http_request_duration_seconds", "histogram",
                 "Request time from access logs that carry it.")
        for le, frac in LATENCY_BUCKETS:
            b.slot("fleetmon_http_request_duration_seconds_bucket", {"log": "nginx_access", "le": le}, "%d",
                   frac, JHTTP)
        b.slot("fleetmon_http_request_duration_seconds_sum", {"log": "nginx_access"}, "%.3f", 0.043, JHTTP)
        b.slot("fleetmon_http_request_duration_seconds_count", {"log": "nginx_access"}, "%d", 1.0, JHTTP)
        b.family("fleetmon_webserver_errors_total", "counter", "Error log entries by level.")
        for level, floor, per_5xx in (("crit", 0.0, 0.01), ("error", 0.002, 1.0), ("warn", 0.02, 0.1),
                                      ("notice", 0.01, 0.0)):
            b.slot("fleetmon_webserver_errors_total", {"log": "nginx_error", "level": level}, "%d",
                   floor, UPTIME, per_5xx, J5XX)
    b.family("fleetmon_syslog_messages_total", "counter", "Syslog messages by severity.")
    for sev, per_s in SYSLOG_SEVERITIES:
        b.slot("fleetmon_syslog_messages_total", {"log": "syslog", "severity": sev}, "%d", per_s * 2.0, UPTIME)
    b.family("fleetmon_log_lines_total", "counter", "Lines read from each log.")
    for log in logs:
        if log == "nginx_access":
            b.slot("fleetmon_log_lines_total", {"log": log}, "%d", 1.0, JHTTP)
        elif log == "nginx_error":
            b.slot("fleetmon_log_lines_total", {"log": log}, "%d", 0.032, UPTIME, 1.11, J5XX)
        else:
            b.slot("fleetmon_log_lines_total", {"log": log}, "%d", 1.78, UPTIME)
    b.family("fleetmon_log_parse_errors_total", "counter", "Lines that did not parse.")
    for log in logs:
        b.slot("fleetmon_log_parse_errors_total", {"log": log}, "%d", 0.0005, UPTIME)
    b.family("fleetmon_log_rotations_total", "counter", "Log rotations followed.")
    for log in logs:
        b.slot("fleetmon_log_rotations_total", {"log": log}, "%d", 1 / 86400.0, UPTIME)
    b.family("fleetmon_log_lag_bytes", "gauge", "Bytes between the read offset and the end of the file.")
    for log in logs:
        path = {"syslog": "/var/log/syslog", "nginx_access": "/var/log/nginx/access.log",
                "nginx_error": "/var/log/nginx/error.log"}[log]
        b.const("fleetmon_log_lag_bytes", {"log": log, "path": path}, 0)

    collectors = ("cpu", "diskstats", "filesystem", "loadavg", "meminfo", "netdev", "netstat", "os", "sockstat",
                  "softnet", "stat", "time", "uname", "vmstat", "filefd", "textfile")
    b.family("node_scrape_collector_success", "gauge", "node_exporter: Whether a collector succeeded.")
    for col in collectors:
        b.const("node_scrape_collector_success", {"collector": col}, 1)
    b.family("node_scrape_collector_duration_seconds", "gauge", "node_exporter: Duration of a collector scrape.")
    for i, col in enumerate(collectors):
        b.const("node_scrape_collector_duration_seconds", {"collector": col}, f"{0.0002 + 0.00013 * i:.6f}")
    b.family("node_textfile_scrape_error", "gauge", "1 if there was an error opening or reading a file, 0 otherwise")
    b.const("node_textfile_scrape_error", {}, 0)

    # Pad to the target size with per-CPU interrupt counters (node_exporter's interrupts
    # collector: one series per CPU and IRQ line, the usual reason real hosts pass 1,000).
    pad = max(0, series_target - b.series - 1)
    if pad:
        b.family("node_interrupts_total", "counter", "Interrupt details.")
        irq = 0
        while pad > 0:
            for cpu in range(spec.ncpu):
                if pad <= 0:
                    break
                b.slot("node_interrupts_total", {"cpu": str(cpu), "devices": f"virtio{irq}-input.0",
                                                 "type": str(24 + irq)}, "%d", 3.0, UPTIME, 40.0, JCPU)
                pad -= 1
            irq += 1
    text = "".join(b.parts)
    return Shape(role=role, template=text.encode(), slots=b.slots, series=b.series,
                 filesystems=tuple(m for _, _, m, _, _ in spec.filesystems))


# --------------------------------------------------------------------------- drivers

@dataclass(frozen=True)
class Sine:
    """``m + A sin(w s + phi)`` with its exact integral."""

    m: float
    amp: float
    w: float
    phi: float

    def value(self, s: float) -> float:
        return self.m + self.amp * math.sin(self.w * s + self.phi)

    def prim(self, s: float) -> float:
        return self.m * s - self.amp / self.w * math.cos(self.w * s + self.phi)


Window = tuple[float, float, float]  # start, end, value (sim seconds)


def _add_window(windows: list[Window], new: Window) -> list[Window]:
    """Insert ``new``; the newest event wins where windows overlap (keeps them disjoint, so an
    integral never counts 190% CPU)."""
    ns, ne, _ = new
    out: list[Window] = []
    for s, e, v in windows:
        if e <= ns or s >= ne:
            out.append((s, e, v))
            continue
        if s < ns:
            out.append((s, ns, v))
        if e > ne:
            out.append((ne, e, v))
    out.append(new)
    out.sort()
    return out


def integral(sine: Sine, windows: list[Window], x: float, y: float) -> float:
    total = sine.prim(y) - sine.prim(x)
    for s, e, v in windows:
        lo, hi = max(x, s), min(y, e)
        if hi > lo:
            total += v * (hi - lo) - (sine.prim(hi) - sine.prim(lo))
    return total


def value_at(sine: Sine, windows: list[Window], s: float) -> float:
    for ws, we, v in windows:
        if ws <= s < we:
            return v
    return sine.value(s)


@dataclass
class Host:
    name: str
    index: int
    role: str
    datacenter: str
    env: str
    shape: Shape
    uptime0: float
    cpu: Sine
    mem: Sine
    http: Sine            # requests/s
    http_5xx: float       # natural 5xx fraction
    fs_used0: tuple[float, ...]
    fs_growth: tuple[float, ...]   # used fraction per second
    cpu_windows: list[Window] = field(default_factory=list)
    mem_windows: list[Window] = field(default_factory=list)
    err_windows: list[Window] = field(default_factory=list)
    fs_fills: list[list[tuple[float, float, float]]] = field(default_factory=list)  # start, ramp_end, target
    down: list[tuple[float, float]] = field(default_factory=list)
    name_bytes: bytes = b""

    @property
    def labels(self) -> dict[str, str]:
        return {"datacenter": self.datacenter, "role": self.role, "env": self.env}

    def is_down(self, t: float) -> bool:
        return any(s <= t < e for s, e in self.down)

    def fs_used(self, i: int, t: float) -> float:
        g = self.fs_used0[i] + self.fs_growth[i] * max(t, 0.0)
        for start, ramp_end, target in self.fs_fills[i]:
            if t < start:
                continue
            base = self.fs_used0[i] + self.fs_growth[i] * start
            if t >= ramp_end:
                g = target
            else:
                g = base + (target - base) * (t - start) / (ramp_end - start)
        return min(max(g, 0.0), 1.0)

    def drivers(self, t: float, now: float) -> list[float]:
        up = self.uptime0 + t
        cpu_since_boot = self.cpu.m * self.uptime0
        j_cpu = cpu_since_boot + integral(self.cpu, self.cpu_windows, 0.0, t)

        def avg_cpu(w: float) -> float:
            return (j_cpu - cpu_since_boot - integral(self.cpu, self.cpu_windows, 0.0, t - w)) / w

        j_http = self.http.m * self.uptime0 + (self.http.prim(t) - self.http.prim(0.0))
        j_5xx = self.http_5xx * j_http
        for s, e, v in self.err_windows:
            lo, hi = max(0.0, s), min(t, e)
            if hi > lo:
                j_5xx += (v - self.http_5xx) * (self.http.prim(hi) - self.http.prim(lo))
        x = [1.0, up, j_cpu, j_http, j_5xx, value_at(self.mem, self.mem_windows, t),
             avg_cpu(60.0), avg_cpu(300.0), avg_cpu(900.0), now, now - up,
             value_at(self.cpu, self.cpu_windows, t), self.http.value(t)]
        x.extend(self.fs_used(i, t) for i in range(len(self.fs_used0)))
        return x


class Fleet:
    """N simulated hosts, deterministic for a given (N, seed)."""

    def __init__(self, n: int, seed: int = 0, series_per_host: int = 500, start: float | None = None,
                 clock: Callable[[], float] = time.time):
        if n < 1:
            raise ValueError("a fleet needs at least one host")
        self.clock = clock
        self.start = clock() if start is None else start
        self.seed = seed
        self.shapes = {role: build_shape(role, series_per_host) for role in ROLES}
        self.hosts: list[Host] = []
        self.by_name: dict[str, Host] = {}
        self.events: list[tuple[float, Event]] = []  # (sim time of t=0 for the event, event)
        rng = random.Random(seed)
        per_role: dict[str, int] = {}
        for i in range(n):
            role = ROLE_CYCLE[i % len(ROLE_CYCLE)]
            per_role[role] = per_role.get(role, 0) + 1
            num = per_role[role]
            spec = ROLES[role]
            name = f"{role}-{num:04d}"
            cpu_mean = spec.cpu_mean * rng.uniform(0.7, 1.3)
            host = Host(
                name=name, index=i, role=role, datacenter=DATACENTERS[num % len(DATACENTERS)],
                env="staging" if num % 10 == 0 else "prod", shape=self.shapes[role],
                uptime0=rng.uniform(3600.0, 90 * 86400.0),
                # Amplitude at most half the mean: the busy fraction never goes negative,
                # so no counter ever decreases.
                cpu=Sine(cpu_mean, min(rng.uniform(0.03, 0.1), 0.5 * cpu_mean),
                         2 * math.pi / rng.uniform(600.0, 3600.0), rng.uniform(0, 2 * math.pi)),
                mem=Sine(spec.mem_mean * rng.uniform(0.85, 1.15), rng.uniform(0.005, 0.03),
                         2 * math.pi / rng.uniform(1800.0, 7200.0), rng.uniform(0, 2 * math.pi)),
                http=Sine(spec.http_rate * rng.uniform(0.5, 1.5), spec.http_rate * rng.uniform(0.05, 0.25),
                          2 * math.pi / rng.uniform(300.0, 1800.0), rng.uniform(0, 2 * math.pi))
                if spec.http_rate else Sine(0.0, 0.0, 1.0, 0.0),
                http_5xx=rng.uniform(0.0005, 0.003),
                fs_used0=tuple(min(0.9, u * rng.uniform(0.7, 1.3)) for *_, u in spec.filesystems),
                fs_growth=tuple(rng.uniform(0.0, 2e-8) for _ in spec.filesystems),
                fs_fills=[[] for _ in spec.filesystems],
                name_bytes=name.encode(),
            )
            self.hosts.append(host)
            self.by_name[name] = host

    # ------------------------------------------------------------------ time and events

    def sim_time(self, now: float | None = None) -> float:
        return (self.clock() if now is None else now) - self.start

    def add_event(self, event: Event, offset: float = 0.0) -> list[str]:
        """Apply ``event`` with its ``at`` counted from sim time ``offset``; returns the hosts hit."""
        hit = [h for h in self.hosts if event.matches(h.name)]
        start = offset + event.at
        end = start + event.duration if event.duration != FOREVER else FOREVER
        v = event.value / 100.0
        for h in hit:
            if event.type == "cpu":
                h.cpu_windows = _add_window(h.cpu_windows, (start, end, v))
            elif event.type == "memory":
                h.mem_windows = _add_window(h.mem_windows, (start, end, v))
            elif event.type == "http_5xx":
                h.err_windows = _add_window(h.err_windows, (start, end, v))
            elif event.type == "disk_fill":
                if event.mountpoint not in h.shape.filesystems:
                    continue
                i = h.shape.filesystems.index(event.mountpoint)
                ramp = event.duration if event.duration != FOREVER else 300.0
                h.fs_fills[i].append((start, start + ramp, v))
            elif event.type == "host_down":
                h.down.append((start, end))
        self.events.append((offset, event))
        return [h.name for h in hit]

    # ------------------------------------------------------------------ rendering

    def render(self, host: Host, now: float | None = None) -> bytes:
        """The host's exposition body at ``now`` (wall clock)."""
        now = self.clock() if now is None else now
        x = host.drivers(now - self.start, now)
        vals = [a * x[j] + b * x[k] + c for a, j, b, k, c in host.shape.slots]
        return host.shape.template % (host.name_bytes, *vals)
