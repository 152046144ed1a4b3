"""time collector: the system clock, its time zone offset and clock sources, so
dashboards compute uptime as ``node_time_seconds - node_boot_time_seconds`` and
alert on clock skew, as with node_exporter."""

from __future__ import annotations

import glob
import os
import time

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family


class TimeCollector(Collector):
    name = "time"
    may_block = False
    description = "System time, time zone offset and clock sources (/sys/devices/system/clocksource)."
    families = ("node_time_seconds", "node_time_zone_offset_seconds", "node_time_clocksource_available_info",
                "node_time_clocksource_current_info")

    def collect(self) -> list[Family]:
        now = time.time()
        lt = time.localtime(now)
        out = [
            Family("node_time_seconds", "gauge", "System time in seconds since epoch (1970).").add((), now),
            Family("node_time_zone_offset_seconds", "gauge", "System time zone offset in seconds.",
                   ("time_zone",)).add((lt.tm_zone,), lt.tm_gmtoff),
        ]
        avail = Family("node_time_clocksource_available_info", "gauge",
                       "Available clocksources read from '/sys/devices/system/clocksource'.",
                       ("clocksource", "device"))
        current = Family("node_time_clocksource_current_info", "gauge",
                         "Current clocksource read from '/sys/devices/system/clocksource'.",
                         ("clocksource", "device"))
        for d in sorted(glob.glob(self.roots.sysfile("devices", "system", "clocksource", "clocksource[0-9]*"))):
            dev = os.path.basename(d)[len("clocksource"):]
            try:
                for cs in read_text(os.path.join(d, "available_clocksource")).split():
                    avail.add((cs, dev), 1)
                current.add((read_text(os.path.join(d, "current_clocksource")).strip(), dev), 1)
            except OSError:
                continue
        return out + [f for f in (avail, current) if f.samples]
