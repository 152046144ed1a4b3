"""`fleet-simulator`: serve N virtual hosts from one process and register them.

Each host answers at ``/hosts/<name>/metrics`` on one port with a node_exporter-shaped
metric set (see simulator/model.py) and is registered in ZooKeeper through
``discovery.registry.Registrar`` so discovery shards it like a real host. Scenario events
(simulator/scenario.py) bend chosen hosts' metrics; a ``host_down`` event drops the
host's scrapes and liveness node, and deregisters it after ``deregister_after``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from fleetmon import listen as listen_address
from simulator.model import Fleet, Host
from simulator.scenario import FOREVER, Event, ScenarioError, load_scenario
from simulator.server import HOST_PREFIX, SimulatorApp, serve

log = logging.getLogger("fleetmon.simulate")


def parse_listen(value: str) -> tuple[str, int]:
    """``--listen``'s HOST:PORT (``fleetmon.listen``); ``:PORT`` is loopback, the simulator's default."""
    try:
        return listen_address.parse(value, default_host="127.0.0.1")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None


class Registration:
    """Mirrors the fleet into ZooKeeper (Registrar) and/or a file_sd JSON file."""

    def __init__(self, fleet: Fleet, address: str, zk: str | None, root: str, session_timeout: float,
                 file_sd: Path | None, sessions: str = "shared", session_procs: int | None = None):
        self.fleet = fleet
        self.address = address
        self.file_sd = file_sd
        self.registrar: Any = None
        self.deregistered: set[str] = set()
        if zk and sessions == "per-host":
            from simulator.sessions import SessionPool

            self.registrar = SessionPool(zk, root=root, session_timeout=session_timeout, procs=session_procs)
        elif zk:
            try:
                from discovery.registry import Registrar
            except ImportError as exc:  # discovery is a sibling package; say clearly what is missing
                raise click.ClickException(f"--zk needs the discovery package: {exc}") from exc
            self.registrar = Registrar(zk, root=root, session_timeout=session_timeout, agent="fleet-simulator")

    def entry(self, h: Host) -> dict[str, Any]:
        return {"name": h.name, "address": self.address, "labels": h.labels,
                "metrics_path": f"{HOST_PREFIX}{h.name}/metrics"}

    def start(self) -> None:
        if self.registrar is not None:
            self.registrar.start()
            self.registrar.add_many([self.entry(h) for h in self.fleet.hosts])
        self.write_file_sd()

    def write_file_sd(self) -> None:
        if self.file_sd is None:
            return
        from fleetmon.atomic import write_if_changed

        groups = [{"targets": [self.address],
                   "labels": {"instance": h.name, "__metrics_path__": f"{HOST_PREFIX}{h.name}/metrics", **h.labels}}
                  for h in self.fleet.hosts if h.name not in self.deregistered]
        write_if_changed(self.file_sd, json.dumps(groups, indent=1) + "\n")

    # host_down transitions, called on the event loop at the right wall time
    def died(self, name: str) -> None:
        log.info("host %s died (liveness removed)", name)
        if self.registrar is not None:
            self.registrar.remove(name, deregister=False)

    def revived(self, name: str) -> None:
        log.info("host %s is back", name)
        self.deregistered.discard(name)
        if self.registrar is not None:
            self.registrar.add_many([self.entry(self.fleet.by_name[name])])
        self.write_file_sd()

    def deregister(self, name: str) -> None:
        host = self.fleet.by_name[name]
        if not host.is_down(self.fleet.sim_time()):
            return
        log.info("host %s deregistered", name)
        self.deregistered.add(name)
        if self.registrar is not None:
            self.registrar.remove(name, deregister=True)
        self.write_file_sd()

    def stop(self, deregister: bool) -> None:
        if self.registrar is not None:
            self.registrar.stop(deregister=deregister)


def schedule_event(loop: asyncio.AbstractEventLoop, fleet: Fleet, reg: Registration, event: Event,
                   offset: float) -> None:
    """Arrange a host_down event's registration changes at their wall-clock times."""
    if event.type != "host_down":
        return
    names = [h.name for h in fleet.hosts if event.matches(h.name)]
    start = fleet.start + offset + event.at

    def at(when: float, fn: Any, name: str) -> None:
        loop.call_later(max(0.0, when - time.time()), fn, name)

    for name in names:
        at(start, reg.died, name)
        if event.duration != FOREVER:
            at(start + event.duration, reg.revived, name)
        if event.deregister_after is not None and event.deregister_after < event.duration:
            at(start + event.deregister_after, reg.deregister, name)


@click.command("simulate")
@click.option("--hosts", "n_hosts", type=click.IntRange(1, 200_000), default=100, show_default=True,
              help="Number of virtual hosts.")
@click.option("--listen", default="127.0.0.1:9850", show_default=True, help="HOST:PORT to serve on.")
@click.option("--advertise", default=None,
              help="HOST:PORT registered as the hosts' scrape address (default: --listen).")
@click.option("--zk", default=None, help="ZooKeeper connect string; registers every host.")
@click.option("--zk-root", default="/fleetmon", show_default=True, help="fleetmon root znode.")
@click.option("--session-timeout", type=float, default=30.0, show_default=True,
              help="ZooKeeper session timeout in seconds (the exporter's, fleetmon.zk.SESSION_TIMEOUT).")
@click.option("--sessions", type=click.Choice(["shared", "per-host"]), default="shared", show_default=True,
              help="shared: one ZooKeeper session for all hosts; per-host: one session and liveness node "
                   "per host, as a real fleet (worker processes on gevent, see simulator/sessions.py).")
@click.option("--session-procs", type=click.IntRange(1, 64), default=None,
              help="Worker processes for --sessions per-host (default: one per 2,500 hosts).")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Scenario YAML (see docs/run.md).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: same seed, same fleet.")
@click.option("--series-per-host", type=click.IntRange(300, 20_000), default=500, show_default=True,
              help="Approximate series per host (padded with per-CPU interrupt counters).")
@click.option("--file-sd", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a Prometheus file_sd JSON file listing every host.")
@click.option("--deregister-on-exit", is_flag=True, help="Delete the hosts' inventory entries on exit.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def simulate(n_hosts: int, listen: str, advertise: str | None, zk: str | None, zk_root: str,
             session_timeout: float, sessions: str, session_procs: int | None, scenario: Path | None, seed: int, series_per_host: int,
             file_sd: Path | None, deregister_on_exit: bool, log_level: str) -> None:
    """Serve N simulated hosts at /hosts/<name>/metrics, register them, play a scenario."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    host, port = parse_listen(listen)
    address = advertise or listen_address.join(host, port)
    try:
        scen = load_scenario(scenario) if scenario else None
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    fleet = Fleet(n_hosts, seed=seed, series_per_host=series_per_host)
    if scen is not None:
        for ev in scen.events:
            hit = fleet.add_event(ev, 0.0)
            if not hit:
                log.warning("%s: event %s matches no host", scen.source, ev.hosts)
    if sessions == "per-host" and not zk:
        raise click.UsageError("--sessions per-host needs --zk")
    if sessions == "per-host" and importlib.util.find_spec("gevent") is None:
        raise click.UsageError("--sessions per-host runs on gevent: pip install 'fleetmon[simulator]'")
    reg = Registration(fleet, address, zk, zk_root, session_timeout, file_sd, sessions, session_procs)
    asyncio.run(_main(fleet, reg, host, port, scen.events if scen else [], deregister_on_exit))


async def _main(fleet: Fleet, reg: Registration, host: str, port: int, events: list[Event],
                deregister_on_exit: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = SimulatorApp(fleet, on_event=lambda ev, off: schedule_event(loop, fleet, reg, ev, off))
    if reg.registrar is not None and hasattr(reg.registrar, "status"):
        app.sessions = reg.registrar.status
    for ev in events:
        schedule_event(loop, fleet, reg, ev, 0.0)

    def ready() -> None:
        reg.start()
        shapes = ", ".join(f"{r}={s.series}" for r, s in fleet.shapes.items())
        log.info("serving %d hosts on http://%s:%d%s<name>/metrics (series per host: %s)",
                 len(fleet.hosts), host, port, HOST_PREFIX, shapes)

    try:
        await serve(app, host, port, ready=ready, stop=stop)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen_address.join(host, port)}: "
                                   f"{exc.strerror or exc}") from exc
    finally:
        reg.stop(deregister_on_exit)
