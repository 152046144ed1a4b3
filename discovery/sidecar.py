"""The discovery sidecar: ZooKeeper -> one shard's file_sd JSON, beside each Prometheus.

It registers its shard replica as alive (``<root>/shards/<shard>/<replica>``), follows
hosts, liveness and shards with a ``FleetWatcher``, assigns hosts to live shards by
rendezvous hashing and writes its own shard's targets. Writes are throttled (the first
change after a quiet spell is written at once, later ones at most every ``debounce``
seconds, so a burst lands in a handful of writes), atomic and only-on-change. While ZooKeeper is unreachable or the tree is being
re-read the file is left untouched and ``fleetmon_discovery_stale`` says so.

``mode="global"`` writes, instead, one target per live shard replica's Prometheus (from
the ``prometheus_url`` in its znode) for a global Prometheus that federates the shards.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from discovery import layout, reaper, targets
from discovery.sharding import assign
from discovery.watcher import FleetWatcher
from fleetmon import listen as listen_address
from fleetmon import zksession
from fleetmon.atomic import write_if_changed
from fleetmon.zk import make_client

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9848"


def public_url(url: str | None) -> str | None:
    """The URL without user:password, fit to publish in ZooKeeper."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


class Sidecar:
    """One shard's sidecar (``mode="shard"``) or the global federation writer (``mode="global"``)."""

    def __init__(self, zk_hosts: str, output: str | os.PathLike[str], shard: str | None = None,
                 replica: str | None = None, root: str = layout.DEFAULT_ROOT,
                 listen: str | None = DEFAULT_LISTEN, prometheus_url: str | None = None,
                 rules_dir: str | os.PathLike[str] | None = None, debounce: float = 0.5,
                 session_timeout: float = 10.0, retention: float = 7 * 86400.0,
                 reap_interval: float = 60.0, mode: str = "shard", client: Any = None,
                 rules_public_key: str | os.PathLike[str] | None = None, rules_allow_unsigned: bool = False):
        if mode not in ("shard", "global"):
            raise ValueError(f"mode {mode!r}: expected shard or global")
        if mode == "shard":
            layout.validate_shard_name("--shard", shard)
        self.mode = mode
        self.shard = shard or ""
        self.replica = layout.validate_shard_name("--replica", replica or socket.gethostname().split(".")[0])
        self.root = layout.normalize_root(root)
        self.output = Path(output)
        self.listen = listen
        # Parsed here, not in start(): a bad --listen is refused before anything connects.
        try:
            self._listen_addr = listen_address.parse(listen) if listen else None
        except ValueError as exc:
            raise ValueError(f"--listen: {exc}") from None
        self.prometheus_url = prometheus_url
        self.rules_dir = Path(rules_dir) if rules_dir else None
        self.rules_public_key = rules_public_key
        self.rules_allow_unsigned = rules_allow_unsigned
        self.debounce = debounce
        self.retention = retention
        self.reap_interval = reap_interval
        # A global (federation) sidecar only reads; a shard sidecar holds its replica node.
        self.client = client or make_client(zk_hosts, timeout=session_timeout,
                                            role="sidecar" if mode == "shard" else "reader")
        self._own_client = client is None
        self.watcher = FleetWatcher(self.client, self.root, hosts=(mode == "shard"))
        self.rule_agent: Any = None
        self._stopping = threading.Event()
        self._maintain_wake = threading.Event()  # set by a watch on a foreign replica node
        self._threads: list[threading.Thread] = []
        self._http: Any = None
        self._replica_sid: int | None = None
        # Assignment cache: host -> shard, valid for one set of live shards.
        self._assign_shards: tuple[str, ...] = ()
        self._assign_cache: dict[str, str] = {}
        self._line_cache: dict[str, tuple[layout.HostSpec, str]] = {}
        # Figures for /metrics (written by the writer thread, read by scrapes).
        self.my_hosts: list[str] = []
        self.targets_in_file = 0
        self.live_shards: list[str] = []
        self.writes = 0
        self.write_errors = 0
        self.last_write = 0.0
        self.last_render = 0.0
        self.reaped = 0
        self.is_reaper = False
        self.started = time.time()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sidecar:
        if self.mode == "shard" and self.rules_dir is not None and self.prometheus_url:
            # Built first so that a broken rulesync install fails before anything runs.
            from rulesync import bundle as bundle_mod
            from rulesync.agent import RuleAgent  # another package; only needed in this mode

            key = None
            if self.rules_public_key is not None:
                try:
                    key = bundle_mod.load_public_key(self.rules_public_key)
                except bundle_mod.BundleError as exc:
                    raise ValueError(str(exc)) from None
            self.rule_agent = RuleAgent(self.client, root=self.root or "/", shard=self.shard,
                                        replica=self.replica, rules_dir=self.rules_dir,
                                        prometheus_url=self.prometheus_url, public_key=key,
                                        allow_unsigned=self.rules_allow_unsigned)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        if self._listen_addr is not None:
            host, port = self._listen_addr
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            registry.register(SidecarCollector(self))
            self._http, _ = start_http_server(port, addr=host, registry=registry)
        if self._own_client:
            self.client.start_async()  # never blocks; kazoo reconnects with bounded waits
        self.client.add_listener(self._on_state)
        self.watcher.start()
        if self.rule_agent is not None:
            self.rule_agent.start()
        loops = [(self._write_loop, "writer"), (self._maintain_loop, "maintainer")]
        if self.mode == "shard" and self.retention > 0:
            loops.append((self._reap_loop, "reaper"))
        for target, name in loops:
            t = threading.Thread(target=target, name=f"fleetmon-sidecar-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._maintain_wake.set()
        if self.rule_agent is not None:
            try:
                self.rule_agent.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("stopping the rule agent")
        self.watcher.stop()
        for t in self._threads:
            t.join(timeout=10)
        try:
            self.client.remove_listener(self._on_state)
        except Exception:  # noqa: BLE001
            pass
        if self._own_client:
            try:
                self.client.stop()  # closing the session removes our replica node at once
                self.client.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing kazoo client: %s", exc)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def wait(self) -> None:
        self._stopping.wait()

    def _on_state(self, state: str) -> None:
        if state != KazooState.CONNECTED:
            log.warning("ZooKeeper %s: keeping %s as it is until the view is current again",
                        state, self.output)

    # ------------------------------------------------------------------ rendering
    @property
    def stale(self) -> bool:
        return not self.watcher.ready

    def render(self) -> tuple[str, int]:
        """(file text, number of targets) for the current view."""
        _, hosts, live, replicas = self.watcher.snapshot()
        if self.mode == "global":
            groups = targets.global_targets(replicas)
            self.live_shards = live
            return targets.render(groups), len(groups)
        shards = tuple(sorted(set(live) | {self.shard}))
        if shards != self._assign_shards:
            self._assign_shards, self._assign_cache = shards, {}
        cache = self._assign_cache
        mine = []
        for name in sorted(hosts):
            s = cache.get(name)
            if s is None:
                s = cache[name] = assign(name, shards)  # type: ignore[assignment]
            if s == self.shard:
                mine.append(hosts[name])
        if len(cache) > 2 * len(hosts) + 1000:  # forget deregistered hosts now and then
            self._assign_cache = {n: cache[n] for n in hosts if n in cache}
        self.my_hosts = [h.name for h in mine]
        self.live_shards = list(shards)
        # One JSON line per host, cached while its znode data is unchanged: at 25,000 hosts
        # re-encoding every group on every write would dominate the registration latency.
        lines, fresh = self._line_cache, {}
        for h in mine:
            hit = lines.get(h.name)
            fresh[h.name] = hit if hit is not None and (hit[0] is h or hit[0] == h) else \
                (h, targets.render_group(targets.host_target(h)))
        self._line_cache = fresh
        return targets.join_lines([fresh[h.name][1] for h in mine]), len(mine)

    def write_now(self) -> bool:
        text, n = self.render()
        self.last_render = time.time()
        if n == 0 and self.mode == "shard" and not self.watcher.peek()[1].host_buckets \
                and self.output.exists() and self.output.stat().st_size > 3:
            # No <root>/hosts at all (a wrong --root, a wiped ZooKeeper) is not "every host was
            # deregistered": keep the last good targets rather than drop a whole shard.
            log.error("no hosts under %s/hosts; keeping %s as it is", self.root, self.output)
            return False
        changed = write_if_changed(self.output, text)
        if changed:
            self.writes += 1
            self.last_write = time.time()
            log.info("wrote %d targets to %s", n, self.output)
        self.targets_in_file = n
        return changed

    def _write_loop(self) -> None:
        """Throttled writes: the first change after a quiet spell is written at once, later ones
        at most every ``debounce`` seconds (a burst of 1,000 registrations: a handful of writes)."""
        seen = -1
        dirty = False
        last_attempt = float("-inf")
        while not self._stopping.is_set():
            wait = 0.25
            if dirty and self.watcher.ready:
                wait = max(0.005, min(0.25, last_attempt + self.debounce - time.monotonic()))
            v = self.watcher.wait_change(seen, timeout=wait)
            if v != seen:
                seen, dirty = v, True
            if not dirty or time.monotonic() - last_attempt < self.debounce:
                continue
            if not self.watcher.ready:
                continue  # keep the last good file; write once the view is current again
            last_attempt = time.monotonic()
            try:
                self.write_now()
                dirty = False  # changes made while rendering bumped the version: seen != v next time
            except OSError as exc:
                self.write_errors += 1
                log.error("cannot write %s: %s (keeping the old file; retrying)", self.output, exc)
            except Exception:  # noqa: BLE001 - the writer must survive anything
                self.write_errors += 1
                log.exception("rendering targets failed")

    # ------------------------------------------------------------------ maintenance
    def _maintain_loop(self) -> None:
        """Keep our shard replica node (re-created after session expiry)."""
        while not self._stopping.is_set():
            self._maintain_wake.wait(0.5)
            self._maintain_wake.clear()
            if self._stopping.is_set() or self.mode != "shard" or not self.client.connected:
                continue
            try:
                self._ensure_replica()
            except KazooException as exc:
                log.info("shard registration interrupted: %s", exc)
            except Exception:  # noqa: BLE001 - keep maintaining
                log.exception("shard registration failed")

    def _wake_maintainer(self, event: Any) -> None:
        # A kazoo watch callback: never block here, only wake the maintainer thread.
        self._maintain_wake.set()

    def _reap_loop(self) -> None:
        """Retention, on its own thread: a long pass must never delay the replica node."""
        next_reap = time.monotonic() + min(self.reap_interval, 5.0)
        lead = reaper.ReaperLock(self.client, self.root, f"{self.shard}/{self.replica}")
        while not self._stopping.wait(min(1.0, self.reap_interval)):
            if time.monotonic() < next_reap or not self.client.connected:
                continue
            next_reap = time.monotonic() + self.reap_interval
            try:
                self.is_reaper = lead.hold()
                if self.is_reaper:
                    self.reaped += len(reaper.reap_once(self.client, self.root, self.retention).deleted)
            except KazooException as exc:
                log.info("retention pass interrupted: %s", exc)
            except Exception:  # noqa: BLE001
                log.exception("retention pass failed")
        if lead.lock.is_acquired and self.client.connected:
            lead.release()  # a shared client keeps its session: let another sidecar lead now
        self.is_reaper = False

    def _ensure_replica(self) -> None:
        """Keep our ephemeral shard replica node, re-creating it after session expiry.

        A node held by another session (our previous process within its session timeout, or a
        twin started with the same --replica) is left alone (``fleetmon.zksession``). A watch on
        it wakes the maintainer as soon as ZooKeeper removes it, so the replica is absent for a
        round trip, not up to a maintainer period (an absent replica moves targets between shards).
        """
        sid = zksession.session_id(self.client)
        if sid is None:
            return
        if sid == self._replica_sid:
            _, view = self.watcher.peek()
            if not self.watcher.ready or self.replica in view.replicas.get(self.shard, {}):
                return
        path = layout.replica_path(self.root, self.shard, self.replica)
        data = layout.replica_data(self.shard, self.replica, public_url(self.prometheus_url))
        if zksession.claim_ephemeral(self.client, path, data) == zksession.FOREIGN:
            self._replica_sid = None  # not ours yet: the next pass claims it again
            # Kazoo keeps one watcher per (path, callable): re-arming on every pass adds none.
            if self.client.exists(path, watch=self._wake_maintainer) is None:
                self._maintain_wake.set()  # gone already
            return
        self._replica_sid = sid
        log.info("registered shard replica %s", path)


class SidecarCollector:
    """Fresh metric families on every scrape, from the sidecar's current figures."""

    def __init__(self, sidecar: Sidecar):
        self.s = sidecar

    def collect(self):
        s, w = self.s, self.s.watcher
        _, view = w.peek()
        labels = ["shard", "replica"]
        lv = [s.shard, s.replica]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(f"fleetmon_discovery_{name}", doc, labels=labels)
            g.add_metric(lv, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(f"fleetmon_discovery_{name}", doc, labels=labels)
            c.add_metric(lv, value)
            return c

        connected = 1.0 if w.state == KazooState.CONNECTED and s.client.connected else 0.0
        yield gauge("zk_connected", "1 while the ZooKeeper session is connected.", connected)
        st = GaugeMetricFamily("fleetmon_discovery_zk_state",
                               "ZooKeeper connection state (1 for the current one).",
                               labels=[*labels, "state"])
        for state in ("CONNECTED", "SUSPENDED", "LOST"):
            st.add_metric([*lv, state], 1.0 if w.state == state else 0.0)
        yield st
        yield gauge("stale", "1 while the targets file may be behind ZooKeeper (disconnected "
                    "or re-reading the tree); the file is then left untouched.", 1.0 if s.stale else 0.0)
        yield gauge("last_sync_timestamp_seconds", "Last time the view was known to follow ZooKeeper.",
                    w.last_sync)
        yield gauge("hosts_seen", "Valid inventory entries in ZooKeeper.", len(view.hosts))
        yield gauge("hosts_alive", "Liveness nodes in ZooKeeper (agents connected).", len(view.alive))
        yield gauge("invalid_entries", "Inventory entries skipped because their data is malformed.",
                    len(view.invalid))
        yield gauge("live_shards", "Shards with at least one live replica (including this one).",
                    len(s.live_shards))
        yield gauge("shard_hosts", "Hosts assigned to this shard.", len(s.my_hosts))
        yield gauge("targets_in_file", "Targets in the last rendered file.", s.targets_in_file)
        yield gauge("last_write_timestamp_seconds", "Last time the targets file was rewritten.",
                    s.last_write)
        yield counter("writes", "Targets file rewrites (content changed).", s.writes)
        yield counter("write_errors", "Failed targets file writes (old file kept).", s.write_errors)
        yield counter("session_expirations", "ZooKeeper sessions lost and replaced.", w.session_expirations)
        yield gauge("resync_duration_seconds", "Duration of the last full read of the tree.",
                    w.resync_seconds)
        yield gauge("is_reaper", "1 while this sidecar runs inventory retention.", 1.0 if s.is_reaper else 0.0)
        yield counter("reaped_entries", "Inventory entries removed by retention.", s.reaped)
        if s.mode == "shard":
            alive = GaugeMetricFamily(
                "fleetmon_discovery_agent_alive",
                "1 when the host's agent holds its liveness node, 0 when it is gone (agent down); "
                "join with up{} to tell agent-down from host-down.", labels=["instance"])
            alive_set = view.alive
            for name in list(s.my_hosts):
                alive.add_metric([name], 1.0 if name in alive_set else 0.0)
            yield alive
