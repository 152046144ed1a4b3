"""filesystem collector: size, free, available and inode counts per mounted
filesystem, with every statfs time-boxed.

A dead NFS server makes statfs(2) block forever. Each call (except for local
filesystems that answer from memory, ``inline_fs_types``) runs on a daemon worker
with a deadline (``mount_timeout``); a mount that misses it is reported with
``node_filesystem_device_error=1`` and skipped on later scrapes until the stuck
call returns, so one hung mount costs one thread and never slows a scrape again.

With ``--path.rootfs=/host`` (node_exporter's documented container setup, the host's
/ bind-mounted at /host) the mount table lists the host's mounts as /host/...; as
node_exporter does, the prefix is removed from the reported mount point and the
statfs goes to /host/<mount point>, once.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family
from exporter.workers import DaemonPool
from fleetmon.filters import NODE_EXPORTER_FS_TYPES_EXCLUDE

# Debian's prometheus-node-exporter 1.5 defaults.
DEFAULT_MOUNT_POINTS_EXCLUDE = r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
# node_exporter's own default, kept in fleetmon.filters beside the wider list alerts and
# dashboards ignore at query time (tmpfs, ...), so the two cannot drift apart.
DEFAULT_FS_TYPES_EXCLUDE = NODE_EXPORTER_FS_TYPES_EXCLUDE

# Filesystems whose statfs(2) answers from in-memory superblock counters without I/O or
# locks a stuck writer could hold (ext4_statfs, xfs_fs_statfs, shmem): called inline,
# saving a thread hand-off per mount. Network and FUSE filesystems, btrfs (takes locks a
# stuck transaction may hold) and vfat (may read the FAT) always go to a worker.
DEFAULT_INLINE_FS_TYPES = r"^(ext[234]|xfs|tmpfs|ramfs)$"

LABELS = ("device", "fstype", "mountpoint")


def _unescape(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes.
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class FilesystemCollector(Collector):
    name = "filesystem"
    may_block = False  # statfs, the call that can hang, is time-boxed per mount below
    description = "Filesystem size, free, available bytes and inodes per mount; hung mounts time-boxed."
    families = ("node_filesystem_size_bytes", "node_filesystem_free_bytes", "node_filesystem_avail_bytes",
                "node_filesystem_files", "node_filesystem_files_free", "node_filesystem_readonly",
                "node_filesystem_device_error")
    options = {
        "mount_points_exclude": (DEFAULT_MOUNT_POINTS_EXCLUDE, str, "Regexp of mount points to exclude."),
        "fs_types_exclude": (DEFAULT_FS_TYPES_EXCLUDE, str, "Regexp of filesystem types to exclude."),
        "mount_timeout": (1.0, float, "Seconds to wait for statfs before reporting the mount as stale."),
        "inline_fs_types": (DEFAULT_INLINE_FS_TYPES, str,
                            "Regexp of filesystem types whose statfs answers from memory, called without a "
                            "worker and its deadline (empty: every statfs on a worker)."),
    }

    def __init__(self, roots, statfs: Callable[[str], os.statvfs_result] | None = None, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._mp_exclude = re.compile(self.opts["mount_points_exclude"]) if self.opts["mount_points_exclude"] else None
        self._fs_exclude = re.compile(self.opts["fs_types_exclude"]) if self.opts["fs_types_exclude"] else None
        self._inline = re.compile(self.opts["inline_fs_types"]) if self.opts["inline_fs_types"] else None
        self._statfs = statfs or os.statvfs
        self._pool = DaemonPool("statfs", max_workers=32)
        self._stuck: dict[str, Future] = {}
        # statfs calls started by prepare() for the scrape in progress (scrapes are serialised).
        self._prepared: tuple[dict[Future, tuple[str, str, str, str]], list, float] | None = None
        self._lock = threading.Lock()

    def mounts(self) -> list[tuple[str, str, str, str]]:
        """(device, mountpoint, fstype, options) of each mount not filtered out."""
        try:
            text = read_text(self.roots.procfile("1", "mounts"))
        except OSError:
            text = read_text(self.roots.procfile("mounts"))
        out, seen = [], set()
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            dev, mp, fstype, mopts = _unescape(parts[0]), self._strip_rootfs(_unescape(parts[1])), parts[2], parts[3]
            if self._mp_exclude and self._mp_exclude.search(mp):
                continue
            if self._fs_exclude and self._fs_exclude.search(fstype):
                continue
            key = (dev, mp, fstype)
            if key in seen:
                continue
            seen.add(key)
            out.append((dev, mp, fstype, mopts))
        return out

    def _strip_rootfs(self, mountpoint: str) -> str:
        root = self.roots.rootfs.rstrip("/")
        if not root:
            return mountpoint
        if mountpoint == root:
            return "/"
        if mountpoint.startswith(root + "/"):
            return mountpoint[len(root):]
        return mountpoint

    def _path(self, mountpoint: str) -> str:
        root = self.roots.rootfs
        if root in ("", "/"):
            return mountpoint
        return os.path.join(root, mountpoint.lstrip("/"))

    def collect(self) -> list[Family]:
        names = [("node_filesystem_size_bytes", "Filesystem size in bytes."),
                 ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
                 ("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
                 ("node_filesystem_files", "Filesystem total file nodes."),
                 ("node_filesystem_files_free", "Filesystem total free file nodes.")]
        fams = [Family(n, "gauge", h, LABELS) for n, h in names]
        ro = Family("node_filesystem_readonly", "gauge", "Filesystem read-only status.", LABELS)
        err = Family("node_filesystem_device_error", "gauge",
                     "Whether an error occurred while getting statistics for the given device.", LABELS)
        if self._prepared is None:
            self.prepare()
        assert self._prepared is not None
        pending, errors, deadline = self._prepared
        self._prepared = None
        done, not_done = wait_futures(list(pending), timeout=max(0.0, deadline - time.monotonic()))
        # No completion callback and no lock around the hand-over: a callback added to a
        # future that completes meanwhile runs at once in this thread, and taking a lock
        # there deadlocked the scrape. The next prepare() polls the future instead.
        stuck = {pending[fut][1]: fut for fut in not_done}
        with self._lock:
            self._stuck.update(stuck)
        errors.extend(pending[fut] for fut in not_done)
        for fut, m in pending.items():
            if fut not in done:
                continue
            labels = (m[0], m[2], m[1])
            try:
                st = fut.result()
            except OSError:
                err.add(labels, 1)
                continue
            bs = st.f_bsize
            for fam, v in zip(fams, (st.f_blocks * bs, st.f_bfree * bs, st.f_bavail * bs, st.f_files,
                                     st.f_ffree), strict=True):
                fam.add(labels, v)
            ro.add(labels, 1 if "ro" in m[3].split(",") else 0)
            err.add(labels, 0)
        for m in errors:
            err.add((m[0], m[2], m[1]), 1)
        return [f for f in fams + [ro] if f.samples] + [err]

    def prepare(self) -> None:
        """Read the mount table and start every statfs on the workers."""
        pending: dict[Future, tuple[str, str, str, str]] = {}
        errors: list[tuple[str, str, str, str]] = []
        mounts = self.mounts()
        with self._lock:
            # A stuck call that has returned since frees its mount for this scrape.
            for mp in [mp for mp, fut in self._stuck.items() if fut.done()]:
                del self._stuck[mp]
            stuck = set(self._stuck)
        inline = []
        for m in mounts:
            if m[1] in stuck:
                errors.append(m)
                continue
            if self._inline and self._inline.search(m[2]):
                inline.append(m)
                continue
            path = self._path(m[1])
            pending[self._pool.submit(lambda p=path: self._statfs(p))] = m
        # After the workers have theirs, so both overlap. A hand-off to a worker costs more
        # than these statfs calls themselves (most of a scrape on a loaded machine).
        for m in inline:
            fut: Future = Future()
            try:
                fut.set_result(self._statfs(self._path(m[1])))
            except OSError as exc:
                fut.set_exception(exc)
            pending[fut] = m
        self._prepared = (pending, errors, time.monotonic() + float(self.opts["mount_timeout"]))

    def stuck_mounts(self) -> list[str]:
        """Mount points whose statfs is still blocked."""
        with self._lock:
            return sorted(mp for mp, fut in self._stuck.items() if not fut.done())

    def close(self) -> None:
        self._pool.close()
