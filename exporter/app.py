"""The exporter: host collectors at scrape time, log tailing in the background, and
self-metrics, wired from an ExporterConfig. ``scrape()`` returns the exposition."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from exporter import __version__
from exporter.collectors import Roots
from exporter.config import ExporterConfig
from exporter.host import HostMetrics, build_collectors
from exporter.logs.manager import LogManager, source_from_config
from exporter.metrics import Family, from_client, render
from fleetmon import listen as listen_address

log = logging.getLogger(__name__)


class Exporter:
    def __init__(self, cfg: ExporterConfig):
        self.cfg = cfg
        self.roots = Roots(proc=cfg.proc_path, sys=cfg.sys_path, rootfs=cfg.rootfs_path, udev=cfg.udev_data_path)
        collectors = build_collectors(self.roots, cfg.collectors)
        self.host = HostMetrics(collectors, timeout=cfg.collector_timeout)
        t = cfg.tailing
        self.logs = LogManager(
            [source_from_config(e) for e in cfg.logs],
            state_file=t.get("state_file"), poll_interval=t.get("poll_interval", 0.5),
            max_line=t.get("max_line_bytes", 1024 * 1024), label_cap=t.get("label_cap", 50),
            max_files=t.get("max_files", 100), rotate_grace=t.get("rotate_grace", 30.0),
        )
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        self._lock = threading.Lock()
        self.registrar = None
        self.started = time.time()

    def start(self) -> Exporter:
        if self.cfg.logs:
            self.logs.start()
        return self

    def scrape(self) -> bytes:
        t0 = time.perf_counter()
        with self._lock:
            fams: list[Family] = self.host.collect()
        fams.extend(self.logs.families())
        fams.extend(from_client(m) for m in self._process.collect())
        fams.append(Family("fleetmon_exporter_build_info", "gauge",
                           "A metric with a constant 1 labeled by the fleet-exporter version.",
                           ("version",)).add((__version__,), 1))
        reg = self.registrar
        if reg is not None:
            try:
                st = reg.status()
                ok = 1 if st.get("connected") and st.get("alive_ok", 0) >= st.get("desired", 1) else 0
            except Exception:  # noqa: BLE001 - a status read never fails the scrape
                ok = 0
            fams.append(Family("fleetmon_exporter_zk_registered", "gauge",
                               "1 when this host's inventory and liveness znodes are in ZooKeeper.").add((), ok))
        fams.append(Family("fleetmon_exporter_scrape_duration_seconds", "gauge",
                           "Seconds the previous part of this scrape took to collect.")
                    .add((), time.perf_counter() - t0))
        return render(fams)

    def stop(self) -> None:
        if self.registrar is not None:
            try:
                self.registrar.stop(deregister=False)
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping ZooKeeper registration: %s", exc)
        self.logs.stop()
        self.host.close()


def start_registration(exporter: Exporter, zk: dict[str, Any], listen: str) -> Any:
    """Register this host in ZooKeeper (``discovery.registry.Registrar``), imported
    lazily so the exporter runs without the discovery package."""
    from discovery.registry import Registrar  # noqa: PLC0415 - optional dependency

    host, port = listen_address.parse(listen, any_port=True)
    name = zk.get("name") or os.uname().nodename
    if host in ("0.0.0.0", "::"):  # every interface: Prometheus reaches us by our name
        host = name
    address = zk.get("address") or listen_address.join(host, port)
    # The registrar credential: zk.security_dir, else FLEETMON_ZK_SECURITY_DIR / its default
    # (fleetmon.zk); zk.insecure: true is open mode, which fleetmon.zk logs as a warning.
    from fleetmon.zk import load_security  # noqa: PLC0415 - with the optional dependency

    env = dict(os.environ)
    if zk.get("security_dir"):
        env["FLEETMON_ZK_SECURITY_DIR"] = zk["security_dir"]
    security = load_security("registrar", insecure=zk.get("insecure"), env=env)
    reg = Registrar(zk["hosts"], root=zk.get("root", "/fleetmon"), security=security)
    reg.start()
    reg.add(name, address, labels=dict(zk.get("labels") or {}), metrics_path="/metrics")
    exporter.registrar = reg
    return reg
