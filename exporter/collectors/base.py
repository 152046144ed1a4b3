"""The collector interface and the injected OS boundary (procfs, sysfs, rootfs roots)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from exporter.metrics import Family


@dataclass(frozen=True)
class Roots:
    """Where the OS is mounted; tests point these at fixture directories
    (node_exporter's --path.procfs / --path.sysfs / --path.rootfs / --path.udev.data)."""

    proc: str = "/proc"
    sys: str = "/sys"
    rootfs: str = "/"
    udev: str = "/run/udev/data"

    def procfile(self, *parts: str) -> str:
        return os.path.join(self.proc, *parts)

    def sysfile(self, *parts: str) -> str:
        return os.path.join(self.sys, *parts)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


class Collector:
    """A host collector: ``collect()`` returns fresh families on every call and keeps
    no scrape state. ``options`` holds the collector's validated settings."""

    name: str = ""
    default_enabled: bool = True
    description: str = ""
    families: tuple[str, ...] = ()
    # True when collect() may block on I/O (network filesystems, user directories): it then
    # runs on a worker with a deadline. Collectors reading only kernel-generated procfs/sysfs
    # files (which never wait on a device) set it False and run inline, saving thread
    # hand-offs that dominate scrape latency on a busy host.
    may_block: bool = True
    # option name -> (default, type, help[, flag]): each is a config key and a CLI flag,
    # ``--collector.NAME.FLAG`` where FLAG defaults to the option with "-" for "_"
    # (node_exporter's flag names; the fourth item spells the ones that differ).
    options: dict[str, tuple[Any, ...]] = {}

    def __init__(self, roots: Roots, **opts: Any):
        self.roots = roots
        unknown = set(opts) - set(self.options)
        if unknown:
            raise ValueError(f"unknown option(s) for collector {self.name}: {', '.join(sorted(unknown))}")
        self.opts = {k: opts.get(k, spec[0]) for k, spec in self.options.items()}

    def prepare(self) -> None:
        """Start slow work (e.g. statfs on workers) before the other collectors run, so it
        overlaps with them; ``collect()`` then picks up the results."""

    def collect(self) -> list[Family]:
        raise NotImplementedError

    def close(self) -> None:
        """Release threads or files; called on shutdown."""


def option_flag(collector: str, option: str, spec: tuple[Any, ...]) -> str:
    """The CLI flag of a collector option: ``--collector.cpu.info.flags-include``."""
    return f"--collector.{collector}.{spec[3] if len(spec) > 3 else option.replace('_', '-')}"


class DeviceFilter:
    """node_exporter's ``device-include`` / ``device-exclude`` pair, shared by the collectors
    that report per device (diskstats, netdev). An include pattern, when set, wins."""

    def __init__(self, include: str, exclude: str):
        self._include = re.compile(include) if include else None
        self._exclude = re.compile(exclude) if exclude else None

    def ignored(self, dev: str) -> bool:
        if self._include is not None:
            return not self._include.search(dev)
        return bool(self._exclude and self._exclude.search(dev))
