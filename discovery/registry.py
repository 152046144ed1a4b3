"""Registrar: hold inventory and liveness znodes for one or many hosts in one session.

A host's registration has two parts: a persistent inventory entry
(``<root>/hosts/<bucket>/<name>``, the host belongs to the fleet and stays a target)
and an ephemeral liveness node (``<root>/alive/<bucket>/<name>``, its agent is
connected). kazoo does not re-create ephemeral nodes after a session expires
(python-zk/kazoo#491), so the Registrar keeps the desired state in memory and a
worker thread reconciles ZooKeeper with it after every (re)connection. Connection
listeners only set flags; all ZooKeeper work happens on the worker thread, pipelined
with ``create_async`` so one session can register thousands of hosts quickly. A liveness
node still held by another session (a restart within the session timeout, or a second agent
using the same name) is left alone until ZooKeeper removes it (``fleetmon.zksession``).

``start()`` never blocks or raises when ZooKeeper is down: kazoo keeps reconnecting
in the background with the bounded waits of ``fleetmon.zk``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import KazooState

from discovery import layout
from discovery.layout import HostSpec
from fleetmon import zksession
from fleetmon.zk import SESSION_TIMEOUT, make_client

log = logging.getLogger(__name__)

# Outstanding async requests per window: enough to fill the pipe, bounded memory.
PIPELINE_WINDOW = 2000
# How long one async reply may take before the pass is abandoned and retried.
REPLY_TIMEOUT = 15.0
# While something could not be done (foreign ephemeral still there, errors), retry this often.
RETRY_INTERVAL = 1.0
# Even when all looks fine, re-check that our liveness nodes exist this often.
HEAL_INTERVAL = 60.0
# Up to this many hosts, verification checks each node rather than listing buckets.
SMALL_SET = 32


class Registrar:
    """Register hosts in ZooKeeper and keep them registered across session expiry.

    ``add``/``add_many``/``remove`` only record the desired state and wake the worker;
    ``wait(timeout)`` blocks until ZooKeeper matches it.
    """

    def __init__(self, hosts: str, root: str = layout.DEFAULT_ROOT, session_timeout: float = SESSION_TIMEOUT,
                 agent: str = "fleetmon", client: Any = None, security: Any = None,
                 idle_wakeup: float = RETRY_INTERVAL):
        self.hosts = hosts
        self.root = root
        self._root = layout.normalize_root(root)
        self.session_timeout = session_timeout
        self.agent = agent
        # How often an idle worker looks around. State changes wake it at once anyway; a
        # process holding thousands of Registrars (one per simulated host) raises this so
        # idle workers do not wake thousands of times a second.
        self.idle_wakeup = idle_wakeup
        self.client = client or make_client(hosts, timeout=session_timeout, role="registrar",
                                             security=security)
        self._own_client = client is None
        # Reply timeouts of the client's handler. gevent's async results raise gevent.Timeout, a
        # BaseException the handler's own class derives from: without it here one slow reply
        # would end the worker of a Registrar run on gevent (simulator/sessions.py).
        exc = self.client.handler.timeout_exception
        self._timeouts = (exc, *[b for b in exc.__bases__ if not issubclass(Exception, b)])
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._desired: dict[str, HostSpec] = {}
        self._inventory_ok: set[str] = set()
        self._alive_ok: set[str] = set()
        self._to_delete: dict[str, bool] = {}  # name -> also delete inventory
        self._session_id: int | None = None
        self._verify_inventory = False
        self._verify_alive = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._known_buckets: set[str] = set()
        self._since = time.time()
        self.session_expirations = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ public API
    def start(self) -> Registrar:
        """Begin connecting (in the background) and registering; never raises for a down ZooKeeper."""
        if self._thread is not None:
            return self
        self.client.add_listener(self._on_state)
        if self._own_client:
            self.client.start_async()
        self._thread = threading.Thread(target=self._run, name="fleetmon-registrar", daemon=True)
        self._thread.start()
        self._wake.set()
        return self

    def add(self, name: str, address: str, labels: Mapping[str, str] | None = None,
            metrics_path: str = layout.DEFAULT_METRICS_PATH) -> HostSpec:
        """Register (or update) one host. Raises ``layout.InvalidHostData`` for bad input."""
        spec = layout.make_host(name, address, dict(labels or {}), metrics_path)
        self._put([spec])
        return spec

    def add_many(self, hosts: Iterable[HostSpec | Mapping[str, Any] | tuple]) -> list[HostSpec]:
        """Register many hosts at once (dicts with name/address/labels/metrics_path, tuples
        in that order, or HostSpec). Validates all first; raises before registering any."""
        specs = []
        for item in hosts:
            if isinstance(item, HostSpec):
                specs.append(layout.make_host(item.name, item.address, item.labels, item.metrics_path))
            elif isinstance(item, Mapping):
                specs.append(layout.make_host(item["name"], item["address"], item.get("labels"),
                                              item.get("metrics_path", layout.DEFAULT_METRICS_PATH)))
            else:
                specs.append(layout.make_host(*item))
        self._put(specs)
        return specs

    def remove(self, name: str, deregister: bool = True) -> None:
        """Stop holding ``name``'s liveness; with ``deregister`` also delete its inventory entry
        (the host leaves the fleet and its target goes away)."""
        with self._lock:
            self._desired.pop(name, None)
            self._inventory_ok.discard(name)
            self._alive_ok.discard(name)
            self._to_delete[name] = self._to_delete.get(name, False) or deregister
        self._wake.set()

    def stop(self, deregister: bool = False, timeout: float = 10.0) -> None:
        """Stop the worker and close the session (which drops every liveness node at once).
        With ``deregister`` the inventory entries are deleted first (bounded by ``timeout``)."""
        if deregister:
            with self._lock:
                for name in list(self._desired):
                    self._to_delete[name] = True
                self._desired.clear()
                self._inventory_ok.clear()
                self._alive_ok.clear()
            self._wake.set()
            self.wait(timeout)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        try:
            self.client.remove_listener(self._on_state)
        except Exception:  # noqa: BLE001 - listener may already be gone
            pass
        if self._own_client:
            try:
                self.client.stop()
                self.client.close()
            except Exception as exc:  # noqa: BLE001 - stopping must not raise
                log.debug("closing kazoo client: %s", exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every desired host has inventory and liveness and every removal is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._in_sync_locked():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
            return True

    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"connected": self.connected, "desired": len(self._desired),
                    "inventory_ok": len(self._inventory_ok), "alive_ok": len(self._alive_ok),
                    "pending_deletes": len(self._to_delete),
                    "session_expirations": self.session_expirations, "last_error": self.last_error}

    # ------------------------------------------------------------------ internals
    def _put(self, specs: list[HostSpec]) -> None:
        with self._lock:
            for spec in specs:
                if self._desired.get(spec.name) != spec:
                    self._inventory_ok.discard(spec.name)
                self._desired[spec.name] = spec
                self._to_delete.pop(spec.name, None)
        self._wake.set()

    def _in_sync_locked(self) -> bool:
        return (not self._to_delete and len(self._inventory_ok) == len(self._desired)
                and len(self._alive_ok) == len(self._desired))

    def _on_state(self, state: str) -> None:
        # Runs on kazoo's connection thread: never block here, just wake the worker.
        if state == KazooState.LOST:
            log.warning("ZooKeeper session lost; liveness will be re-created on reconnect")
        self._wake.set()

    def _run(self) -> None:
        next_heal = time.monotonic() + HEAL_INTERVAL
        while not self._stopping.is_set():
            woke = self._wake.wait(timeout=self.idle_wakeup)
            self._wake.clear()
            if self._stopping.is_set():
                break
            if not self.client.connected:
                continue
            if time.monotonic() >= next_heal:
                next_heal = time.monotonic() + HEAL_INTERVAL
                with self._lock:  # cheap periodic self-heal: re-list, re-create what vanished
                    self._verify_inventory = True
                    self._verify_alive = True
                woke = True
            with self._lock:
                behind = not self._in_sync_locked()
            if not woke and not behind and self._session_id == self._current_session():
                continue
            try:
                self._reconcile()
                self.last_error = None
            except (KazooException, ConnectionClosedError, TimeoutError, *self._timeouts) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("registration pass interrupted (%s); will retry", self.last_error)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("registration pass failed; will retry")
            with self._cond:
                self._cond.notify_all()
                behind = not self._in_sync_locked()
            if behind:
                self._stopping.wait(RETRY_INTERVAL / 4)
                self._wake.set()

    def _current_session(self) -> int | None:
        return zksession.session_id(self.client)

    def _reconcile(self) -> None:
        sid = self._current_session()
        if sid is None:
            return
        if sid != self._session_id:
            # A new session: all our ephemerals are gone; check the inventory is still there.
            if self._session_id is not None:
                self.session_expirations += 1
                log.warning("new ZooKeeper session 0x%x: re-creating liveness nodes", sid)
            with self._lock:
                self._alive_ok.clear()
                self._verify_inventory = True
            self._known_buckets.clear()
            self._session_id = sid
        self._ensure_parents()
        if self._verify_inventory or self._verify_alive:
            self._verify_pass()
        with self._lock:
            deletes = dict(self._to_delete)
            need_inv = [s for n, s in self._desired.items() if n not in self._inventory_ok]
            need_alive = [s for n, s in self._desired.items() if n not in self._alive_ok]
        if deletes:
            self._delete_pass(deletes)
        if need_inv:
            self._inventory_pass(need_inv)
        if need_alive:
            self._alive_pass(need_alive)

    def _ensure_parents(self) -> None:
        if "" not in self._known_buckets:
            for p in (layout.hosts_path(self._root), layout.alive_path(self._root)):
                self.client.ensure_path(p)
            self._known_buckets.add("")
        with self._lock:
            buckets = {layout.bucket_of(n) for n in self._desired} - self._known_buckets
        paths = [f(self._root, b) for b in sorted(buckets)
                 for f in (layout.host_bucket_path, layout.alive_bucket_path)]
        for _path, res in self._pipeline(paths, lambda p: self.client.create_async(p, b"")):
            try:
                res.get(timeout=REPLY_TIMEOUT)
            except NodeExistsError:
                pass
        self._known_buckets |= buckets

    def _pipeline(self, items: list, start):
        """Issue ``start(item)`` for items in windows; yield (item, async_result) in order."""
        for i in range(0, len(items), PIPELINE_WINDOW):
            window = [(it, start(it)) for it in items[i:i + PIPELINE_WINDOW]]
            yield from window

    def _verify_pass(self) -> None:
        """List each bucket once and keep as done only the hosts still listed there (deleted
        by hand, reaped, or gone with an old session): those get re-created. Data of listed
        inventory entries was verified when they were written."""
        with self._lock:
            names = sorted(self._desired)
            buckets = sorted({layout.bucket_of(n) for n in names})
            kinds = [k for k, flag in (("inv", self._verify_inventory), ("alive", self._verify_alive)) if flag]
        for kind in kinds:
            present: set[str] = set()
            if len(names) <= SMALL_SET:
                # An exporter holds one host: one exists() beats listing its ~100-name bucket.
                node_path = layout.host_path if kind == "inv" else layout.host_alive_path
                for n, res in self._pipeline(names, lambda n, f=node_path: self.client.exists_async(
                        f(self._root, n))):
                    if res.get(timeout=REPLY_TIMEOUT) is not None:
                        present.add(n)
            else:
                bucket_path = layout.host_bucket_path if kind == "inv" else layout.alive_bucket_path
                paths = [bucket_path(self._root, b) for b in buckets]
                for _path, res in self._pipeline(paths, self.client.get_children_async):
                    try:
                        present.update(res.get(timeout=REPLY_TIMEOUT))
                    except NoNodeError:
                        pass
            with self._lock:
                done = self._inventory_ok if kind == "inv" else self._alive_ok
                lost = {n for n in done if n not in present}
                done -= lost
                if kind == "inv":
                    self._verify_inventory = False
                else:
                    self._verify_alive = False
            if lost:
                log.warning("%d %s nodes missing; re-creating", len(lost),
                            "inventory" if kind == "inv" else "liveness")

    def _inventory_pass(self, specs: list[HostSpec]) -> None:
        exists: list[HostSpec] = []
        for spec, res in self._pipeline(specs, lambda s: self.client.create_async(
                layout.host_path(self._root, s.name), s.to_json(), makepath=True)):
            try:
                res.get(timeout=REPLY_TIMEOUT)
                self._mark(self._inventory_ok, spec)
            except NodeExistsError:
                exists.append(spec)
        if not exists:
            return
        # Already there: update the data only where it differs (version-checked).
        updates = []
        for spec, res in self._pipeline(exists, lambda s: self.client.get_async(
                layout.host_path(self._root, s.name))):
            try:
                data, stat = res.get(timeout=REPLY_TIMEOUT)
            except NoNodeError:
                continue  # deleted meanwhile; the next pass creates it
            if data == spec.to_json():
                self._mark(self._inventory_ok, spec)
            else:
                updates.append((spec, stat.version))
        for (spec, _v), res in self._pipeline(updates, lambda u: self.client.set_async(
                layout.host_path(self._root, u[0].name), u[0].to_json(), u[1])):
            try:
                res.get(timeout=REPLY_TIMEOUT)
                self._mark(self._inventory_ok, spec)
            except (BadVersionError, NoNodeError):
                continue

    def _alive_pass(self, specs: list[HostSpec]) -> None:
        data = layout.liveness_data(self.agent, os.getpid(), self._since)
        by_path = {layout.host_alive_path(self._root, s.name): s for s in specs}
        claims = zksession.claim_ephemerals(self.client, [(p, data) for p in by_path], timeout=REPLY_TIMEOUT)
        for path, outcome in claims.items():
            # FOREIGN: left by an earlier session of this agent (a quick restart) or another agent
            # claiming the name; never deleted (fleetmon.zksession). It stays out of _alive_ok, so
            # the worker keeps retrying every RETRY_INTERVAL / 4 until ZooKeeper expires it.
            if outcome != zksession.FOREIGN:
                self._mark(self._alive_ok, by_path[path])

    def _delete_pass(self, deletes: dict[str, bool]) -> None:
        ops = []
        for name, inventory in deletes.items():
            ops.append((name, layout.host_alive_path(self._root, name)))
            if inventory:
                ops.append((name, layout.host_path(self._root, name)))
                ops.append((name, layout.host_absent_path(self._root, name)))
        doomed = []
        for (name, path), res in self._pipeline(ops, lambda o: self.client.exists_async(o[1])):
            stat = res.get(timeout=REPLY_TIMEOUT)
            if stat is None:
                continue
            if "/alive/" in path[len(self._root):] and zksession.is_ephemeral(stat) \
                    and not zksession.owned_by_us(self.client, stat) and not deletes[name]:
                # Someone else's liveness (fleetmon.zksession's rule); only an explicit deregister,
                # which removes the host from the fleet altogether, deletes it.
                continue
            doomed.append(path)
        for _path, res in self._pipeline(doomed, self.client.delete_async):
            try:
                res.get(timeout=REPLY_TIMEOUT)
            except (NoNodeError, NotEmptyError):
                pass
        with self._lock:
            for name, inv in deletes.items():
                if self._to_delete.get(name) == inv and name not in self._desired:
                    del self._to_delete[name]

    def _mark(self, target: set[str], spec: HostSpec) -> None:
        with self._lock:
            if self._desired.get(spec.name) == spec:
                target.add(spec.name)
