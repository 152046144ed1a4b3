"""A watched, in-memory mirror of the discovery znodes (hosts, liveness, shards).

``load_view`` reads the whole tree once (bucket by bucket, data reads pipelined with
``get_async``). ``FleetWatcher`` keeps a view current: one-shot ZooKeeper watches on
each bucket (children), each host (data) and the shards, whose callbacks only queue the
changed path; a single worker thread re-reads just that path. After a new session
(watches are gone) it loads a complete fresh view and swaps it in whole, so readers
never see a half-loaded tree. ``ready`` is False while disconnected or resyncing:
the sidecar must then keep its last file untouched.

Why not kazoo's recipes here (measured; docs/benchmarks.md, "discovery recipes"):
- ``TreeCache`` sets a data *and* a child watch, with a request each, on every znode,
  leaves included (25,000 hosts + 25,000 liveness nodes: 100,000 requests and 50,523
  watched paths per sidecar, against 25,004 here), keeps its own copy of every node beside
  the parsed view, and after a plain reconnection re-reads every node without any signal
  that it has finished (``INITIALIZED`` comes only once per session), so ``ready`` could
  not be told. At 25,000 hosts on the loaded 2-core machine its sidecars used 337-354 MiB
  (this watcher: 76-79 MiB), took 85-100 s for their first read (this watcher: 17-22 s),
  had a worse registration -> file p99 (776 ms against 298-440 ms), and in one run lost
  their session mid-read. Re-run the comparison with
  ``python -m bench.discovery_scale --watcher treecache`` (bench/discovery_treecache.py).
- ``ChildrenWatch`` per bucket would replace only the 512 bucket listings; host data still
  needs a watch per host, and ``DataWatch`` reads each host with its own blocking round
  trip, adds a connection listener per host and spawns one thread per host on every
  reconnection (25,000 threads).
kazoo never re-sends watches on reconnection (it has no SetWatches), hence the full re-read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import ConnectionClosedError, KazooException, NoNodeError
from kazoo.protocol.states import EventType, KazooState

from discovery import layout
from discovery.layout import HostSpec, InvalidHostData
from fleetmon import zksession

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 15.0
PIPELINE_WINDOW = 2000


@dataclass
class FleetView:
    """Everything discovery knows at one moment."""

    hosts: dict[str, HostSpec] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)  # name -> validation error
    alive: set[str] = field(default_factory=set)
    # shard -> replica -> replica znode JSON (live replicas only)
    replicas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # bucket -> names listed there (hosts and alive), for incremental diffs
    host_buckets: dict[str, set[str]] = field(default_factory=dict)
    alive_buckets: dict[str, set[str]] = field(default_factory=dict)

    def live_shards(self) -> list[str]:
        return sorted(s for s, reps in self.replicas.items() if reps)

    def copy(self) -> FleetView:
        return FleetView(dict(self.hosts), dict(self.invalid), set(self.alive),
                         {s: dict(r) for s, r in self.replicas.items()},
                         {b: set(n) for b, n in self.host_buckets.items()},
                         {b: set(n) for b, n in self.alive_buckets.items()})


def _children(client: Any, path: str, watch: Callable | None) -> list[str] | None:
    """Children of ``path`` with a watch; None (and an existence watch) if it does not exist."""
    try:
        return client.get_children(path, watch=watch)
    except NoNodeError:
        if watch is not None and client.exists(path, watch=watch) is not None:
            return client.get_children(path, watch=watch)
        return None


def _parse_into(view: FleetView, name: str, data: bytes | None, bucket: str) -> None:
    """Parse host data into ``view``. Garbage is recorded in ``invalid``; a host that had good
    data keeps its last good entry (and stays a target) rather than vanishing."""
    try:
        if layout.bucket_of(name) != bucket:
            raise InvalidHostData(f"bucket: {name} belongs in bucket {layout.bucket_of(name)}, not {bucket}")
        view.hosts[name] = layout.parse_host_data(name, data)
        view.invalid.pop(name, None)
    except InvalidHostData as exc:
        view.invalid[name] = str(exc)
        log.warning("skipping host %s: %s", name, exc)


def _load_hosts(client: Any, root: str, view: FleetView, items: list[tuple[str, str]],
                watch: Callable | None) -> None:
    """Read and parse the data of (bucket, name) hosts, all requests in flight at once
    (one round trip instead of one per host or per bucket)."""
    for i in range(0, len(items), PIPELINE_WINDOW):
        window = [(b, n, client.get_async(f"{layout.host_bucket_path(root, b)}/{n}", watch=watch))
                  for b, n in items[i:i + PIPELINE_WINDOW]]
        for b, n, res in window:
            try:
                data, _stat = res.get(timeout=REPLY_TIMEOUT)
            except NoNodeError:
                view.host_buckets.get(b, set()).discard(n)
                continue
            _parse_into(view, n, data, b)


def _list_buckets(client: Any, parent: str, watch: Callable | None) -> dict[str, set[str]]:
    """{bucket: children} for every bucket under ``parent``, listed in one pipelined round."""
    buckets = _children(client, parent, watch) or []
    listed = [(b, client.get_children_async(f"{parent}/{b}", watch=watch)) for b in buckets]
    out: dict[str, set[str]] = {}
    for b, res in listed:
        try:
            out[b] = set(res.get(timeout=REPLY_TIMEOUT))
        except NoNodeError:
            continue
    return out


def _load_shard(client: Any, root: str, view: FleetView, shard: str, watch: Callable | None) -> None:
    reps = _children(client, layout.shard_path(root, shard), watch) or []
    results = [(r, client.get_async(layout.replica_path(root, shard, r), watch=watch)) for r in reps]
    out: dict[str, dict[str, Any]] = {}
    for r, res in results:
        try:
            data, stat = res.get(timeout=REPLY_TIMEOUT)
        except NoNodeError:
            continue
        if not zksession.is_ephemeral(stat):
            # Only a running sidecar's session can make a shard live; a persistent node left by
            # hand would otherwise claim hosts that no Prometheus scrapes.
            log.warning("ignoring %s: not an ephemeral node", layout.replica_path(root, shard, r))
            continue
        out[r] = layout.parse_replica_data(data)
    view.replicas[shard] = out


def load_view(client: Any, root: str, watch: Callable | None = None, hosts: bool = True) -> FleetView:
    """Read the complete discovery tree under ``root`` (setting ``watch`` everywhere if given)."""
    root = layout.normalize_root(root)
    view = FleetView()
    if hosts:
        view.host_buckets = _list_buckets(client, layout.hosts_path(root), watch)
        _load_hosts(client, root, view, [(b, n) for b, names in sorted(view.host_buckets.items())
                                         for n in sorted(names)], watch)
        view.alive_buckets = _list_buckets(client, layout.alive_path(root), watch)
        for names in view.alive_buckets.values():
            view.alive |= names
    for s in _children(client, layout.shards_path(root), watch) or []:
        _load_shard(client, root, view, s, watch)
    return view


class FleetWatcher:
    """Keep a ``FleetView`` current with watches; ``wait_change`` lets a writer follow it."""

    def __init__(self, client: Any, root: str = layout.DEFAULT_ROOT, hosts: bool = True):
        self.client = client
        self.root = layout.normalize_root(root)
        self.watch_hosts = hosts
        self._view = FleetView()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[tuple[str, ...]] = []
        self._queued: set[tuple[str, ...]] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session_id: int | None = None
        self._synced = False
        self._need_resync = False
        self.version = 0
        self.state = KazooState.LOST
        self.session_expirations = 0
        self.last_sync = 0.0  # wall time of the last moment the view was known current
        self.resync_seconds = 0.0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ public
    def start(self) -> FleetWatcher:
        self.client.add_listener(self._on_state)
        if self.client.connected:
            self.state = KazooState.CONNECTED
        self._thread = threading.Thread(target=self._run, name="fleetmon-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        try:
            self.client.remove_listener(self._on_state)
        except Exception:  # noqa: BLE001
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def ready(self) -> bool:
        """The view is complete and follows ZooKeeper: connected and synced this session."""
        with self._lock:
            return (self._synced and not self._need_resync and self.state == KazooState.CONNECTED
                    and self._session_id == self._current_session())

    def view(self) -> FleetView:
        with self._lock:
            return self._view.copy()

    def peek(self) -> tuple[int, FleetView]:
        """(version, the live view object): callers must treat it as read-only and hold no
        reference past their computation (cheaper than ``view()`` at 25,000 hosts)."""
        with self._lock:
            return self.version, self._view

    def snapshot(self) -> tuple[int, dict[str, HostSpec], list[str], dict[str, dict[str, dict]]]:
        """(version, hosts, live shards, replicas): cheap copies taken under the lock."""
        with self._lock:
            v = self._view
            return (self.version, dict(v.hosts), v.live_shards(),
                    {s: dict(r) for s, r in v.replicas.items()})

    def wait_change(self, version: int, timeout: float) -> int:
        with self._cond:
            if self.version == version:
                self._cond.wait(timeout)
            return self.version

    # ------------------------------------------------------------------ internals
    def _on_state(self, state: str) -> None:
        # kazoo's connection thread: record and wake, never block. kazoo does not send
        # SetWatches when it reconnects, so every watch died with the old connection:
        # re-read the whole tree (setting fresh watches) after *every* reconnection.
        if state == KazooState.CONNECTED and self.state != KazooState.CONNECTED:
            self._need_resync = True
        self.state = state
        self._wake.set()
        with self._cond:
            self._cond.notify_all()

    def _on_watch(self, event: Any) -> None:
        # kazoo's event thread: map the path to a work item and queue it.
        if not event.path:  # session events (closing, expiry) come without a path
            return
        rel = event.path[len(self.root):].strip("/").split("/")
        key: tuple[str, ...] | None = None
        if rel[0] == "hosts":
            if len(rel) == 1:
                key = ("hroot",)
            elif len(rel) == 2:
                key = ("hb", rel[1])
            elif len(rel) == 3 and event.type != EventType.CHILD:
                key = ("h", rel[1], rel[2])
        elif rel[0] == "alive":
            if len(rel) == 1:
                key = ("aroot",)
            elif len(rel) == 2:
                key = ("ab", rel[1])
        elif rel[0] == "shards":
            if len(rel) == 1:
                key = ("sroot",)
            elif len(rel) in (2, 3):
                key = ("s", rel[1])
        if key is not None:
            self._enqueue(key)

    def _enqueue(self, key: tuple[str, ...]) -> None:
        with self._lock:
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
        self._wake.set()

    def _current_session(self) -> int | None:
        return zksession.session_id(self.client)

    def _bump(self) -> None:
        # caller holds self._lock
        self.version += 1
        self._cond.notify_all()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.client.connected:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            sid = self._current_session()
            try:
                if sid != self._session_id or not self._synced or self._need_resync:
                    self._resync(sid)
                    continue
                with self._lock:
                    batch, self._queue = self._queue, []
                    self._queued.clear()
                if not batch:
                    if self.state == KazooState.CONNECTED:
                        self.last_sync = time.time()
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                self._process(batch)
                self.last_error = None
            except (KazooException, ConnectionClosedError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("watch processing interrupted (%s); will retry", self.last_error)
                self._stopping.wait(0.5)
            except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("watch processing failed; resyncing")
                with self._lock:
                    self._synced = False
                self._stopping.wait(1.0)

    def _resync(self, sid: int | None) -> None:
        with self._lock:
            self._synced = False
            self._need_resync = False
            self._queue, self._queued = [], set()
        if self._session_id is not None and sid != self._session_id:
            self.session_expirations += 1
            log.warning("new ZooKeeper session; re-reading the whole tree")
        t0 = time.monotonic()
        view = load_view(self.client, self.root, watch=self._on_watch, hosts=self.watch_hosts)
        with self._lock:
            for n in view.invalid:  # keep the last good data of hosts whose znode went bad
                if n in self._view.hosts and n not in view.hosts:
                    view.hosts[n] = self._view.hosts[n]
            self._view = view
            self._session_id = sid
            self._synced = True
            self._bump()
        self.resync_seconds = time.monotonic() - t0
        self.last_sync = time.time()
        log.info("loaded %d hosts (%d invalid, %d alive), %d live shards in %.2fs", len(view.hosts),
                 len(view.invalid), len(view.alive), len(view.live_shards()), self.resync_seconds)

    def _process(self, batch: list[tuple[str, ...]]) -> None:
        for i, key in enumerate(batch):
            try:
                self._process_one(key)
            except BaseException:
                for k in batch[i:]:
                    self._enqueue(k)
                raise

    def _process_one(self, key: tuple[str, ...]) -> None:
        kind = key[0]
        root, w, c = self.root, self._on_watch, self.client
        if kind == "hroot":
            buckets = _children(c, layout.hosts_path(root), w) or []
            with self._lock:
                known = set(self._view.host_buckets)
            for b in set(buckets) - known:
                self._enqueue(("hb", b))
            for b in known - set(buckets):
                self._enqueue(("hb", b))
        elif kind == "aroot":
            buckets = _children(c, layout.alive_path(root), w) or []
            with self._lock:
                known = set(self._view.alive_buckets)
            for b in set(buckets) ^ known:
                self._enqueue(("ab", b))
        elif kind == "hb":
            b = key[1]
            names = set(_children(c, layout.host_bucket_path(root, b), w) or [])
            with self._lock:
                old = self._view.host_buckets.get(b, set())
            new = sorted(names - old)
            scratch = FleetView(host_buckets={b: set(names)})
            _load_hosts(c, root, scratch, [(b, n) for n in new], w)
            with self._lock:
                v = self._view
                for n in old - names:
                    v.hosts.pop(n, None)
                    v.invalid.pop(n, None)
                v.hosts.update(scratch.hosts)
                for n in scratch.hosts:
                    v.invalid.pop(n, None)
                v.invalid.update(scratch.invalid)
                v.host_buckets[b] = scratch.host_buckets[b]
                self._bump()
        elif kind == "h":
            b, n = key[1], key[2]
            try:
                data, _ = c.get(f"{layout.host_bucket_path(root, b)}/{n}", watch=w)
            except NoNodeError:
                data = None
            with self._lock:
                if data is None:
                    self._view.hosts.pop(n, None)
                    self._view.invalid.pop(n, None)
                    self._view.host_buckets.get(b, set()).discard(n)
                else:
                    _parse_into(self._view, n, data, b)
                self._bump()
        elif kind == "ab":
            b = key[1]
            names = set(_children(c, layout.alive_bucket_path(root, b), w) or [])
            with self._lock:
                old = self._view.alive_buckets.get(b, set())
                self._view.alive -= old - names
                self._view.alive |= names
                self._view.alive_buckets[b] = names
                self._bump()
        elif kind == "sroot":
            shards = _children(c, layout.shards_path(root), w) or []
            with self._lock:
                known = set(self._view.replicas)
            for s in set(shards) | known:
                self._enqueue(("s", s))
        elif kind == "s":
            scratch = FleetView()
            _load_shard(c, root, scratch, key[1], w)
            with self._lock:
                if scratch.replicas.get(key[1]):
                    self._view.replicas[key[1]] = scratch.replicas[key[1]]
                else:
                    self._view.replicas.pop(key[1], None)
                self._bump()
