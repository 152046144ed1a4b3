"""loadavg collector: node_load1, node_load5, node_load15 from /proc/loadavg."""

from __future__ import annotations

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family


class LoadavgCollector(Collector):
    name = "loadavg"
    may_block = False
    description = "1, 5 and 15 minute load averages (/proc/loadavg)."
    families = ("node_load1", "node_load5", "node_load15")

    def collect(self) -> list[Family]:
        parts = read_text(self.roots.procfile("loadavg")).split()
        return [
            Family(f"node_load{n}", "gauge", f"{n}m load average.").add((), float(v))
            for n, v in zip((1, 5, 15), parts[:3], strict=True)
        ]
