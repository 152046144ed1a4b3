"""uname collector: node_uname_info with the uname(2) fields.

As node_exporter's, it asks the kernel (uname(2)), not --path.procfs: in a container
that is the host's kernel with the container's host and domain names. Python's
os.uname() lacks the domain name, which comes from the same UTS namespace through
/proc/sys/kernel/domainname.
"""

from __future__ import annotations

import os

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family


def _domainname() -> str:
    try:
        return read_text("/proc/sys/kernel/domainname").strip()
    except OSError:
        return "(none)"


class UnameCollector(Collector):
    name = "uname"
    may_block = False
    description = "Kernel name, release, version, machine, node and domain name as labels."
    families = ("node_uname_info",)

    def collect(self) -> list[Family]:
        un = os.uname()
        fam = Family("node_uname_info", "gauge",
                     "Labeled system information as provided by the uname system call.",
                     ("domainname", "machine", "nodename", "release", "sysname", "version"))
        fam.add((_domainname(), un.machine, un.nodename, un.release, un.sysname, un.version), 1)
        return [fam]
