"""uname collector: node_uname_info with the uname(2) fields.

Fields are read from <procfs>/sys/kernel/* so a fixture directory can stand in
for the host; ``machine`` (not in procfs) comes from os.uname().
"""

from __future__ import annotations

import os

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family

_FILES = {"sysname": "ostype", "release": "osrelease", "version": "version",
          "nodename": "hostname", "domainname": "domainname"}


class UnameCollector(Collector):
    name = "uname"
    may_block = False
    description = "Kernel name, release, version, machine, node and domain name as labels."
    families = ("node_uname_info",)

    def collect(self) -> list[Family]:
        un = os.uname()
        fallback = {"sysname": un.sysname, "release": un.release, "version": un.version,
                    "nodename": un.nodename, "domainname": "(none)"}
        vals = {}
        for label, fname in _FILES.items():
            try:
                vals[label] = read_text(self.roots.procfile("sys", "kernel", fname)).strip()
            except OSError:
                vals[label] = fallback[label]
        vals["machine"] = un.machine
        fam = Family("node_uname_info", "gauge",
                     "Labeled system information as provided by the uname system call.",
                     ("domainname", "machine", "nodename", "release", "sysname", "version"))
        fam.add(tuple(vals[k] for k in fam.labels), 1)
        return [fam]
