"""cpu collector: node_cpu_seconds_total{cpu,mode} and node_cpu_guest_seconds_total from /proc/stat."""

from __future__ import annotations

import os

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def user_hz() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError):
        return 100.0


class CpuCollector(Collector):
    name = "cpu"
    may_block = False
    description = "Seconds each CPU spent in each mode (/proc/stat)."
    families = ("node_cpu_seconds_total", "node_cpu_guest_seconds_total")

    def collect(self) -> list[Family]:
        hz = user_hz()
        secs = Family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.",
                      ("cpu", "mode"))
        guest = Family("node_cpu_guest_seconds_total", "counter",
                       "Seconds the CPUs spent in guests (VMs) for each mode.", ("cpu", "mode"))
        for line in read_text(self.roots.procfile("stat")).splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            cpu = parts[0][3:]
            vals = [int(x) / hz for x in parts[1:11]]
            for mode, v in zip(MODES, vals, strict=False):
                secs.add((cpu, mode), v)
            if len(vals) >= 10:
                guest.add((cpu, "user"), vals[8])
                guest.add((cpu, "nice"), vals[9])
        return [secs, guest]
