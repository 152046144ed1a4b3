"""diskstats collector: block device I/O counters from /proc/diskstats, in bytes and
seconds as node_exporter reports them, plus node_disk_info from udev data."""

from __future__ import annotations

import os

from exporter.collectors.base import Collector, DeviceFilter, read_text
from exporter.metrics import Family

SECTOR = 512
DEFAULT_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

# (field index after the device name, name, type, help, scale)
_FIELDS = [
    (0, "node_disk_reads_completed_total", "counter", "The total number of reads completed successfully.", 1),
    (1, "node_disk_reads_merged_total", "counter", "The total number of reads merged.", 1),
    (2, "node_disk_read_bytes_total", "counter", "The total number of bytes read successfully.", SECTOR),
    (3, "node_disk_read_time_seconds_total", "counter", "The total number of seconds spent by all reads.", 0.001),
    (4, "node_disk_writes_completed_total", "counter", "The total number of writes completed successfully.", 1),
    (5, "node_disk_writes_merged_total", "counter", "The number of writes merged.", 1),
    (6, "node_disk_written_bytes_total", "counter", "The total number of bytes written successfully.", SECTOR),
    (7, "node_disk_write_time_seconds_total", "counter",
     "This is the total number of seconds spent by all writes.", 0.001),
    (8, "node_disk_io_now", "gauge", "The number of I/Os currently in progress.", 1),
    (9, "node_disk_io_time_seconds_total", "counter", "Total seconds spent doing I/Os.", 0.001),
    (10, "node_disk_io_time_weighted_seconds_total", "counter", "The weighted # of seconds spent doing I/Os.", 0.001),
    (11, "node_disk_discards_completed_total", "counter", "The total number of discards completed successfully.", 1),
    (12, "node_disk_discards_merged_total", "counter", "The total number of discards merged.", 1),
    (13, "node_disk_discarded_sectors_total", "counter", "The total number of sectors discarded successfully.", 1),
    (14, "node_disk_discard_time_seconds_total", "counter",
     "This is the total number of seconds spent by all discards.", 0.001),
    (15, "node_disk_flush_requests_total", "counter", "The total number of flush requests completed successfully", 1),
    (16, "node_disk_flush_requests_time_seconds_total", "counter",
     "This is the total number of seconds spent by all flush requests.", 0.001),
]

_UDEV = {"ID_PATH": "path", "ID_MODEL": "model", "ID_REVISION": "revision",
         "ID_SERIAL_SHORT": "serial", "ID_WWN": "wwn"}


class DiskstatsCollector(Collector):
    name = "diskstats"
    may_block = False
    description = "Disk I/O: reads, writes, bytes, time, in-flight I/Os (/proc/diskstats)."
    families = tuple(f[1] for f in _FIELDS) + ("node_disk_info",)
    options = {
        "device_exclude": (DEFAULT_EXCLUDE, str, "Regexp of devices to exclude."),
        "device_include": ("", str, "Regexp of devices to include (overrides device_exclude)."),
    }

    def __init__(self, roots, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._devices = DeviceFilter(self.opts["device_include"], self.opts["device_exclude"])

    def _udev(self, major: str, minor: str) -> dict[str, str]:
        info = dict.fromkeys(_UDEV.values(), "")
        try:
            text = read_text(os.path.join(self.roots.udev, f"b{major}:{minor}"))
        except OSError:
            return info
        for line in text.splitlines():
            if line.startswith("E:"):
                k, _, v = line[2:].partition("=")
                if k in _UDEV:
                    info[_UDEV[k]] = v
        return info

    def collect(self) -> list[Family]:
        fams = [Family(name, typ, help_, ("device",)) for _, name, typ, help_, _ in _FIELDS]
        info = Family("node_disk_info", "gauge", "Info of /sys/block/<block_device>.",
                      ("device", "major", "minor", "model", "path", "revision", "serial", "wwn"))
        for line in read_text(self.roots.procfile("diskstats")).splitlines():
            parts = line.split()
            if len(parts) < 14:
                continue
            major, minor, dev = parts[0], parts[1], parts[2]
            if self._devices.ignored(dev):
                continue
            stats = parts[3:]
            u = self._udev(major, minor)
            info.add((dev, major, minor, u["model"], u["path"], u["revision"], u["serial"], u["wwn"]), 1)
            for fam, (idx, _, _, _, scale) in zip(fams, _FIELDS, strict=True):
                if idx < len(stats):
                    v = int(stats[idx])
                    fam.add((dev,), v * scale if scale != 1 else v)
        return [info] + [f for f in fams if f.samples]
