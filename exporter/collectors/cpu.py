"""cpu collector, as node_exporter 1.5's: seconds per CPU and mode from /proc/stat,
guest seconds, thermal throttle counters and isolated CPUs from sysfs, and with
``info`` the /proc/cpuinfo labels (plus chosen flags and bugs of the first CPU)."""

from __future__ import annotations

import os
import re

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# The procfs library node_exporter uses divides /proc/stat ticks by a fixed USER_HZ of 100
# (the kernel's ABI value on every architecture it exports to userspace).
USER_HZ = 100.0

_INFO_KEYS = {"processor": "cpu", "vendor_id": "vendor", "cpu family": "family", "model": "model",
              "model name": "model_name", "microcode": "microcode", "stepping": "stepping",
              "cache size": "cachesize", "physical id": "package", "core id": "core"}
INFO_LABELS = ("package", "core", "cpu", "vendor", "family", "model", "model_name", "microcode", "stepping",
               "cachesize")


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's cpulist format ("0-2,5") -> [0, 1, 2, 5]."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _read_uint(path: str) -> int | None:
    # os.open/os.read: a third of open()'s cost, and this runs for every CPU on every scrape.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 64))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


class CpuCollector(Collector):
    name = "cpu"
    may_block = False
    description = "Seconds each CPU spent in each mode (/proc/stat), throttles and isolation (sysfs)."
    families = ("node_cpu_seconds_total", "node_cpu_guest_seconds_total", "node_cpu_core_throttles_total",
                "node_cpu_package_throttles_total", "node_cpu_isolated", "node_cpu_info", "node_cpu_flag_info",
                "node_cpu_bug_info")
    options = {
        "guest": (True, bool, "Export node_cpu_guest_seconds_total."),
        "info": (False, bool, "Export node_cpu_info from /proc/cpuinfo."),
        "info_flags_include": ("", str, "Regexp of the first CPU's flags to export as node_cpu_flag_info "
                                        "(implies info).", "info.flags-include"),
        "info_bugs_include": ("", str, "Regexp of the first CPU's bugs to export as node_cpu_bug_info "
                                       "(implies info).", "info.bugs-include"),
    }

    def __init__(self, roots, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._flags = re.compile(self.opts["info_flags_include"]) if self.opts["info_flags_include"] else None
        self._bugs = re.compile(self.opts["info_bugs_include"]) if self.opts["info_bugs_include"] else None
        self._info = bool(self.opts["info"] or self._flags or self._bugs)
        # (sorted cpuN names) -> [(path, package, core)]: topology ids are fixed while a CPU is
        # present; the listing is read every scrape, so hotplug refreshes it.
        self._topology: tuple[list[str], list[tuple[str, int, int]]] = ([], [])

    def collect(self) -> list[Family]:
        out = self._info_families() if self._info else []
        out.extend(self._stat())
        out.extend(self._isolated())
        out.extend(self._throttles())
        return out

    def _stat(self) -> list[Family]:
        secs = Family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.",
                      ("cpu", "mode"))
        guest = Family("node_cpu_guest_seconds_total", "counter",
                       "Seconds the CPUs spent in guests (VMs) for each mode.", ("cpu", "mode"))
        with_guest = self.opts["guest"]
        out_secs, out_guest = secs.samples.append, guest.samples.append
        for line in read_text(self.roots.procfile("stat")).splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            cpu = parts[0][3:]
            if not cpu.isdigit():
                continue
            vals = [int(x) / USER_HZ for x in parts[1:11]]
            vals += [0.0] * (10 - len(vals))
            # Label strings written directly: a CPU number and the fixed modes need no escaping,
            # and this is the largest family of a small host's scrape.
            for mode, v in zip(MODES, vals, strict=False):
                out_secs(("", f'cpu="{cpu}",mode="{mode}"', v))
            if with_guest:
                out_guest(("", f'cpu="{cpu}",mode="user"', vals[8]))
                out_guest(("", f'cpu="{cpu}",mode="nice"', vals[9]))
        return [secs, guest]

    def _isolated(self) -> list[Family]:
        try:
            cpus = parse_cpu_list(read_text(self.roots.sysfile("devices", "system", "cpu", "isolated")))
        except (OSError, ValueError):
            return []
        fam = Family("node_cpu_isolated", "gauge",
                     "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.", ("cpu",))
        for n in cpus:
            fam.add((str(n),), 1)
        return [fam]

    def _throttles(self) -> list[Family]:
        packages: dict[int, int] = {}
        cores: dict[int, dict[int, int]] = {}
        for cpu, pkg, core in self._cpus():
            # Read once per core and per package, as node_exporter does: siblings share them.
            per_pkg = cores.setdefault(pkg, {})
            if core not in per_pkg:
                n = _read_uint(os.path.join(cpu, "thermal_throttle", "core_throttle_count"))
                if n is not None:
                    per_pkg[core] = n
            if pkg not in packages:
                n = _read_uint(os.path.join(cpu, "thermal_throttle", "package_throttle_count"))
                if n is not None:
                    packages[pkg] = n
        pfam = Family("node_cpu_package_throttles_total", "counter",
                      "Number of times this CPU package has been throttled.", ("package",))
        for pkg, n in sorted(packages.items()):
            pfam.add((str(pkg),), n)
        cfam = Family("node_cpu_core_throttles_total", "counter",
                      "Number of times this CPU core has been throttled.", ("package", "core"))
        for pkg, per_pkg in sorted(cores.items()):
            for core, n in sorted(per_pkg.items()):
                cfam.add((str(pkg), str(core)), n)
        return [pfam, cfam]

    def _cpus(self) -> list[tuple[str, int, int]]:
        """(sysfs dir, package id, core id) of each CPU with a topology, in sysfs order."""
        base = self.roots.sysfile("devices", "system", "cpu")
        try:
            names = sorted(n for n in os.listdir(base) if n.startswith("cpu") and n[3:4].isdigit())
        except OSError:
            return []
        if names != self._topology[0]:
            cpus = []
            for n in names:
                path = os.path.join(base, n)
                pkg = _read_uint(os.path.join(path, "topology", "physical_package_id"))
                core = _read_uint(os.path.join(path, "topology", "core_id"))
                if pkg is not None and core is not None:
                    cpus.append((path, pkg, core))
            self._topology = (names, cpus)
        return self._topology[1]

    def _info_families(self) -> list[Family]:
        info = Family("node_cpu_info", "gauge", "CPU information from /proc/cpuinfo.", INFO_LABELS)
        first: dict[str, str] | None = None
        for block in read_text(self.roots.procfile("cpuinfo")).split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, sep, val = line.partition(":")
                if sep:
                    fields[key.strip()] = val.strip()
            if "processor" not in fields:
                continue
            if first is None:
                first = fields
            labels = {_INFO_KEYS[k]: v for k, v in fields.items() if k in _INFO_KEYS}
            info.add(tuple(labels.get(k, "") for k in INFO_LABELS), 1)
        out = [info]
        for opt_re, key, fname, label, what in ((self._flags, "flags", "node_cpu_flag_info", "flag", "flags"),
                                                (self._bugs, "bugs", "node_cpu_bug_info", "bug", "bugs")):
            if opt_re is None or first is None:
                continue
            fam = Family(fname, "gauge",
                         f"The `{what}` field of CPU information from /proc/cpuinfo taken from the first core.",
                         (label,))
            for v in first.get(key, "").split():
                if opt_re.search(v):
                    fam.add((v,), 1)
            out.append(fam)
        return out
