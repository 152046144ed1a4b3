"""Which file systems and network devices fleetmon counts: the one list, used everywhere.

Two layers, on purpose:

- ``NODE_EXPORTER_FS_TYPES_EXCLUDE`` is node_exporter 1.5's default ``--collector.filesystem.
  fs-types-exclude``. The exporter keeps exactly that default (exporter/collectors/filesystem.py,
  tested for parity), so a host running either exporter exposes the same file systems.
- ``FS_TYPES_IGNORED`` is what alerts and dashboards leave out at query time: node_exporter's
  list plus the memory-backed and container file systems it does expose (tmpfs, overlay's
  friends, lxcfs, ...). Filtering at query time (not only in the exporter) is what makes a
  host running stock node_exporter, with its own flags, agree with ours.

Both rulesync's built-in signals and the per-host recording rules (generated from
``fleetmon.signals``) take their PromQL matcher from here, so an alert and a dashboard panel
always count the same file systems.
"""

from __future__ import annotations

import re

# node_exporter 1.5 collector/filesystem_linux.go defaultFsTypesExcluded (Debian's 1.5 too).
NODE_EXPORTER_FS_TYPES = (
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "proc", "procfs", "pstore",
    "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs",
)
# The exporter flag's default, written as node_exporter writes it (cgroup2? folded).
NODE_EXPORTER_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
)

# Exposed by node_exporter but never worth a disk alert or a panel: memory-backed (their
# "usage" is RAM), container layers and FUSE views of /proc, kernel-internal mounts.
_ALSO_IGNORED = (
    "tmpfs", "ramfs", "rootfs", "aufs", "efivarfs", "nfsd",
    "fuse.lxcfs", "fuse.portal", "fuse.gvfsd-fuse",
)

FS_TYPES_IGNORED: tuple[str, ...] = tuple(sorted(set(NODE_EXPORTER_FS_TYPES) | set(_ALSO_IGNORED)))

# Virtual network devices: loopback, container veths, bridges and overlay interfaces.
NET_DEVICES_IGNORED_RE = "lo|veth.*|docker.*|br-.*|virbr.*|cali.*|flannel.*|cni.*"


def _re2_alternation(names: tuple[str, ...]) -> str:
    # Only "." is special in these names; PromQL anchors label regexes itself.
    return "|".join(re.sub(r"\.", r"\\.", n) for n in names)


def promql_string(text: str) -> str:
    """``text`` as a double-quoted PromQL string literal (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


FS_TYPES_IGNORED_RE = _re2_alternation(FS_TYPES_IGNORED)
# The label matcher both the alerts and the recording rules put on node_filesystem_*.
FS_MATCHER = "fstype!~" + promql_string(FS_TYPES_IGNORED_RE)
NET_DEVICE_MATCHER = "device!~" + promql_string(NET_DEVICES_IGNORED_RE)


def fs_type_ignored(fstype: str) -> bool:
    """True if alerts and dashboards leave out a file system of this type."""
    return fstype in FS_TYPES_IGNORED
