"""meminfo collector: node_memory_<Field>_bytes gauges from /proc/meminfo."""

from __future__ import annotations

import re

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family

_CLEAN = re.compile(r"[()]")


class MeminfoCollector(Collector):
    name = "meminfo"
    may_block = False
    description = "Memory statistics (/proc/meminfo), one gauge per field."
    families = ("node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_memory_*")

    def collect(self) -> list[Family]:
        out = []
        for line in read_text(self.roots.procfile("meminfo")).splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if not key or not parts:
                continue
            # "Active(anon)" -> "Active_anon", as node_exporter names it.
            key = _CLEAN.sub("_", key).rstrip("_")
            value = float(parts[0])
            if len(parts) > 1 and parts[1] == "kB":
                key += "_bytes"
                value *= 1024
            out.append(Family(f"node_memory_{key}", "gauge", f"Memory information field {key}.").add((), value))
        return out
