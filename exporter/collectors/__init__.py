"""The table of host collectors: name -> class. Each entry becomes a config key
(``collectors: {NAME: {enabled: ..., OPTION: ...}}``) and a pair of CLI flags
(``--collector.NAME`` / ``--no-collector.NAME``), as node_exporter's registry does; each
option becomes a flag too, with node_exporter's name (``--collector.textfile.directory``)."""

from __future__ import annotations

from exporter.collectors.base import Collector, Roots
from exporter.collectors.cpu import CpuCollector
from exporter.collectors.diskstats import DiskstatsCollector
from exporter.collectors.filesystem import FilesystemCollector
from exporter.collectors.loadavg import LoadavgCollector
from exporter.collectors.meminfo import MeminfoCollector
from exporter.collectors.netdev import NetdevCollector
from exporter.collectors.stat import StatCollector
from exporter.collectors.textfile import TextfileCollector
from exporter.collectors.time import TimeCollector
from exporter.collectors.uname import UnameCollector

REGISTRY: dict[str, type[Collector]] = {
    c.name: c
    for c in (CpuCollector, DiskstatsCollector, FilesystemCollector, LoadavgCollector, MeminfoCollector,
              NetdevCollector, StatCollector, TextfileCollector, TimeCollector, UnameCollector)
}

__all__ = ["REGISTRY", "Collector", "Roots"]
