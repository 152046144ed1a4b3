"""The discovery sidecar with kazoo's TreeCache recipe in place of ``FleetWatcher``: the reference
that ``bench.discovery_scale --watcher treecache`` measures against fleetmon's bucket watcher.

``TreeCacheWatcher`` keeps the same ``FleetView`` and public interface as
``discovery.watcher.FleetWatcher`` but fills it from three ``kazoo.recipe.cache.TreeCache``
instances (``<root>/hosts``, ``<root>/alive``, ``<root>/shards``) instead of fleetmon's own
one-shot watches. It lives in bench/ because it measured worse at 25,000 hosts (337-354 MiB
per sidecar against 76-79 MiB, a first read 4-5x slower, a worse registration -> file p99; see
docs/benchmarks.md, "discovery recipes") and is kept so that the comparison can be re-run.

Run a sidecar with it:  python -m bench.discovery_treecache run --zk ... (same flags as
``fleet-discovery run``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState
from kazoo.recipe.cache import TreeCache, TreeEvent

from discovery import layout
from discovery.watcher import FleetView, FleetWatcher, _parse_into
from fleetmon import zksession

_NODE_EVENTS = (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED, TreeEvent.NODE_REMOVED)


class TreeCacheWatcher(FleetWatcher):
    """``FleetWatcher``'s interface over kazoo TreeCaches (hosts, alive, shards)."""

    def __init__(self, client: Any, root: str = layout.DEFAULT_ROOT, hosts: bool = True):
        super().__init__(client, root, hosts)
        self._caches: dict[str, TreeCache] = {}
        self._t0 = 0.0

    def start(self) -> TreeCacheWatcher:
        self.client.add_listener(self._on_state)
        if self.client.connected:
            self.state = KazooState.CONNECTED
        # TreeCache.start() calls ensure_path, which needs a connection: start them from a thread.
        self._thread = threading.Thread(target=self._start_caches, name="fleetmon-treecache", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for cache in self._caches.values():
            try:
                cache.close()
            except KazooException:
                pass
        super().stop()

    @property
    def ready(self) -> bool:
        # TreeCache says INITIALIZED once, after its first complete read (and again only after a
        # session expiry); after a plain reconnection it re-reads every node without telling when
        # it is done, so the only completion signal is its private count of requests in flight.
        caches = list(self._caches.values())
        if self.state != KazooState.CONNECTED or len(caches) != (3 if self.watch_hosts else 1) \
                or not all(c._is_initialized for c in caches):
            return False
        if self._need_resync:
            if any(c._outstanding_ops for c in caches):
                return False
            self._need_resync = False
        return True

    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED and self.state != KazooState.CONNECTED:
            self._need_resync = True  # TreeCache re-reads every node now
        self.state = state
        with self._cond:
            self._cond.notify_all()

    def _start_caches(self) -> None:
        kinds = {"shards": layout.shards_path(self.root)}
        if self.watch_hosts:
            kinds = {"hosts": layout.hosts_path(self.root), "alive": layout.alive_path(self.root), **kinds}
        while not self._stopping.is_set():
            if not self.client.connected:
                self._stopping.wait(0.2)
                continue
            try:
                self._t0 = time.monotonic()
                for kind, path in kinds.items():
                    if kind in self._caches:
                        continue
                    cache = TreeCache(self.client, path)
                    cache.listen(lambda ev, kind=kind, base=path: self._on_event(kind, base, ev))
                    cache.start()
                    self._caches[kind] = cache
                return
            except KazooException as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stopping.wait(0.5)

    def _on_event(self, kind: str, base: str, ev: Any) -> None:
        # TreeCache's background thread (not kazoo's event thread): parsing here is allowed.
        t = ev.event_type
        if t == TreeEvent.INITIALIZED:
            self.resync_seconds = time.monotonic() - self._t0
            self.last_sync = time.time()
            with self._lock:
                self._bump()  # wake the writer: the view may be complete now
            return
        if t not in _NODE_EVENTS:
            return
        nd = ev.event_data
        rel = nd.path[len(base):].strip("/").split("/") if nd.path != base else []
        removed = t == TreeEvent.NODE_REMOVED
        with self._lock:
            v: FleetView = self._view
            if kind == "hosts" and len(rel) == 1:
                if removed:
                    v.host_buckets.pop(rel[0], None)
                else:
                    v.host_buckets.setdefault(rel[0], set())
            elif kind == "hosts" and len(rel) == 2:
                b, n = rel
                if removed:
                    v.hosts.pop(n, None)
                    v.invalid.pop(n, None)
                    v.host_buckets.get(b, set()).discard(n)
                else:
                    v.host_buckets.setdefault(b, set()).add(n)
                    _parse_into(v, n, nd.data, b)
            elif kind == "alive" and len(rel) == 2:
                b, n = rel
                if removed:
                    v.alive.discard(n)
                    v.alive_buckets.get(b, set()).discard(n)
                else:
                    v.alive.add(n)
                    v.alive_buckets.setdefault(b, set()).add(n)
            elif kind == "shards" and len(rel) == 1 and removed:
                v.replicas.pop(rel[0], None)
            elif kind == "shards" and len(rel) == 2:
                s, r = rel
                if removed:
                    v.replicas.get(s, {}).pop(r, None)
                elif zksession.is_ephemeral(nd.stat):  # as FleetWatcher: only a live session makes a shard live
                    v.replicas.setdefault(s, {})[r] = layout.parse_replica_data(nd.data)
            else:
                return
            self._bump()


if __name__ == "__main__":
    import discovery.sidecar

    discovery.sidecar.FleetWatcher = TreeCacheWatcher  # type: ignore[misc]
    from discovery.cli import main

    main()
