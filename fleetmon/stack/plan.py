"""The process table of the local stack: which processes ``start`` runs, in order, each with
its command, readiness check, URL and description, and what is missing on this machine."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

from fleetmon.resources import prometheus_file, real_path
from fleetmon.stack import configs
from fleetmon.stack.health import http_ok, zk_ok
from fleetmon.stack.layout import (
    ALERTMANAGERS,
    HOST,
    REPLICAS,
    REPO,
    ROUTERS,
    RUN,
    SECURITY,
    SHARDS,
    TLS_CA,
    ZK_CLASSPATH,
    replica_name,
    zk_insecure,
)
from fleetmon.stack.processes import Proc, py


def have_module(mod: str) -> bool:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def plan(port: dict[str, int], n_hosts: int) -> tuple[list[Proc], list[str]]:
    """The processes to start, in order, and what is missing."""
    zk = f"{HOST}:{port['zookeeper']}"
    token_file = RUN / "alert-router" / "token"
    missing: list[str] = []
    procs: list[Proc] = []
    u = lambda name, path="": f"http://{HOST}:{port[name]}{path}"  # noqa: E731

    java = shutil.which("java")
    from fleetmon import zkkeys

    cp = [p for p in (*ZK_CLASSPATH, *zkkeys.NETTY_JARS) if os.path.exists(p)]
    if java and len(cp) >= 2:
        zdir = RUN / "zookeeper"
        zoo_cfg = configs.zookeeper_config(port["zookeeper"], zdir)
        if not zk_insecure():
            os.environ["FLEETMON_ZK_SECURITY_DIR"] = str(SECURITY)  # inherited by every child (child_env)
        procs.append(Proc("zookeeper", [java, "-Xmx256m", "-XX:+UseSerialGC", f"-Dzookeeper.log.dir={zdir}",
                                        "-Dzookeeper.root.logger=INFO,CONSOLE", "-Djute.maxbuffer=4194304",
                                        "-cp", ":".join(cp), "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                        str(zoo_cfg)],
                          lambda: zk_ok(port["zookeeper"]), zk, "ZooKeeper (hosts, shards, rule bundle)",
                          timeout=90))
    else:
        missing.append("ZooKeeper (java or /usr/share/java/zookeeper.jar missing: apt-get install zookeeper)")

    if have_module("aiosmtpd"):
        procs.append(Proc("mailbox", [sys.executable, "-m", "fleetmon.stack", "mailbox",
                                      "--smtp-port", str(port["smtp"]), "--http-port", str(port["mailbox"]),
                                      "--maildir", str(RUN / "mail")],
                          lambda: http_ok(u("mailbox", "/healthz")), u("mailbox", "/"),
                          f"Mailbox: mail the router sent (SMTP on {HOST}:{port['smtp']})"))
    else:
        missing.append("local SMTP server (the [stack] extra: pip install 'fleetmon[stack]')")

    if have_module("alert_router.cli"):
        RUN.joinpath("alert-router").mkdir(parents=True, exist_ok=True)
        cert, key = configs.stack_tls()
        rdir = RUN / "alert-router"
        router_yml = configs.router_config(port["smtp"], rdir)
        for i, name in enumerate(ROUTERS, start=1):
            # Two routers over HTTPS, each with its own queue, both receiving everything; ZooKeeper
            # claims make each alert state go out once (docs/availability.md).
            ru = lambda path="", name=name: f"https://{HOST}:{port[name]}{path}"  # noqa: E731
            procs.append(Proc(name, py("alert_router.cli", "alert-router", "serve",
                                       "--config", str(router_yml),
                                       "--listen", f"{HOST}:{port[name]}",
                                       "--recipients", str(RUN / "rules-compiled" / "recipients.yaml"),
                                       "--token-file", str(token_file),
                                       "--state-dir", str(rdir / f"state-{i}"),
                                       "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                       "--zk", zk),
                              lambda ru=ru: http_ok(ru("/healthz")), ru("/api/v1/deliveries"),
                              f"alert-router {i} deliveries over HTTPS (CA {TLS_CA}; Alertmanager webhook -> email)",
                              probe=ru("/healthz")))
    else:
        missing.append("alert-router (alert_router package)")

    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if am:
        adir = RUN / "alertmanager"
        configs.write_yaml(adir / "alertmanager.yml", configs.alertmanager_config(port, token_file))
        gossip = {a: port[f"{a}-gossip"] for a in ALERTMANAGERS}
        for name in ALERTMANAGERS:
            peers = [f"--cluster.peer={HOST}:{p}" for a, p in gossip.items() if a != name]
            procs.append(Proc(name, [am, f"--config.file={adir / 'alertmanager.yml'}",
                                     f"--storage.path={adir / ('data' if name == 'alertmanager' else 'data-2')}",
                                     f"--web.listen-address={HOST}:{port[name]}",
                                     f"--web.external-url={u(name)}",
                                     f"--cluster.listen-address={HOST}:{gossip[name]}",
                                     f"--cluster.advertise-address={HOST}:{gossip[name]}", *peers,
                                     "--cluster.settle-timeout=5s"],
                              lambda name=name: http_ok(u(name, "/-/ready")), u(name, "/"),
                              f"Alertmanager (cluster member {ALERTMANAGERS.index(name) + 1})"))
    else:
        missing.append("Alertmanager (apt-get install prometheus-alertmanager)")

    prom = shutil.which("prometheus")
    have_discovery = have_module("discovery.cli")
    for shard in SHARDS:
        for replica in REPLICAS[shard]:
            rn = replica_name(shard, replica)
            pdir = RUN / f"prometheus-{rn}"
            (pdir / "rules").mkdir(parents=True, exist_ok=True)
            if not (pdir / "targets.json").exists():
                (pdir / "targets.json").write_text("[]\n")
            pair = f" (replica {replica})" if len(REPLICAS[shard]) > 1 else ""
            if prom:
                configs.write_shard_config(shard, port, pdir, replica)
                name = f"prometheus-{rn}"
                procs.append(Proc(name, [prom, f"--config.file={pdir / 'prometheus.yml'}",
                                         f"--storage.tsdb.path={pdir / 'data'}",
                                         f"--web.listen-address={HOST}:{port[name]}", "--web.enable-lifecycle",
                                         f"--web.external-url={u(name)}", "--storage.tsdb.retention.time=2d"],
                                  lambda name=name: http_ok(u(name, "/-/ready")), u(name, "/classic/graph"),
                                  f"Prometheus shard {shard}{pair}", timeout=90, probe=u(name, "/-/ready")))
            if have_discovery:
                name = f"sidecar-{rn}"
                args = ["run", "--zk", zk, "--shard", shard, "--replica", replica, "--output",
                        str(pdir / "targets.json"), "--listen", f"{HOST}:{port[name]}"]
                if prom:
                    args += ["--prometheus-url", u(f"prometheus-{rn}"), "--rules-dir", str(pdir / "rules")]
                procs.append(Proc(name, py("discovery.cli", "fleet-discovery", *args),
                                  lambda name=name: http_ok(u(name, "/metrics")), u(name, "/metrics"),
                                  f"discovery sidecar of shard {shard}{pair} (+ rulesync agent)"))
    if not prom:
        missing.append("Prometheus (apt-get install prometheus)")
    if not have_discovery:
        missing.append("discovery sidecars (discovery package)")

    gdir = RUN / "prometheus-global"
    (gdir / "targets").mkdir(parents=True, exist_ok=True)
    shipped = real_path(prometheus_file())  # prometheus/ in a checkout, fleetmon/prometheus/ installed
    global_yml = shipped / "global.yml"
    if prom and global_yml.exists():
        configs.global_config(port, gdir, shipped)
        consoles, libs = configs.console_dirs()
        if have_discovery:
            procs.append(Proc("discovery-global", py("discovery.cli", "fleet-discovery", "global", "--zk", zk,
                                                     "--output", str(gdir / "targets" / "global-shards.json"),
                                                     "--listen", f"{HOST}:{port['discovery-global']}"),
                              lambda: http_ok(u("discovery-global", "/metrics")), u("discovery-global", "/metrics"),
                              "discovery of live shards for the global Prometheus"))
        page = "/consoles/index.html.example" if "doc/prometheus" in str(consoles) else "/consoles/index.html"
        procs.append(Proc("prometheus-global", [prom, f"--config.file={gdir / 'prometheus.yml'}",
                                                f"--storage.tsdb.path={gdir / 'data'}",
                                                f"--web.listen-address={HOST}:{port['prometheus-global']}",
                                                f"--web.external-url={u('prometheus-global')}",
                                                "--web.enable-lifecycle", f"--web.console.templates={consoles}",
                                                f"--web.console.libraries={libs}"],
                          lambda: http_ok(u("prometheus-global", "/-/ready")), u("prometheus-global", page),
                          "global Prometheus: console dashboards", timeout=90,
                          probe=u("prometheus-global", "/-/ready")))
        if not (shipped / "consoles").is_dir():
            missing.append("fleetmon console templates (prometheus/consoles): serving Debian's examples")
    elif prom:
        missing.append("global Prometheus (prometheus/global.yml)")

    if have_module("exporter.cli"):
        edir = RUN / "exporter"
        edir.mkdir(parents=True, exist_ok=True)
        args = ["--listen", f"{HOST}:{port['exporter']}", "--zk", zk, "--state-file", str(edir / "offsets.json")]
        for flag in configs.readable_logs():
            args += ["--log", flag]
        procs.append(Proc("exporter", py("exporter.cli", "fleet-exporter", *args),
                          lambda: http_ok(u("exporter", "/metrics"), timeout=5), u("exporter", "/metrics"),
                          "fleet-exporter for this machine"))
    else:
        missing.append("fleet-exporter (exporter package)")

    sim_args = ["--hosts", str(n_hosts), "--listen", f"{HOST}:{port['simulator']}",
                "--scenario", str(REPO / "stack" / "scenario.yaml")]
    if procs and procs[0].name == "zookeeper":
        sim_args += ["--zk", zk]
    procs.append(Proc("simulator", [sys.executable, "-m", "simulator", *sim_args],
                      lambda: http_ok(u("simulator", "/-/healthy")), u("simulator", "/"),
                      f"host simulator: {n_hosts} hosts, scenario stack/scenario.yaml"))
    return procs, missing


