"""stat collector: boot time, context switches, forks, interrupts and process states
from /proc/stat."""

from __future__ import annotations

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family

_FIELDS = {
    "btime": ("node_boot_time_seconds", "gauge", "Node boot time, in unixtime."),
    "ctxt": ("node_context_switches_total", "counter", "Total number of context switches."),
    "processes": ("node_forks_total", "counter", "Total number of forks."),
    "intr": ("node_intr_total", "counter", "Total number of interrupts serviced."),
    "procs_running": ("node_procs_running", "gauge", "Number of processes in runnable state."),
    "procs_blocked": ("node_procs_blocked", "gauge",
                      "Number of processes blocked waiting for I/O to complete."),
}

# The order of the per-vector counts on /proc/stat's softirq line (after the total).
SOFTIRQ_VECTORS = ("hi", "timer", "net_tx", "net_rx", "block", "block_iopoll", "tasklet", "sched", "hrtimer",
                   "rcu")


class StatCollector(Collector):
    name = "stat"
    may_block = False
    description = "Boot time, context switches, forks, interrupts, running/blocked processes (/proc/stat)."
    families = tuple(f[0] for f in _FIELDS.values()) + ("node_softirqs_total",)
    options = {"softirq": (False, bool, "Export node_softirqs_total{vector}, softirq calls per vector.")}

    def collect(self) -> list[Family]:
        out = []
        for line in read_text(self.roots.procfile("stat")).splitlines():
            key, _, rest = line.partition(" ")
            if key == "softirq" and self.opts["softirq"]:
                out.append(self._softirqs(rest.split()[1:]))
                continue
            spec = _FIELDS.get(key)
            if spec is None:
                continue
            first = rest.split(None, 1)[0]
            out.append(Family(*spec).add((), int(first)))
        return out

    @staticmethod
    def _softirqs(counts: list[str]) -> Family:
        fam = Family("node_softirqs_total", "counter", "Number of softirq calls.", ("vector",))
        for vector, n in zip(SOFTIRQ_VECTORS, counts, strict=False):
            fam.add((vector,), int(n))
        return fam
