"""netdev collector: per-interface receive/transmit counters from /proc/net/dev.

node_exporter 1.5 reads them over netlink by default, which adds
``receive_nohandler``; ``netlink`` (default on) adds it here from sysfs, the same
kernel counter. With ``netlink: false`` the output is node_exporter's
``--no-collector.netdev.netlink`` output, /proc/net/dev alone."""

from __future__ import annotations

from exporter.collectors.base import Collector, DeviceFilter, read_text
from exporter.metrics import Family

RX = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
TX = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")


class NetdevCollector(Collector):
    name = "netdev"
    may_block = False
    description = "Network interface bytes, packets, errors and drops (/proc/net/dev)."
    families = tuple(f"node_network_receive_{f}_total" for f in RX + ("nohandler",)) + tuple(
        f"node_network_transmit_{f}_total" for f in TX)
    options = {
        "device_exclude": ("^lo$", str, "Regexp of interfaces to exclude."),
        "device_include": ("", str, "Regexp of interfaces to include (overrides device_exclude)."),
        "netlink": (True, bool, "Report receive_nohandler too, as node_exporter's netlink mode does."),
    }

    def __init__(self, roots, **opts):  # noqa: ANN001
        super().__init__(roots, **opts)
        self._devices = DeviceFilter(self.opts["device_include"], self.opts["device_exclude"])

    def collect(self) -> list[Family]:
        stats: dict[str, dict[str, int]] = {}
        for line in read_text(self.roots.procfile("net", "dev")).splitlines()[2:]:
            dev, _, rest = line.partition(":")
            dev = dev.strip()
            vals = rest.split()
            if not dev or len(vals) < 16 or self._devices.ignored(dev):
                continue
            d = {f"receive_{k}": int(v) for k, v in zip(RX, vals[:8], strict=True)}
            d.update({f"transmit_{k}": int(v) for k, v in zip(TX, vals[8:16], strict=True)})
            if not self.opts["netlink"]:
                stats[dev] = d
                continue
            try:
                d["receive_nohandler"] = int(read_text(self.roots.sysfile(
                    "class", "net", dev, "statistics", "rx_nohandler")))
            except (OSError, ValueError):
                pass
            stats[dev] = d
        fams: dict[str, Family] = {}
        for dev, d in stats.items():
            for key, v in d.items():
                fam = fams.get(key)
                if fam is None:
                    fam = fams[key] = Family(f"node_network_{key}_total", "counter",
                                             f"Network device statistic {key}.", ("device",))
                fam.add((dev,), v)
        return list(fams.values())
