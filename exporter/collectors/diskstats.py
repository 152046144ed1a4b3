"""diskstats collector: block device I/O counters from /proc/diskstats, in bytes and
seconds as node_exporter reports them, plus what udev knows of each device
(--path.udev.data): node_disk_info, filesystem and device-mapper info, and ATA
rotation rate and write cache."""

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

# ATA udev property -> (family, HELP)
_ATA = {
    "ID_ATA_ROTATION_RATE_RPM": ("node_disk_ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs)."),
    "ID_ATA_WRITE_CACHE": ("node_disk_ata_write_cache", "ATA disk has a write cache."),
    "ID_ATA_WRITE_CACHE_ENABLED": ("node_disk_ata_write_cache_enabled", "ATA disk has its write cache enabled."),
}


def _go_float(text: str) -> float | None:
    """strconv.ParseFloat's idea of a number, near enough: None where it fails."""
    try:
        return float(text)
    except ValueError:
        return None


class DiskstatsCollector(Collector):
    name = "diskstats"
    may_block = False
    description = "Disk I/O: reads, writes, bytes, time, in-flight I/Os (/proc/diskstats)."
    families = tuple(f[1] for f in _FIELDS) + ("node_disk_info", "node_disk_filesystem_info",
                                               "node_disk_device_mapper_info") + tuple(f for f, _ in _ATA.values())
    options = {
        "device_exclude": (DEFAULT_EXCLUDE, str, "Regexp of devices to exclude."),
        "device_include": ("", str, "Regexp of devices to include (overrides device_exclude)."),
    }

    def __init__(self, roots, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._devices = DeviceFilter(self.opts["device_include"], self.opts["device_exclude"])
        self._udev_cache: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}

    def _udev(self, major: str, minor: str, fresh: dict) -> dict[str, str]:
        path = os.path.join(self.roots.udev, f"b{major}:{minor}")
        try:
            st = os.stat(path)
        except OSError:
            return {}
        # udev rewrites a device's file (a new inode) when its properties change.
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._udev_cache.get(path)
        if hit is not None and hit[0] == key:
            fresh[path] = hit
            return hit[1]
        info: dict[str, str] = {}
        try:
            text = read_text(path)
        except OSError:
            return info
        fresh[path] = (key, info)
        for line in text.splitlines():
            if line.startswith("E:"):
                k, sep, v = line[2:].partition("=")
                if sep:
                    info[k] = v
        return info

    def collect(self) -> list[Family]:
        fams = [Family(name, typ, help_, ("device",)) for _, name, typ, help_, _ in _FIELDS]
        info = Family("node_disk_info", "gauge", "Info of /sys/block/<block_device>.",
                      ("device", "major", "minor", "path", "wwn", "model", "serial", "revision"))
        fsinfo = Family("node_disk_filesystem_info", "gauge", "Info about disk filesystem.",
                        ("device", "type", "usage", "uuid", "version"))
        dminfo = Family("node_disk_device_mapper_info", "gauge", "Info about disk device mapper.",
                        ("device", "name", "uuid", "vg_name", "lv_name", "lv_layer"))
        ata = {k: Family(name, "gauge", help_, ("device",)) for k, (name, help_) in _ATA.items()}
        fresh: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}  # only devices still present
        for line in read_text(self.roots.procfile("diskstats")).splitlines():
            parts = line.split()
            if len(parts) < 14:
                continue
            major, minor, dev = parts[0], parts[1], parts[2]
            if self._devices.ignored(dev):
                continue
            stats = parts[3:]
            u = self._udev(major, minor, fresh)
            g = u.get
            # node_exporter 1.5 takes ID_SERIAL_SHORT (later versions prefer SCSI_IDENT_SERIAL).
            info.add((dev, major, minor, g("ID_PATH", ""), g("ID_WWN", ""), g("ID_MODEL", ""), g("ID_SERIAL_SHORT", ""),
                      g("ID_REVISION", "")), 1)
            for fam, (idx, _, _, _, scale) in zip(fams, _FIELDS, strict=True):
                if idx < len(stats):
                    v = int(stats[idx])
                    fam.add((dev,), v * scale if scale != 1 else v)
            if g("ID_FS_TYPE"):
                fsinfo.add((dev, u["ID_FS_TYPE"], g("ID_FS_USAGE", ""), g("ID_FS_UUID", ""),
                            g("ID_FS_VERSION", "")), 1)
            if g("DM_NAME"):
                dminfo.add((dev, u["DM_NAME"], g("DM_UUID", ""), g("DM_VG_NAME", ""), g("DM_LV_NAME", ""),
                            g("DM_LV_LAYER", "")), 1)
            if g("ID_ATA"):
                for key, fam in ata.items():
                    v = _go_float(u[key]) if key in u else None
                    if v is not None:
                        fam.add((dev,), v)
        self._udev_cache = fresh
        return [info, fsinfo, dminfo, *ata.values()] + [f for f in fams if f.samples]
