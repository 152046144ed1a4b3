"""Fixture procfs/sysfs/udev/rootfs/textfile trees covering every family of the
implemented collectors, for running our exporter and prometheus-node-exporter 1.5 on
the same input (as node_exporter's own collector/fixtures do).

Filesystem values must not move between the two scrapes, so the fixture mount points
are symlinks to filesystems nobody writes to here (the container's /dev and
/sys/fs/cgroup, both tmpfs/devtmpfs with nothing in use) or to a missing path (a
device error)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STABLE_FS = [p for p in ("/sys/fs/cgroup", "/dev") if os.path.isdir(p)]


@dataclass
class Tree:
    root: Path
    proc: Path
    sys: Path
    udev: Path
    rootfs: Path
    textfile: Path

    def node_exporter_args(self) -> list[str]:
        return [f"--path.procfs={self.proc}", f"--path.sysfs={self.sys}", f"--path.rootfs={self.rootfs}",
                f"--path.udev.data={self.udev}", f"--collector.textfile.directory={self.textfile}"]

    def our_args(self) -> list[str]:
        return ["--path.procfs", str(self.proc), "--path.sysfs", str(self.sys), "--path.rootfs", str(self.rootfs),
                "--path.udev.data", str(self.udev), "--collector.textfile.directory", str(self.textfile)]


def _w(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


STAT = """cpu  3000 100 2000 50000 400 10 50 7 30 4
cpu0 1000 50 1000 25000 200 5 30 3 10 2
cpu1 1100 30 500 12500 100 3 10 2 10 1
cpu2 500 10 300 6000 50 1 5 1 5 1
cpu3 400 10 200 6500 50 1 5 1 5 0
intr 1234567 45 0 0 7 0 0 0 0 1 0 0
ctxt 98765432
btime 1764300000
processes 424242
procs_running 5
procs_blocked 2
softirq 569327 11 65189 4 163020 148165 0 3 76283 13 116650
"""

CPUINFO_CPU = """processor\t: {n}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor @ 2.30GHz
stepping\t: 2
microcode\t: 0x2b000571
cpu MHz\t\t: 2299.998
cache size\t: 266240 KB
physical id\t: {pkg}
siblings\t: 2
core id\t\t: {core}
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae aes avx avx2 avx512f hypervisor
bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs retbleed
bogomips\t: 4599.99

"""

MEMINFO = """MemTotal:       16384000 kB
MemFree:         1024000 kB
MemAvailable:    8192000 kB
Buffers:          204800 kB
Cached:          4096000 kB
SwapCached:            0 kB
Active:          6000000 kB
Inactive:        3000000 kB
Active(anon):    4000000 kB
Inactive(anon):   100000 kB
Active(file):    2000000 kB
Inactive(file):  2900000 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:               132 kB
Writeback:             0 kB
AnonPages:       4100000 kB
Mapped:           500000 kB
Shmem:             20000 kB
KReclaimable:     300000 kB
Slab:             500000 kB
SReclaimable:     300000 kB
SUnreclaim:       200000 kB
KernelStack:       12000 kB
PageTables:        40000 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:    10289148 kB
Committed_AS:    9000000 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       60000 kB
VmallocChunk:          0 kB
Percpu:             4000 kB
HardwareCorrupted:     0 kB
AnonHugePages:    200000 kB
ShmemHugePages:        0 kB
ShmemPmdMapped:        0 kB
FileHugePages:         0 kB
FilePmdMapped:         0 kB
HugePages_Total:       4
HugePages_Free:        3
HugePages_Rsvd:        1
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:            8192 kB
DirectMap4k:      300000 kB
DirectMap2M:    16000000 kB
DirectMap1G:     2097152 kB
"""

DISKSTATS = """   7       0 loop0 9 0 18 1 0 0 0 0 0 4 1 0 0 0 0 0 0
   1       0 ram0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0
 251       0 zram0 1500 0 12000 10 2500 0 20000 40 0 60 50 0 0 0 0
   8       0 sda 250000 1200 8000000 120000 180000 9000 6400000 340000 2 210000 460000 100 3 8000 70 5000 900
   8       1 sda1 240000 1100 7800000 110000 170000 8000 6300000 330000 0 200000 440000
   8      16 sdb 1000 20 64000 900 500 10 8000 700 0 1500 1600
 253       0 dm-0 200000 0 7000000 100000 160000 0 6000000 300000 1 190000 400000 0 0 0 0
 259       0 nvme0n1 99000 10 3000000 8000 77000 500 2000000 9000 0 12000 17000 30 0 60000 5 400 12
 259       1 nvme0n1p1 98000 10 2900000 7900 76000 500 1900000 8900 0 11000 16800 30 0 60000 5
  11       0 sr0 3 0 24 1 0 0 0 0 0 1 1 0 0 0 0
"""

NETDEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5554000   60000    0    0    0     0          0         0  5554000   60000    0    0    0     0       0          0
  eth0: 987654321 1234567 3 17 1 2 0 4321 123456789 654321 5 6 0 7 1 0
docker0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
veth1a2b: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
"""

UDEV = {
    "b8:0": {"ID_ATA": "1", "ID_ATA_ROTATION_RATE_RPM": "7200", "ID_ATA_WRITE_CACHE": "1",
             "ID_ATA_WRITE_CACHE_ENABLED": "1", "ID_MODEL": "WDC_WD40EFRX-68N32N0", "ID_REVISION": "82.00A82",
             "ID_SERIAL_SHORT": "WD-WCC7K1234567", "ID_WWN": "0x50014ee2b1234567",
             "ID_PATH": "pci-0000:00:1f.2-ata-1", "ID_FS_TYPE": "", "SCSI_IDENT_SERIAL": "WCC7K1234567"},
    "b8:16": {"ID_ATA": "1", "ID_ATA_ROTATION_RATE_RPM": "0", "ID_ATA_WRITE_CACHE": "1",
              "ID_ATA_WRITE_CACHE_ENABLED": "0", "ID_MODEL": "Samsung_SSD_860", "ID_SERIAL_SHORT": "S3Z9NB0K",
              "ID_PATH": "pci-0000:00:1f.2-ata-2", "ID_FS_TYPE": "xfs", "ID_FS_USAGE": "filesystem",
              "ID_FS_UUID": "6f7a1e2b-0c3d-4e5f-8a9b-0c1d2e3f4a5b", "ID_FS_VERSION": ""},
    "b253:0": {"DM_NAME": "vg0-root", "DM_UUID": "LVM-abcdefABCDEF0123456789abcdefABCDEF0123456789",
               "DM_VG_NAME": "vg0", "DM_LV_NAME": "root", "ID_FS_TYPE": "ext4", "ID_FS_USAGE": "filesystem",
               "ID_FS_UUID": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", "ID_FS_VERSION": "1.0"},
    "b259:0": {"ID_MODEL": "INTEL SSDPE2KX010T8", "ID_SERIAL_SHORT": "PHLJ9", "ID_WWN": "eui.0100000000",
               "ID_PATH": "pci-0000:3b:00.0-nvme-1", "ID_REVISION": "VDV10131"},
}

TEXTFILES = {
    "backup.prom": '# HELP backup_last_success_seconds Last successful backup, unixtime.\n'
                   '# TYPE backup_last_success_seconds gauge\n'
                   'backup_last_success_seconds{job="db"} 1764300000\n'
                   'backup_last_success_seconds{job="files"} 1764290000.5\n',
    "nohelp.prom": '# TYPE raid_degraded gauge\nraid_degraded{md="md0"} 0\nraid_degraded{md="md1"} 1\n'
                   'apt_upgrades_pending 12\n',
    "created.prom": '# HELP job_created Unixtime a job was created.\n# TYPE job_created gauge\n'
                    'job_created{job="x"} 1764000000\n'
                    '# TYPE widgets_total counter\nwidgets_total 42\n',
    "hist.prom": '# HELP batch_duration_seconds Batch runtime.\n# TYPE batch_duration_seconds histogram\n'
                 'batch_duration_seconds_bucket{le="1"} 2\nbatch_duration_seconds_bucket{le="10"} 5\n'
                 'batch_duration_seconds_bucket{le="+Inf"} 6\nbatch_duration_seconds_sum 31.5\n'
                 'batch_duration_seconds_count 6\n'
                 '# HELP rpc_latency_seconds RPC latency.\n# TYPE rpc_latency_seconds summary\n'
                 'rpc_latency_seconds{quantile="0.5"} 0.2\nrpc_latency_seconds{quantile="0.99"} 1.5\n'
                 'rpc_latency_seconds_sum 120\nrpc_latency_seconds_count 400\n',
    "labels.prom": '# HELP site_info Site labels.\n# TYPE site_info gauge\n'
                   'site_info{dc="ams1",rack="r12"} 1\nsite_info{dc="ams1"} 1\n',
    "notprom.txt": "this is not read\n",
}


def build(root: Path, mount_prefix: str = "") -> Tree:
    """Write the trees under ``root``. ``mount_prefix`` (e.g. "/host") writes the mount
    table as a container sees the host mounted there (node_exporter's documented
    ``--path.rootfs=/host`` setup): mount points carry the prefix."""
    proc, sysfs, udev, rootfs, textfile = (root / n for n in ("proc", "sys", "udev", "rootfs", "textfile"))
    _w(proc / "stat", STAT)
    _w(proc / "cpuinfo", "".join(CPUINFO_CPU.format(n=n, pkg=n // 2, core=n % 2) for n in range(4)))
    _w(proc / "meminfo", MEMINFO)
    _w(proc / "loadavg", "1.25 0.75 0.50 3/812 123456\n")
    _w(proc / "diskstats", DISKSTATS)
    _w(proc / "net" / "dev", NETDEV)
    for f, v in {"ostype": "Linux", "osrelease": "6.1.0-fixture", "version": "#1 SMP fixture",
                 "hostname": "fixture-host", "domainname": "(none)"}.items():
        _w(proc / "sys" / "kernel" / f, v + "\n")
    cpu = sysfs / "devices" / "system" / "cpu"
    for n in range(4):
        _w(cpu / f"cpu{n}" / "topology" / "physical_package_id", f"{n // 2}\n")
        _w(cpu / f"cpu{n}" / "topology" / "core_id", f"{n % 2}\n")
        _w(cpu / f"cpu{n}" / "thermal_throttle" / "core_throttle_count", f"{n * 10 + 5}\n")
        _w(cpu / f"cpu{n}" / "thermal_throttle" / "package_throttle_count", f"{(n // 2) * 100 + 30}\n")
    _w(cpu / "isolated", "1,3\n")
    cs = sysfs / "devices" / "system" / "clocksource" / "clocksource0"
    _w(cs / "available_clocksource", "tsc hpet acpi_pm \n")
    _w(cs / "current_clocksource", "tsc\n")
    for dev, n in (("eth0", 11), ("lo", 0), ("docker0", 0), ("veth1a2b", 2)):
        _w(sysfs / "class" / "net" / dev / "statistics" / "rx_nohandler", f"{n}\n")
    for name, props in UDEV.items():
        _w(udev / name, "S:disk/by-id/x\nL:0\n" + "".join(f"E:{k}={v}\n" for k, v in props.items()) + "G:systemd\n")
    # rootfs: each fixture mount point is a symlink to a filesystem that does not change.
    rootfs.mkdir(parents=True)
    mounts = [("/dev/sda1", "/", "ext4", "rw,relatime"), ("proc", "/proc", "proc", "rw,nosuid"),
              ("sysfs", "/sys", "sysfs", "rw"), ("tmpfs", "/run", "tmpfs", "rw,nosuid"),
              ("/dev/mapper/vg0-root", "/srv/data", "ext4", "rw,relatime"),
              ("/dev/sdb", "/srv/ro\\040archive", "xfs", "ro,relatime"),
              ("server:/export", "/srv/nfs-gone", "nfs4", "rw,relatime"),
              ("/dev/sdc1", "/srv/ext-gone", "ext4", "rw,relatime"),
              ("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay", "rw"),
              ("tmpfs", "/tmp", "tmpfs", "rw,nosuid,nodev")]
    (rootfs / "srv").mkdir()
    os.symlink(STABLE_FS[0], rootfs / "srv" / "data")
    os.symlink(STABLE_FS[-1], rootfs / "srv" / "ro archive")
    os.symlink(STABLE_FS[0], rootfs / "tmp")
    table = "".join(f"{d} {mount_prefix + mp if mp != '/' or not mount_prefix else mount_prefix} {t} {o} 0 0\n"
                    for d, mp, t, o in mounts)
    _w(proc / "1" / "mounts", table)
    _w(proc / "mounts", table)
    textfile.mkdir()
    for name, text in TEXTFILES.items():
        _w(textfile / name, text)
        os.utime(textfile / name, (1764000000.75, 1764000000.75))
    return Tree(root, proc, sysfs, udev, rootfs, textfile)
