"""`fleet-discovery`: register hosts, run the shard sidecar, inspect and clean the inventory.

A thin layer: it parses flags, wires the Registrar / Sidecar / reaper, and maps
problems to exit codes (2 for bad input, 1 for an unreachable ZooKeeper).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import click
import yaml
from kazoo.exceptions import NoNodeError

from discovery import layout, reaper
from discovery.layout import InvalidHostData
from discovery.sharding import partition
from fleetmon import durations
from fleetmon import listen as listen_address
from fleetmon.zk import ZkSecurityError, make_client

log = logging.getLogger("discovery")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kazoo").setLevel(logging.WARNING)


def _wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return durations.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Checked here so that click names the flag; empty (no /metrics) passes."""
    if value:
        try:
            listen_address.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _connect(zk: str, timeout: float = 10.0, role: str = "reader") -> Any:
    try:
        client = make_client(zk, role=role)
    except ZkSecurityError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        client.start(timeout=timeout)
    except Exception as exc:  # kazoo raises its handler's timeout type
        raise click.ClickException(f"cannot reach ZooKeeper at {zk}: {exc}") from None
    return client




def _insecure(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    # Every client of this process reads it (fleetmon.zk.load_security); make_client warns.
    if value:
        os.environ["FLEETMON_ZK_INSECURE"] = "true"
    return value


def zk_option(f: Any) -> Any:
    f = click.option("--zk-insecure", is_flag=True, expose_value=False, callback=_insecure,
                     help="Plain, unauthenticated ZooKeeper with open ACLs (development only; "
                          "logged as a warning). Default: TLS + the role's credential.")(f)
    return click.option("--zk", required=True, envvar="FLEETMON_ZK",
                        help="ZooKeeper connect string host:port[,host:port...].")(f)
root_option = click.option("--root", default=layout.DEFAULT_ROOT, show_default=True,
                           help="Root znode of fleetmon.")
log_option = click.option("--log-level", default="info", show_default=True,
                          type=click.Choice(["debug", "info", "warning", "error"]))


@click.group()
def main() -> None:
    """fleetmon discovery: ZooKeeper registration and sharded Prometheus file_sd targets."""


@main.command()
@zk_option
@click.option("--shard", required=True, help="Shard name (the same for both replicas of an HA pair).")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file_sd JSON file this shard's Prometheus reads.")
@click.option("--replica", default=None, help="Replica name within the shard [default: short hostname].")
@root_option
@click.option("--listen", default="127.0.0.1:9848", show_default=True, callback=_listen,
              help="HOST:PORT of the sidecar's /metrics; empty to disable.")
@click.option("--prometheus-url", default=None, help="URL of this replica's Prometheus (published in "
              "the shard znode for federation; needed by the rule agent).")
@click.option("--rules-dir", default=None, help="With --prometheus-url: run the rulesync agent "
              "writing rule files here.")
@click.option("--rules-public-key", default=None, type=click.Path(dir_okay=False),
              help="Ed25519 public key (PEM) rule bundles must be signed with [default: "
                   "$FLEETMON_RULES_PUBLIC_KEY, else rules-signing.pub in $FLEETMON_ZK_SECURITY_DIR].")
@click.option("--rules-allow-unsigned", is_flag=True,
              help="Load bundles without checking signatures (development only; logged).")
@click.option("--debounce", default=0.5, show_default=True, type=click.FloatRange(0, 60),
              help="Minimum seconds between two writes of the targets file (a burst is coalesced).")
@click.option("--session-timeout", default=10.0, show_default=True, type=click.FloatRange(1, 60))
@click.option("--retention", default="7d", show_default=True, callback=_duration,
              help="Remove inventory entries whose liveness is gone longer than this (0 disables). "
                   "Only the sidecar holding <root>/reaper does it.")
@click.option("--reap-interval", default="60s", show_default=True, callback=_duration)
@log_option
def run(zk: str, shard: str, output: Path, replica: str | None, root: str, listen: str,
        prometheus_url: str | None, rules_dir: str | None, rules_public_key: str | None,
        rules_allow_unsigned: bool, debounce: float, session_timeout: float,
        retention: float, reap_interval: float, log_level: str) -> None:
    """Run the shard sidecar: write SHARD's targets to OUTPUT until stopped."""
    from discovery.sidecar import Sidecar

    _setup_logging(log_level)
    try:
        sc = Sidecar(zk, output, shard=shard, replica=replica, root=root, listen=listen or None,
                     prometheus_url=prometheus_url or None, rules_dir=rules_dir or None, debounce=debounce,
                     session_timeout=session_timeout, retention=retention, reap_interval=reap_interval,
                     rules_public_key=rules_public_key, rules_allow_unsigned=rules_allow_unsigned)
    except (InvalidHostData, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    except ZkSecurityError as exc:
        raise click.ClickException(str(exc)) from None
    _start_or_exit(sc, listen)
    log.info("sidecar for shard %s replica %s writing %s", sc.shard, sc.replica, output)
    try:
        _wait_for_signal()
    finally:
        sc.stop()


@main.command("global")
@zk_option
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@root_option
@click.option("--listen", default="", callback=_listen, help="HOST:PORT for /metrics (default: none).")
@click.option("--debounce", default=0.5, show_default=True, type=click.FloatRange(0, 60))
@click.option("--session-timeout", default=10.0, show_default=True, type=click.FloatRange(1, 60))
@log_option
def global_(zk: str, output: Path, root: str, listen: str, debounce: float, session_timeout: float,
            log_level: str) -> None:
    """Write a file_sd JSON of every live shard replica's Prometheus (for a federating Prometheus)."""
    from discovery.sidecar import Sidecar

    _setup_logging(log_level)
    try:
        sc = Sidecar(zk, output, root=root, listen=listen or None, debounce=debounce,
                     session_timeout=session_timeout, mode="global", replica="global")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except ZkSecurityError as exc:
        raise click.ClickException(str(exc)) from None
    _start_or_exit(sc, listen)
    try:
        _wait_for_signal()
    finally:
        sc.stop()


def _start_or_exit(sc: Any, listen: str) -> None:
    try:
        sc.start()
    except ImportError as exc:
        sc.stop()
        raise click.ClickException(f"--rules-dir needs the rulesync package: {exc}") from None
    except OSError as exc:
        sc.stop()
        raise click.ClickException(f"cannot start the sidecar (--listen {listen}, --output {sc.output}): "
                                   f"{exc.strerror or exc}") from None


def _parse_label(text: str, where: str) -> tuple[str, str]:
    k, sep, v = text.partition("=")
    if not sep or not k:
        raise click.BadParameter(f"{where}: label {text!r} is not k=v")
    return k.strip(), v.strip()


def load_targets_file(path: Path, default_labels: dict[str, str],
                      metrics_path: str) -> list[layout.HostSpec]:
    """Targets from ``path``: a YAML list of {name, address, labels, metrics_path}, or lines of
    ``[NAME] ADDRESS [k=v ...]`` (name defaults to the address's host). Errors name file:line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror}") from None
    specs: list[layout.HostSpec] = []
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    if path.suffix in (".yml", ".yaml") or first.startswith("-"):
        try:
            items = yaml.safe_load(text) or []
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{path}: not YAML: {exc}") from None
        if not isinstance(items, list):
            raise click.BadParameter(f"{path}: expected a YAML list of targets")
        for i, item in enumerate(items):
            where = f"{path}: item {i + 1}"
            if not isinstance(item, dict) or "address" not in item:
                raise click.BadParameter(f"{where}: expected a mapping with at least `address`")
            addr = str(item["address"])
            name = str(item.get("name") or addr.rpartition(":")[0].strip("[]"))
            labels = {**default_labels, **(item.get("labels") or {})}
            try:
                specs.append(layout.make_host(name, addr, labels, item.get("metrics_path", metrics_path)))
            except InvalidHostData as exc:
                raise click.BadParameter(f"{where}: {exc}") from None
        return specs
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        where = f"{path}:{lineno}"
        plain = [w for w in words if "=" not in w]
        labels = dict(default_labels)
        labels.update(_parse_label(w, where) for w in words if "=" in w)
        if len(plain) == 1:
            name, addr = plain[0].rpartition(":")[0].strip("[]"), plain[0]
        elif len(plain) == 2:
            name, addr = plain
        else:
            raise click.BadParameter(f"{where}: expected [NAME] HOST:PORT [k=v ...]")
        try:
            specs.append(layout.make_host(name, addr, labels, metrics_path))
        except InvalidHostData as exc:
            raise click.BadParameter(f"{where}: {exc}") from None
    return specs


@main.command()
@zk_option
@click.option("--address", default=None, help="HOST:PORT of the exporter to scrape.")
@click.option("--label", "labels", multiple=True, help="k=v host label (repeatable; also the default "
              "for every target of --from-file).")
@click.option("--name", default=None, help="Host name (the `instance` label) [default: short hostname].")
@click.option("--metrics-path", default=layout.DEFAULT_METRICS_PATH, show_default=True)
@click.option("--from-file", "from_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Targets, one per line ([NAME] HOST:PORT [k=v ...]) or a YAML list.")
@root_option
@click.option("--session-timeout", default=10.0, show_default=True, type=click.FloatRange(1, 60))
@log_option
def register(zk: str, address: str | None, labels: tuple[str, ...], name: str | None, metrics_path: str,
             from_file: Path | None, root: str, session_timeout: float, log_level: str) -> None:
    """Register targets (inventory + liveness) and hold their liveness until SIGTERM/SIGINT."""
    from discovery.registry import Registrar

    _setup_logging(log_level)
    default_labels = dict(_parse_label(x, "--label") for x in labels)
    specs: list[layout.HostSpec] = []
    if from_file is not None:
        specs.extend(load_targets_file(from_file, default_labels, metrics_path))
    if address is not None:
        try:
            specs.append(layout.make_host(name or socket.gethostname().split(".")[0], address,
                                          default_labels, metrics_path))
        except InvalidHostData as exc:
            raise click.BadParameter(str(exc)) from None
    if not specs:
        raise click.UsageError("give --address or --from-file")
    dupes = {s.name for s in specs if sum(1 for t in specs if t.name == s.name) > 1}
    if dupes:
        raise click.BadParameter(f"duplicate names: {', '.join(sorted(dupes))}")
    try:
        reg = Registrar(zk, root=root, session_timeout=session_timeout, agent="fleet-discovery-register")
    except ZkSecurityError as exc:
        raise click.ClickException(str(exc)) from None
    reg.start()
    reg.add_many(specs)
    if reg.wait(timeout=max(10.0, len(specs) / 500)):
        click.echo(f"registered {len(specs)} target(s); holding liveness until stopped", err=True)
    else:
        click.echo(f"not yet registered ({reg.status()['last_error'] or 'ZooKeeper unreachable'}); "
                   "retrying in the background", err=True)
    try:
        _wait_for_signal()
    finally:
        reg.stop(deregister=False)


@main.command()
@zk_option
@root_option
@click.argument("names", nargs=-1, required=True)
def deregister(zk: str, root: str, names: tuple[str, ...]) -> None:
    """Remove hosts from the fleet (inventory, liveness, retention marker): their targets go away."""
    for n in names:
        try:
            layout.validate_name(n)
        except InvalidHostData as exc:
            raise click.BadParameter(str(exc)) from None
    client = _connect(zk, role="registrar")
    missing = []
    try:
        for n in names:
            found = False
            for p in (layout.host_alive_path(root, n), layout.host_absent_path(root, n),
                      layout.host_path(root, n)):
                try:
                    client.delete(p)
                    found = found or p == layout.host_path(root, n)
                except NoNodeError:
                    pass
            if not found:
                missing.append(n)
    finally:
        client.stop()
        client.close()
    click.echo(f"deregistered {len(names) - len(missing)} host(s)")
    if missing:
        click.echo(f"not registered: {', '.join(missing)}", err=True)
        sys.exit(1)


def fleet_status(view: Any) -> dict[str, Any]:
    """Hosts per live shard, unassigned and invalid entries, agents down (pure, for `status`)."""
    shards = view.live_shards()
    parts = partition(view.hosts, shards)
    return {
        "shards": {s: {"replicas": sorted(view.replicas.get(s, {})), "hosts": len(parts[s]),
                       "agents_down": sum(1 for h in parts[s] if h not in view.alive)} for s in shards},
        "hosts": len(view.hosts),
        "alive": len(view.alive & set(view.hosts)),
        "unassigned": sorted(view.hosts) if not shards else [],
        "invalid": dict(sorted(view.invalid.items())),
        "alive_without_inventory": sorted(view.alive - set(view.hosts) - set(view.invalid)),
    }


@main.command()
@zk_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(zk: str, root: str, as_json: bool) -> None:
    """Print hosts per shard, and unassigned and invalid entries."""
    from discovery.watcher import load_view

    client = _connect(zk)
    try:
        st = fleet_status(load_view(client, root))
    finally:
        client.stop()
        client.close()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"hosts: {st['hosts']} ({st['alive']} agents alive), invalid: {len(st['invalid'])}")
    click.echo(f"{'shard':<20} {'hosts':>7} {'agents down':>12}  replicas")
    for s, info in st["shards"].items():
        click.echo(f"{s:<20} {info['hosts']:>7} {info['agents_down']:>12}  {','.join(info['replicas'])}")
    if st["unassigned"]:
        click.echo(f"unassigned (no live shard): {len(st['unassigned'])}")
    for n, err in st["invalid"].items():
        click.echo(f"invalid {n}: {err}")
    for n in st["alive_without_inventory"]:
        click.echo(f"alive without inventory: {n}")


@main.command()
@zk_option
@root_option
@click.option("--retention", default="7d", show_default=True, callback=_duration)
@click.option("--dry-run", is_flag=True, help="Report what would be marked or deleted; change nothing.")
def gc(zk: str, root: str, retention: float, dry_run: bool) -> None:
    """One retention pass (what the elected sidecar does every --reap-interval)."""
    client = _connect(zk, role="sidecar")
    try:
        res = reaper.reap_once(client, root, retention, dry_run=dry_run)
    finally:
        client.stop()
        client.close()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"marked absent: {len(res.marked)}, back alive: {len(res.cleared)}, "
               f"waiting: {len(res.waiting)}, {verb}: {len(res.deleted)}")
    for n in res.deleted:
        click.echo(f"{verb} {n}")


@main.group()
def acl() -> None:
    """Check or repair the ACLs of an existing fleetmon tree (admin credential)."""


def _acl_session(zk: str, root: str) -> tuple[Any, Any]:
    from fleetmon.zk import load_security

    try:
        sec = load_security("admin")
    except ZkSecurityError as exc:
        raise click.ClickException(str(exc)) from None
    if sec.insecure:
        raise click.ClickException("ACLs are not used in insecure mode; nothing to check")
    return _connect(zk, role="admin"), sec.policy()


@acl.command("check")
@zk_option
@root_option
def acl_check(zk: str, root: str) -> None:
    """List every znode under ROOT whose ACL is not the policy's (exit 1 if any)."""
    from fleetmon import zkaudit

    client, policy = _acl_session(zk, root)
    try:
        problems = zkaudit.check(client, layout.normalize_root(root) or "/", policy)
    except NoNodeError:
        raise click.ClickException(f"{root} does not exist") from None
    finally:
        client.stop()
        client.close()
    for prob in problems:
        click.echo(str(prob))
    click.echo(f"{len(problems)} znode(s) with a wrong ACL" if problems else "all ACLs match the policy")
    sys.exit(1 if problems else 0)


@acl.command("repair")
@zk_option
@root_option
def acl_repair(zk: str, root: str) -> None:
    """Create ROOT's subtrees with their ACLs and set the policy ACL on every znode that differs."""
    from fleetmon import zkaudit

    client, policy = _acl_session(zk, root)
    try:
        created, fixed = zkaudit.repair(client, layout.normalize_root(root) or "/", policy)
    finally:
        client.stop()
        client.close()
    for p in created:
        click.echo(f"created {p}")
    for prob in fixed:
        click.echo(f"fixed {prob}")
    click.echo(f"repaired {len(fixed)} ACL(s), created {len(created)} node(s)")


@main.command("render-config")
@click.option("--shard", required=True)
@click.option("--replica", required=True)
@click.option("--targets-file", required=True, help="The sidecar's --output.")
@click.option("--sidecar-address", default="127.0.0.1:9848", show_default=True)
@click.option("--prometheus-address", default="127.0.0.1:9090", show_default=True)
@click.option("--rules-dir", default="/etc/fleetmon/rules", show_default=True)
@click.option("--alertmanager", "alertmanagers", multiple=True, help="HOST:PORT (repeatable).")
@click.option("--scrape-interval", default="15s", show_default=True)
@click.option("--shipped-rules", default="shard-rules/*.yml", show_default=True,
              help="Glob of the shipped recording rules (recording.yml, fleet.yml), relative to the config.")
@click.option("--template", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Template to render [default: prometheus/shard.yml.tmpl].")
def render_config(shard: str, replica: str, targets_file: str, sidecar_address: str, prometheus_address: str,
                  rules_dir: str, alertmanagers: tuple[str, ...], scrape_interval: str, shipped_rules: str,
                  template: str | None) -> None:
    """Print the Prometheus config of one shard replica (check it with `promtool check config`)."""
    from discovery.promconfig import render_shard_config

    click.echo(render_shard_config(shard, replica, targets_file, sidecar_address, prometheus_address,
                                   rules_dir, list(alertmanagers), scrape_interval, template=template,
                                   shipped_rules_glob=shipped_rules),
               nl=False)
