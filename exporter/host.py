"""Runs the enabled host collectors for one scrape, each time-boxed.

Collectors that may block (``may_block``: textfile, anything not reading only
procfs/sysfs) run on their own daemon worker; the scrape waits at most ``timeout``
seconds for all of them together. Procfs readers run inline (the filesystem
collector time-boxes its own statfs calls per mount). A collector that fails or misses the
deadline reports ``node_scrape_collector_success{collector}=0`` and none of its
families, as node_exporter does: a stale gauge with a fresh timestamp would hide exactly
what the operator needs to see. A slow collector never fails or slows the scrape; while
its previous call is still running it is not called again.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

from exporter.collectors import REGISTRY, Collector, Roots
from exporter.metrics import Family
from exporter.workers import DaemonPool

log = logging.getLogger(__name__)


def build_collectors(roots: Roots, settings: dict[str, dict[str, Any]]) -> list[Collector]:
    """Instantiate the enabled collectors. ``settings``: name -> {"enabled": bool, option: value}."""
    out = []
    for name, cls in REGISTRY.items():
        conf = dict(settings.get(name, {}))
        enabled = conf.pop("enabled", cls.default_enabled)
        if enabled:
            out.append(cls(roots, **conf))
    return out


class HostMetrics:
    def __init__(self, collectors: list[Collector], timeout: float = 5.0):
        self.collectors = collectors
        self.timeout = timeout
        self._pools = {c.name: DaemonPool(f"collector-{c.name}", max_workers=2) for c in collectors if c.may_block}
        self._running: dict[str, tuple[Future, float]] = {}

    def collect(self) -> list[Family]:
        start = time.perf_counter()
        futs: dict[str, Future] = {}
        inline: dict[str, tuple[list[Family], float] | Exception] = {}
        for c in self.collectors:
            if not c.may_block:
                continue
            prev = self._running.get(c.name)
            if prev is not None and not prev[0].done():
                continue  # still stuck from an earlier scrape
            futs[c.name] = self._pools[c.name].submit(lambda c=c: self._timed(c))
            self._running[c.name] = (futs[c.name], start)
        # Procfs readers run here while the blocking ones work in parallel.
        for c in self.collectors:
            if not c.may_block:
                try:
                    c.prepare()
                except Exception:  # noqa: BLE001 - reported by collect() below
                    pass
        # Collectors with work in flight go last, giving their workers the most time.
        for c in sorted(self.collectors, key=lambda c: type(c).prepare is not Collector.prepare):
            if not c.may_block:
                try:
                    inline[c.name] = self._timed(c)
                except Exception as exc:  # noqa: BLE001 - one collector never fails the scrape
                    inline[c.name] = exc
        wait_futures(list(futs.values()), timeout=max(0.0, self.timeout - (time.perf_counter() - start)))
        out: list[Family] = []
        success = Family("node_scrape_collector_success", "gauge",
                         "node_exporter: Whether a collector succeeded.", ("collector",))
        duration = Family("node_scrape_collector_duration_seconds", "gauge",
                          "node_exporter: Duration of a collector scrape.", ("collector",))
        for c in self.collectors:
            fut = futs.get(c.name)
            ok = 0
            fams: list[Family] = []
            if c.name in inline:
                res = inline[c.name]
                if isinstance(res, Exception):
                    log.warning("collector %s failed: %s", c.name, res)
                    took = 0.0
                else:
                    fams, took = res
                    ok = 1
            elif fut is not None and fut.done():
                try:
                    fams, took = fut.result()
                    ok = 1
                except Exception as exc:  # noqa: BLE001 - one collector never fails the scrape
                    log.warning("collector %s failed: %s", c.name, exc)
                    took = time.perf_counter() - start
            else:
                took = time.perf_counter() - self._running[c.name][1]
                log.warning("collector %s still running after %.1fs; serving none of its samples", c.name, took)
            out.extend(fams)
            success.add((c.name,), ok)
            duration.add((c.name,), took)
        out.append(duration)
        out.append(success)
        return out

    @staticmethod
    def _timed(c: Collector) -> tuple[list[Family], float]:
        t0 = time.perf_counter()
        fams = c.collect()
        return fams, time.perf_counter() - t0

    def close(self) -> None:
        for c in self.collectors:
            c.close()
        for p in self._pools.values():
            p.close()
