"""``fleet-exporter``: parse flags and config, wire the exporter, serve /metrics."""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from typing import Any

import click

from exporter.collectors import REGISTRY
from exporter.collectors.base import option_flag
from exporter.config import DEFAULT_LISTEN, ConfigError, ExporterConfig, load_config, parse_log_flag
from fleetmon import listen as listen_address

log = logging.getLogger("fleet-exporter")


def _collector_flags(f: Any) -> Any:
    for name, cls in reversed(list(REGISTRY.items())):
        for opt, spec in reversed(list(cls.options.items())):
            flag = option_flag(name, opt, spec)
            dest = f"opt__{name}__{opt}"
            if spec[1] is bool:
                f = click.option(f"{flag}/--no-{flag[2:]}", dest, default=None,
                                 help=f"{spec[2]} (default: {'on' if spec[0] else 'off'}).")(f)
            else:
                f = click.option(flag, dest, type=spec[1], default=None,
                                 help=f"{spec[2]} (default: {spec[0]!r}).")(f)
        default = "enabled" if cls.default_enabled else "disabled"
        f = click.option(f"--collector.{name}/--no-collector.{name}", f"collector_{name}", default=None,
                         help=f"Enable the {name} collector (default: {default}).")(f)
    return f


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--listen", help=f"HOST:PORT to serve /metrics on (default {DEFAULT_LISTEN}).")
@click.option("--log", "log_flags", multiple=True, metavar="TYPE:PATH",
              help="Tail a log: TYPE is syslog, nginx_access, apache_access, nginx_error or apache_error; "
                   "PATH may be a glob. 'journald' (or journald:DIRECTORY) follows the systemd journal. "
                   "Repeatable.")
@click.option("--zk", "zk_hosts", help="ZooKeeper hosts to register this exporter with (host:port,...).")
@click.option("--web.config.file", "web_config_file", type=click.Path(dir_okay=False),
              help="exporter-toolkit web config (TLS, basic auth).")
@click.option("--path.procfs", "proc_path", help="procfs mount point (default /proc).")
@click.option("--path.sysfs", "sys_path", help="sysfs mount point (default /sys).")
@click.option("--path.rootfs", "rootfs_path", help="rootfs mount point (default /).")
@click.option("--path.udev.data", "udev_data_path", help="udev data directory (default /run/udev/data).")
@click.option("--web.max-requests", "web_max_requests", type=click.IntRange(min=1),
              help="Connections served at once, each by a worker thread; more get 503 (default 10).")
@click.option("--web.request-timeout", "web_request_timeout", type=click.FloatRange(min=0.1),
              help="Seconds a request may take to arrive, and its response to be read (default 30).")
@click.option("--state-file", help="Where log offsets are kept across restarts.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@_collector_flags
@click.pass_context
def main(ctx: click.Context, config_path: str | None, listen: str | None, log_flags: tuple[str, ...],
         zk_hosts: str | None, web_config_file: str | None, proc_path: str | None, sys_path: str | None,
         rootfs_path: str | None, udev_data_path: str | None, web_max_requests: int | None,
         web_request_timeout: float | None, state_file: str | None, log_level: str,
         **collector_flags: Any) -> None:
    """Serve node_exporter-compatible host metrics and log-derived counters on /metrics."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config_path) if config_path else ExporterConfig()
        for flag in log_flags:
            try:
                cfg.logs.append(parse_log_flag(flag))
            except ValueError as exc:
                raise ConfigError([str(exc)]) from exc
        if not cfg.tailing:
            from exporter.config import TAILING_DEFAULTS

            cfg.tailing = dict(TAILING_DEFAULTS)
        if listen:
            cfg.listen = listen
        try:
            listen_address.parse(cfg.listen, any_port=True)  # :0 is any free port (run() reports it)
        except ValueError as exc:
            raise ConfigError([f"--listen: {exc}"]) from None
        for attr, v in (("web_config_file", web_config_file), ("proc_path", proc_path),
                        ("sys_path", sys_path), ("rootfs_path", rootfs_path),
                        ("udev_data_path", udev_data_path), ("web_max_requests", web_max_requests),
                        ("web_request_timeout", web_request_timeout)):
            if v:
                setattr(cfg, attr, v)
        if state_file:
            cfg.tailing["state_file"] = state_file
        for key, v in collector_flags.items():
            if v is None:
                continue
            if key.startswith("opt__"):
                _, cname, opt = key.split("__", 2)
                if isinstance(v, str) and opt.endswith(("_exclude", "_include")) and v:
                    try:
                        re.compile(v)
                    except re.error as exc:
                        raise ConfigError([f"{option_flag(cname, opt, REGISTRY[cname].options[opt])}: "
                                           f"invalid regular expression: {exc}"]) from exc
                cfg.collectors.setdefault(cname, {})[opt] = v
            else:
                cfg.collectors.setdefault(key[len("collector_"):], {})["enabled"] = v
        if zk_hosts:
            cfg.zk = {**(cfg.zk or {}), "hosts": zk_hosts}
        if cfg.zk is not None and not cfg.zk.get("hosts"):
            raise ConfigError([f"{config_path}: zk.hosts: required (or pass --zk HOSTS)"])
        web = None
        if cfg.web_config_file:
            from exporter.webconfig import load_web_config

            web = load_web_config(cfg.web_config_file)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(f"error: {p}", err=True)
        sys.exit(2)
    run(cfg, web)


def run(cfg: ExporterConfig, web: Any = None) -> None:
    from exporter.app import Exporter, start_registration
    from exporter.server import MetricsServer

    try:
        exporter = Exporter(cfg)
    except (ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    try:
        server = MetricsServer(cfg.listen, exporter.scrape, web, workers=cfg.web_max_requests,
                               timeout=cfg.web_request_timeout)
    except OSError as exc:
        click.echo(f"error: cannot listen on {cfg.listen}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    exporter.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if cfg.zk:
        # Registrar.start() never blocks: ZooKeeper being down delays registration, not serving.
        try:
            # The port actually bound (``:0`` in tests picks one), on the configured host.
            host, _ = listen_address.parse(cfg.listen, any_port=True)
            start_registration(exporter, cfg.zk, listen_address.join(host, server.port))
            log.info("registering with ZooKeeper %s", cfg.zk["hosts"])
        except ImportError:
            log.error("--zk given but the discovery package is not installed; not registering")
        except Exception as exc:  # noqa: BLE001 - registration never stops the exporter
            log.error("ZooKeeper registration failed: %s", exc)
    server.start()
    scheme = "https" if web is not None and web.ssl_context is not None else "http"
    log.info("serving %s://%s/metrics (port %d)", scheme, cfg.listen, server.port)
    stop.wait()
    log.info("shutting down")
    server.stop()
    exporter.stop()


@main.command("check-config")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--web.config.file", "web_config_file", type=click.Path(dir_okay=False),
              help="exporter-toolkit web config to check as well.")
def check_config(config_path: str, web_config_file: str | None) -> None:
    """Validate the config (and web config) without serving; exit 2 on any problem."""
    problems: list[str] = []
    try:
        cfg = load_config(config_path)
        web_config_file = web_config_file or cfg.web_config_file
    except ConfigError as exc:
        problems += exc.problems
    if web_config_file:
        from exporter.webconfig import load_web_config

        try:
            load_web_config(web_config_file)
        except ConfigError as exc:
            problems += exc.problems
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        sys.exit(2)
    click.echo(f"{config_path}: OK")


if __name__ == "__main__":
    main()
