"""``alert-router``: serve the webhook receiver, or check a configuration."""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
from pathlib import Path

import click

from .config import Config, ConfigError, load_config, parse_listen, read_token
from .recipients import RecipientsError, RecipientStore, SecretScope
from .serving import check_transport, tls_context
from .serving import serve as serve_app

log = logging.getLogger("alert_router")


def _load(config_file: str | None, **overrides: object) -> Config:
    cfg = load_config(config_file)
    cfg = cfg.with_overrides(**overrides)
    parse_listen(cfg.listen)
    return cfg


@click.group()
def main() -> None:
    """Durable Alertmanager webhook receiver delivering through Apprise."""


_opts = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML configuration file."),
    click.option("--listen", help="HOST:PORT to listen on (default 127.0.0.1:9849)."),
    click.option("--recipients", type=click.Path(dir_okay=False), help="Recipients YAML written by rulesync."),
    click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token."),
    click.option("--state-dir", type=click.Path(file_okay=False), help="Directory of the durable queue."),
]


def _with_opts(f):
    for o in reversed(_opts):
        f = o(f)
    return f


@main.command()
@_with_opts
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--tls-cert-file", type=click.Path(dir_okay=False),
              help="Serve HTTPS with this certificate (PEM, chain after the leaf); needs --tls-key-file.")
@click.option("--tls-key-file", type=click.Path(dir_okay=False), help="Private key of --tls-cert-file.")
@click.option("--zk", help="ZooKeeper hosts (h1:2281,h2:2281): coordinate deliveries with the other routers "
                           "(router HA). Without it this router works alone.")
def serve(config_file, listen, recipients, token_file, state_dir, log_level, tls_cert_file=None,
          tls_key_file=None, zk=None) -> None:
    """Receive Alertmanager webhooks on POST /api/v1/alerts and deliver them."""
    from prometheus_client import disable_created_metrics

    from .app import create_app
    from .logs import setup_logging

    disable_created_metrics()  # no *_created series: half the exposition, no use in alerting
    holder: dict = {}
    setup_logging(log_level, lambda: holder["state"].secrets() if "state" in holder else frozenset())
    try:
        cfg = _load(config_file, listen=listen, recipients=recipients, token_file=token_file,
                    state_dir=state_dir, tls_cert_file=tls_cert_file, tls_key_file=tls_key_file, zk=zk)
        if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
            raise ConfigError("tls_cert_file and tls_key_file: set both or neither")
        check_transport(cfg)
        if cfg.tls_cert_file:
            tls_context(cfg)  # unusable key material: exit 2 before opening the queue
        app = create_app(cfg)
    except (ConfigError, RecipientsError) as exc:
        click.echo(f"alert-router: {exc}", err=True)
        sys.exit(2)
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"alert-router: cannot open the queue in {state_dir or cfg.state_dir}: {exc}", err=True)
        sys.exit(1)
    state = holder["state"] = app.extensions["alert_router"]
    host, port = cfg.host_port

    def _term(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    log.info("alert-router listening on %s:%d (queue %s)", host, port, state.store.path)
    try:
        serve_app(app, cfg)
    finally:
        log.info("alert-router stopping")
        state.close()


@main.command()
@_with_opts
def check(config_file, listen, recipients, token_file, state_dir) -> None:
    """Validate the configuration and recipients file; exit 0 if usable."""
    try:
        cfg = _load(config_file, listen=listen, recipients=recipients, token_file=token_file,
                    state_dir=state_dir)
        check_transport(cfg)
        if cfg.tls_cert_file:
            tls_context(cfg)
        if cfg.token_file:
            read_token(cfg.token_file)
        elif not cfg.allow_unauthenticated:
            raise ConfigError("token_file is required (or set allow_unauthenticated: true)")
        groups: dict[str, list[str]] = {}
        if cfg.recipients:
            store = RecipientStore(cfg.recipients, scope=SecretScope(cfg.secret_dir, cfg.secret_env_prefix),
                                   local_path=cfg.local_recipients)
            groups = store.read().masked()
    except (ConfigError, RecipientsError) as exc:
        click.echo(f"alert-router: {exc}", err=True)
        sys.exit(2)
    click.echo(f"config ok: listen {cfg.listen}, state_dir {cfg.state_dir}")
    for g, urls in groups.items():
        click.echo(f"  {g}: {', '.join(urls) or '(no URLs)'}")
    if cfg.recipients and "default" not in groups:
        click.echo("warning: no 'default' group: alerts without a known notify group will not be delivered",
                   err=True)


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML configuration file.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Directory of the durable queue.")
@click.option("--id", "ids", type=int, multiple=True, help="Delivery id (repeatable); default: every dead letter.")
def requeue(config_file, state_dir, ids) -> None:
    """Retry dead-lettered deliveries (after fixing a recipient); a running router sends them."""
    from .store import Store

    try:
        cfg = _load(config_file, state_dir=state_dir)
    except ConfigError as exc:
        click.echo(f"alert-router: {exc}", err=True)
        sys.exit(2)
    if not (Path(cfg.state_dir) / "queue.sqlite3").exists():
        click.echo(f"alert-router: no queue in {cfg.state_dir}", err=True)
        sys.exit(2)
    n = Store(cfg.state_dir, cfg.synchronous).requeue_dead(list(ids) or None)
    click.echo(f"requeued {n} dead-lettered deliveries")


if __name__ == "__main__":
    main()
