"""Config files the local stack writes under ``.run/`` before starting its processes:
ZooKeeper's zoo.cfg, each shard's Prometheus config (rendered from the shipped template as
production renders it), the global Prometheus config and its target files, Alertmanager's
config (every member posting to both routers over HTTPS), the routers' config and local
recipients, and the stack's own CA and router certificate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fleetmon.resources import prometheus_file, real_path
from fleetmon.stack.layout import (
    ALERTMANAGERS,
    EVAL_INTERVAL,
    HOST,
    ROUTERS,
    SCRAPE_INTERVAL,
    SECURITY,
    TLS_CA,
    replica_name,
    zk_insecure,
)


def write_yaml(path: Path, data: Any, mode: int = 0o644) -> None:
    import yaml

    from fleetmon.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(data, sort_keys=False), mode)


def shard_config(shard: str, port: dict[str, int], pdir: Path, replica: str = "r1") -> str:
    """The shard's Prometheus config, rendered from the shipped template (prometheus/shard.yml.tmpl)
    exactly as production renders it, with the shipped recording rules copied beside it. Every
    replica sends its alerts to every Alertmanager of the cluster."""
    rn = replica_name(shard, replica)
    from discovery.promconfig import render_shard_config

    shipped = pdir / "shard-rules"
    shipped.mkdir(parents=True, exist_ok=True)
    for name in ("recording.yml", "fleet.yml", "liveness.yml"):
        (shipped / name).write_bytes(prometheus_file("rules", name).read_bytes())
    return render_shard_config(
        shard=shard, replica=replica, targets_file="targets.json",
        sidecar_address=f"{HOST}:{port[f'sidecar-{rn}']}",
        prometheus_address=f"{HOST}:{port[f'prometheus-{rn}']}",
        rules_dir="rules", alertmanagers=[f"{HOST}:{port[a]}" for a in ALERTMANAGERS],
        scrape_interval=SCRAPE_INTERVAL, evaluation_interval=EVAL_INTERVAL,
        shipped_rules_glob="shard-rules/*.yml",
    )


def write_shard_config(shard: str, port: dict[str, int], pdir: Path, replica: str = "r1") -> None:
    from fleetmon.atomic import write_atomic

    write_atomic(pdir / "prometheus.yml", shard_config(shard, port, pdir, replica))


def stack_tls() -> tuple[Path, Path]:
    """The router's certificate and key, signed by the stack's CA (``.run/tls``), made once."""
    from fleetmon import tlscerts

    d = TLS_CA.parent
    cert, key = d / "alert-router.crt", d / "alert-router.key"
    if not (TLS_CA.exists() and cert.exists() and key.exists()):
        ca = tlscerts.make_ca(d, TLS_CA.stem)
        tlscerts.issue(ca, d, "alert-router", hosts=(HOST, "localhost"))
    return cert, key


def _router_scrape_over_https(path: Path) -> None:
    """The stack's router serves HTTPS: its scrape job needs the scheme and the stack CA."""
    import yaml

    cfg = yaml.safe_load(path.read_text())
    for job in cfg.get("scrape_configs") or []:
        if job.get("job_name") == "fleetmon-alert-router":
            job["scheme"] = "https"
            job["tls_config"] = {"ca_file": str(TLS_CA)}
            write_yaml(path, cfg)


def alertmanager_config(port: dict[str, int], token_file: Path) -> dict[str, Any]:
    import yaml

    src = prometheus_file("alertmanager.yml")
    cfg = yaml.safe_load(src.read_text()) if src.is_file() else {
        "route": {"receiver": "alert-router", "group_by": ["alertname", "notify", "severity"],
                  "group_wait": "10s", "group_interval": "30s", "repeat_interval": "4h"},
        "receivers": [{"name": "alert-router", "webhook_configs": [{"send_resolved": True}]}]}
    for rcv in cfg.get("receivers", []):
        hooks = rcv.get("webhook_configs", [])
        # One webhook per router (router HA): the shipped file lists two.
        while hooks and len(hooks) < len(ROUTERS):
            hooks.append(dict(hooks[0]))
        for i, wh in enumerate(hooks):
            wh["url"] = f"https://{HOST}:{port[ROUTERS[i % len(ROUTERS)]]}/api/v1/alerts"
            wh["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                                 "tls_config": {"ca_file": str(TLS_CA)}}
    return cfg


def console_dirs() -> tuple[Path, Path]:
    ours = real_path(prometheus_file("consoles"))
    libs = real_path(prometheus_file("console_libraries"))
    debian = Path("/usr/share/doc/prometheus/examples")
    return (ours if ours.is_dir() else debian / "consoles",
            libs if libs.is_dir() else debian / "console_libraries")


def readable_logs() -> list[str]:
    """This machine's real logs the exporter can read, as --log TYPE:PATH flags."""
    found = []
    for typ, path in (("syslog", "/var/log/syslog"), ("syslog", "/var/log/messages"),
                      ("nginx_access", "/var/log/nginx/access.log"), ("nginx_error", "/var/log/nginx/error.log"),
                      ("apache_access", "/var/log/apache2/access.log"),
                      ("apache_error", "/var/log/apache2/error.log")):
        if os.path.isfile(path) and os.access(path, os.R_OK):
            found.append(f"{typ}:{path}")
    return found




def zookeeper_config(zk_port: int, zdir: Path) -> Path:
    """ZooKeeper's zoo.cfg in ``zdir``: TLS on ``zk_port`` with the stack's keystore (made once
    in ``.run/security``), or plain when FLEETMON_ZK_INSECURE is set. Returns its path."""
    from fleetmon import zkkeys

    (zdir / "data").mkdir(parents=True, exist_ok=True)
    if zk_insecure():
        listen = [f"clientPort={zk_port}", f"clientPortAddress={HOST}"]
    else:
        zkkeys.ensure(SECURITY)
        listen = [f"secureClientPort={zk_port}", f"secureClientPortAddress={HOST}",
                  *zkkeys.zoo_cfg_tls_lines(SECURITY)]
    (zdir / "zoo.cfg").write_text("\n".join([
        "tickTime=2000", "initLimit=10", "syncLimit=5", f"dataDir={zdir / 'data'}", *listen,
        "admin.enableServer=false",
        "4lw.commands.whitelist=ruok,srvr,stat,mntr", "jute.maxbuffer=4194304", ""]))
    return zdir / "zoo.cfg"


def router_config(smtp_port: int, rdir: Path) -> Path:
    """The routers' config in ``rdir``, naming local recipients that send the ``oncall`` group
    to the mailbox. Returns the config's path."""
    # The mailbox address is the operator's (this stack's) to set, not the rule author's:
    # stack/rules.yaml names the group, the router's local_recipients fills it in.
    write_yaml(rdir / "local-recipients.yaml", {"recipients": {"oncall": [
        f"mailto://{HOST}:{smtp_port}?from=fleetmon@localhost&to=oncall@localhost&mode=insecure"]}}, 0o600)
    write_yaml(rdir / "alert-router.yml", {"local_recipients": str(rdir / "local-recipients.yaml")}, 0o600)
    return rdir / "alert-router.yml"


def global_config(port: dict[str, int], gdir: Path, shipped: Path) -> None:
    """The global Prometheus's directory ``gdir``: a copy of the shipped global.yml (scraping
    the routers over HTTPS), its rules and its target files (Alertmanagers, routers, and an
    empty list of live shards until ``fleet-discovery global`` writes it)."""
    # global.yml's paths are relative to its directory: give it a copy with rules/ and targets/.
    shutil.copy(shipped / "global.yml", gdir / "prometheus.yml")
    _router_scrape_over_https(gdir / "prometheus.yml")
    if (gdir / "rules").is_symlink() or (gdir / "rules").exists():
        (gdir / "rules").unlink() if (gdir / "rules").is_symlink() else shutil.rmtree(gdir / "rules")
    (gdir / "rules").symlink_to(shipped / "rules")
    tfiles = {"alertmanagers.json": [{"targets": [f"{HOST}:{port[a]}" for a in ALERTMANAGERS]}],
              "alert-router.json": [{"targets": [f"{HOST}:{port[r]}" for r in ROUTERS]}]}
    for fname, content in tfiles.items():
        (gdir / "targets" / fname).write_text(json.dumps(content) + "\n")
    if not (gdir / "targets" / "global-shards.json").exists():
        (gdir / "targets" / "global-shards.json").write_text("[]\n")
