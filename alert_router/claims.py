"""Delivery claims in ZooKeeper: two or more routers, each alert state sent once.

Every router receives every notification (each Alertmanager member posts to every router)
and queues it in its own SQLite database. Before sending a delivery row (one alert state
for one recipient URL), a router creates an *ephemeral* claim znode named by
``claim_key(fingerprint, status, url_hash)``; after a successful send it creates (or
extends) a *persistent* done znode recording the alert's start, and only then deletes the
claim. The other routers, which hold the same rows:

- see the claim and put the row back for ``recheck`` seconds (a peer is sending it);
- see the done znode and mark the row delivered without sending (a peer sent it).

The key leaves out the alert's exact start and end on purpose: the two Prometheus replicas
of a shard evaluate at different moments, so the same episode reaches the routers with
starts (and resolve times) a few seconds apart, depending on which replica's alert an
Alertmanager member merged first. A done znode therefore lists the starts it was sent for,
and a row counts as done when one is within ``start_skew`` of its own (default 30 s, two
evaluation intervals); a later episode of the same alert starts further away and is sent.

A router that dies mid-send loses its claims with its ZooKeeper session (session timeout),
so a peer's next recheck claims the row and sends it: at most one duplicate per send that
was in flight at the kill, and none otherwise. The order matters: the done znode is
checked *after* the claim is taken, and written *before* the claim is released, so a
peer that wins the claim after us always sees our done znode.

When ZooKeeper is unreachable for longer than ``bypass_after``, routers send without
claims (a duplicate is better than silence); every such send is counted in
``alert_router_claims_bypassed_total`` and logged. Done znodes older than ``done_ttl``
are deleted by a janitor thread in every router (deletes are idempotent).

Layout under ``<root>/alert-router`` (``root`` defaults to ``/fleetmon``)::

    claims/<kk>/<dedup_key>   ephemeral, data: JSON {"router", "at"}
    done/<kk>/<dedup_key>     persistent, data: JSON {"router", "at"}

``<kk>`` is the key's first two hex digits: 256 buckets keep every ``get_children`` small.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError, ZookeeperError

from fleetmon import zksession

log = logging.getLogger(__name__)

# Outcomes of trying to claim one key.
MINE = "acquired"          # we hold the claim: send
HELD = "held_by_peer"      # a peer is sending it: check again later
DONE = "done_by_peer"      # a peer already sent it: mark delivered
BYPASS = "bypassed"        # ZooKeeper unreachable for too long: send without a claim
WAIT = "waiting_for_zk"    # ZooKeeper unreachable for a short while: check again later
OUTCOMES = (MINE, HELD, DONE, BYPASS, WAIT)
KEEP_STARTS = 8            # episodes (alert starts) remembered per done znode


def claim_key(fingerprint: str, status: str, url_hash: str) -> str:
    """The znode name for one alert's firing or resolved state to one recipient URL."""
    return hashlib.sha256(f"{fingerprint}|{status}|{url_hash}".encode()).hexdigest()[:40]


@dataclass
class ClaimResult:
    """What to do with each key of one batch."""

    send: list[str] = field(default_factory=list)      # claimed (or bypassed): send these
    bypassed: list[str] = field(default_factory=list)  # subset of ``send`` sent without a claim
    done: list[str] = field(default_factory=list)      # a peer delivered them
    later: list[str] = field(default_factory=list)     # a peer holds them, or ZooKeeper is away


class Claims:
    """Claim, complete and release delivery keys in ZooKeeper for one router.

    Takes a kazoo client (create it with ``fleetmon.zk.make_client`` so that credentials
    and TLS apply); ``start()`` starts it without blocking, so a router whose ZooKeeper is
    down at boot still serves and, after ``bypass_after``, still delivers.
    """

    def __init__(self, client: KazooClient, root: str = "/fleetmon", router_id: str | None = None,
                 bypass_after: float = 10.0, done_ttl: float = 86400.0, start_skew: float = 30.0,
                 on_outcome: Callable[[str, int], None] | None = None,
                 on_duplicate: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.base = root.rstrip("/") + "/alert-router"
        self.router_id = router_id or socket.gethostname()
        self.bypass_after = bypass_after
        self.done_ttl = done_ttl
        self.start_skew = start_skew
        self.on_outcome = on_outcome or (lambda _o, _n: None)
        self.on_duplicate = on_duplicate or (lambda _n: None)
        self._unrecorded: dict[str, float | None] = {}   # sent while ZooKeeper was away, not recorded
        self.clock = clock
        self._lost_since: float | None = clock()   # not connected yet
        # Connected, but claiming keeps failing (NoAuth: a wrong credential or ACL; a full
        # disk on the ensemble): counts like being away, so deliveries are not held forever.
        self._failing_since: float | None = None
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None
        self._ready_paths: set[str] = set()
        client.add_listener(self._listener)

    # ------------------------------------------------------------------ lifecycle

    def start(self, janitor_every: float | None = None) -> None:
        """Connect in the background and start the done-znode janitor."""
        self.client.start_async()
        every = janitor_every if janitor_every is not None else max(60.0, self.done_ttl / 24)
        self._janitor = threading.Thread(target=self._janitor_loop, args=(every,),
                                         name="alert-router-claims-janitor", daemon=True)
        self._janitor.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def _listener(self, state: str) -> None:
        # kazoo calls this on its connection thread: only record the time, never block.
        with self._state_lock:
            if state == KazooState.CONNECTED:
                if self._lost_since is not None:
                    log.info("ZooKeeper connected: delivery claims active")
                self._lost_since = None
            elif self._lost_since is None:
                self._lost_since = self.clock()
                log.warning("ZooKeeper connection %s: deliveries wait up to %.0fs for it, then go out "
                            "without claims (possible duplicates)", state.lower(), self.bypass_after)

    def connected(self) -> bool:
        return self.client.connected and self._lost_since is None

    def _zk_away_too_long(self) -> bool:
        with self._state_lock:
            since = min((t for t in (self._lost_since, self._failing_since) if t is not None), default=None)
        return since is not None and self.clock() - since >= self.bypass_after

    # ------------------------------------------------------------------ paths

    @staticmethod
    def _bucket(key: str) -> str:
        return key[:2] if len(key) >= 2 else "00"

    def claim_path(self, key: str) -> str:
        return f"{self.base}/claims/{self._bucket(key)}/{key}"

    def done_path(self, key: str) -> str:
        return f"{self.base}/done/{self._bucket(key)}/{key}"

    def _data(self, start: float | None = None, older: list | None = None) -> bytes:
        doc: dict = {"router": self.router_id, "at": time.time()}
        if start is not None:
            doc["starts"] = [*(older or [])[-(KEEP_STARTS - 1):], start]
        return json.dumps(doc).encode()

    def _ensure(self, path: str) -> None:
        if path not in self._ready_paths:
            self.client.ensure_path(path)
            self._ready_paths.add(path)

    # ------------------------------------------------------------------ the protocol

    def acquire(self, keys: Iterable[str], starts: dict[str, float | None] | None = None) -> ClaimResult:
        """Claim each key: the result says which to send, which a peer did, which to retry.

        ``starts`` maps a key to its alert's start: a done znode then counts only if it
        records a start within ``start_skew`` of it (the same episode seen through another
        Prometheus replica or Alertmanager member); without it any done znode counts.
        """
        keys = list(dict.fromkeys(keys))
        starts = starts or {}
        out = ClaimResult()
        if not keys:
            return out
        if not self.connected():
            return self.acquire_when_away(keys)
        self._flush_unrecorded()
        try:
            self._acquire(keys, starts, out)
        except (KazooException, ZookeeperError) as exc:
            # Lost the connection part-way, or ZooKeeper refuses (NoAuth): release what we took
            # and decide as if it were away, so a refusal that lasts ends in bypass, not silence.
            with self._state_lock:
                if self._failing_since is None:
                    self._failing_since = self.clock()
            log.warning("claiming deliveries failed (%s): will retry", type(exc).__name__)
            # A bucket may be gone (ZooKeeper restored from nothing): ensure them again next time.
            self._ready_paths.clear()
            self.release(out.send)
            return self.acquire_when_away(keys)
        with self._state_lock:
            self._failing_since = None
        self.on_outcome(MINE, len(out.send))
        self.on_outcome(DONE, len(out.done))
        self.on_outcome(HELD, len(out.later))
        return out

    def acquire_when_away(self, keys: list[str]) -> ClaimResult:
        out = ClaimResult()
        if self._zk_away_too_long():
            out.send, out.bypassed = list(keys), list(keys)
            self.on_outcome(BYPASS, len(keys))
            log.warning("ZooKeeper unreachable for over %.0fs: sending %d delivery(ies) without claims "
                        "(possible duplicates)", self.bypass_after, len(keys))
        else:
            out.later = list(keys)
            self.on_outcome(WAIT, len(keys))
        return out

    def _acquire(self, keys: list[str], starts: dict[str, float | None], out: ClaimResult) -> None:
        for b in {self._bucket(k) for k in keys}:
            self._ensure(f"{self.base}/claims/{b}")
            self._ensure(f"{self.base}/done/{b}")
        # Pipelined: one round trip per batch rather than per key.
        data = self._data()
        creates = [(k, self.client.create_async(self.claim_path(k), data, ephemeral=True)) for k in keys]
        mine: list[str] = []
        for k, res in creates:
            try:
                res.get(timeout=10)
                mine.append(k)
            except NodeExistsError:
                if self._own_claim(k):
                    mine.append(k)  # our create went through before a connection loss
                else:
                    out.later.append(k)
        # Only now look for done znodes: a peer writes its done znode before releasing its claim.
        checks = [(k, self.client.get_async(self.done_path(k))) for k in mine]
        for k, res in checks:
            try:
                raw, _ = res.get(timeout=10)
            except NoNodeError:
                out.send.append(k)
                continue
            if self._same_episode(raw, starts.get(k)):
                out.done.append(k)
            else:
                out.send.append(k)
        if out.done:
            self.release(out.done)

    def _same_episode(self, raw: bytes | None, start: float | None) -> bool:
        """Does a done znode's data record ``start`` (within ``start_skew``)?"""
        if start is None:
            return True
        try:
            recorded = json.loads(raw or b"{}").get("starts") or []
        except (ValueError, AttributeError):
            return True  # unreadable: assume done rather than risk a duplicate storm
        if not recorded:
            return True
        return any(s is None or abs(float(s) - start) <= self.start_skew for s in recorded)

    def _own_claim(self, key: str) -> bool:
        # A peer's claim is never deleted, only checked again later: fleetmon.zksession's rule.
        return zksession.owned_by_us(self.client, self.client.exists(self.claim_path(key)))

    def complete(self, keys: Iterable[str], starts: dict[str, float | None] | None = None,
                 held: Iterable[str] | None = None) -> None:
        """Record ``keys`` as delivered (persistent), then release the claims we hold on them
        (``held``; default all of ``keys``). A key sent without a claim (bypassed) is not
        released: the claim znode there, if any, is a peer's."""
        keys = list(dict.fromkeys(keys))
        starts = starts or {}
        if not keys:
            return
        items = {k: starts.get(k) for k in keys}
        if not self.client.connected:
            # Recorded once ZooKeeper is back: a peer that also sent them then finds out.
            with self._state_lock:
                self._unrecorded.update(items)
            log.warning("ZooKeeper unreachable: %d delivery(ies) sent, to be recorded as done when it is back",
                        len(keys))
            return
        dups = self._record_done(items)
        if dups:
            log.warning("%d delivery(ies) were also sent by a peer router while claims could not be "
                        "coordinated (duplicates)", dups)
        self.release(keys if held is None else [k for k in keys if k in set(held)])

    def _record_done(self, items: dict[str, float | None]) -> int:
        """Create or extend the done znodes; return how many record the same episode already
        (a peer sent it too: a duplicate)."""
        dups = 0
        try:
            for k, start in items.items():
                self._ensure(f"{self.base}/done/{self._bucket(k)}")
                path = self.done_path(k)
                try:
                    self.client.create(path, self._data(start))
                    continue
                except NodeExistsError:
                    pass
                raw, stat = self.client.get(path)
                if self._same_episode(raw, start):
                    # We held the claim, so a peer can only have sent it without one, or after
                    # our session expired mid-send: either way the recipient got it twice.
                    dups += 1
                    continue
                # An earlier episode of the same alert: keep the last few starts. A concurrent
                # writer makes the versioned set fail; its record is as good as ours.
                try:
                    old = json.loads(raw or b"{}").get("starts") or []
                except (ValueError, AttributeError):
                    old = []
                try:
                    self.client.set(path, self._data(start, old), version=stat.version)
                except BadVersionError:
                    pass
        except (KazooException, ZookeeperError) as exc:
            log.warning("recording %d delivery(ies) as done failed (%s); a peer may send them again",
                        len(items), type(exc).__name__)
            self._ready_paths.clear()
            with self._state_lock:
                self._unrecorded.update(items)
            return dups
        if dups:
            self.on_duplicate(dups)
        return dups

    def _flush_unrecorded(self) -> None:
        with self._state_lock:
            items, self._unrecorded = dict(self._unrecorded), {}
        if items:
            dups = self._record_done(items)
            log.info("recorded %d delivery(ies) sent while ZooKeeper was away as done; %d had also been "
                     "sent by a peer (duplicates)", len(items), dups)

    def release(self, keys: Iterable[str]) -> None:
        """Delete our claims on ``keys`` (a failed send: a peer may try, or we retry later)."""
        keys = list(keys)
        if not keys or not self.client.connected:
            return
        try:
            pending = [self.client.delete_async(self.claim_path(k)) for k in keys]
            for res in pending:
                try:
                    res.get(timeout=10)
                except NoNodeError:
                    pass
        except (KazooException, ZookeeperError) as exc:
            # They vanish with our session at the latest.
            log.warning("releasing %d claim(s) failed (%s)", len(keys), type(exc).__name__)

    # ------------------------------------------------------------------ cleanup

    def prune_done(self, now: float | None = None) -> int:
        """Delete done znodes older than ``done_ttl``; return how many."""
        now = time.time() if now is None else now
        cutoff_ms = (now - self.done_ttl) * 1000
        root = f"{self.base}/done"
        try:
            buckets = self.client.get_children(root)
        except NoNodeError:
            return 0
        n = 0
        for b in buckets:
            try:
                names = self.client.get_children(f"{root}/{b}")
            except NoNodeError:
                continue
            stats = [(name, self.client.exists_async(f"{root}/{b}/{name}")) for name in names]
            old = []
            for name, res in stats:
                st = res.get(timeout=10)
                if st is not None and st.mtime < cutoff_ms:
                    old.append(name)
            dels = [self.client.delete_async(f"{root}/{b}/{name}") for name in old]
            for res in dels:
                try:
                    res.get(timeout=10)
                    n += 1
                except NoNodeError:
                    pass
        return n

    def _janitor_loop(self, every: float) -> None:
        # A random phase, so several routers do not all scan at the same moment. Deliveries
        # sent while ZooKeeper was away are recorded within seconds of its return, even when
        # no new delivery comes along to do it.
        next_prune = time.monotonic() + random.uniform(0.1, 1.0) * every
        while not self._stop.wait(min(2.0, every)):
            if not self.connected():
                continue
            try:
                self._flush_unrecorded()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + every
                    n = self.prune_done()
                    if n:
                        log.info("deleted %d done znode(s) older than %.0fs", n, self.done_ttl)
            except Exception as exc:  # noqa: BLE001 - the janitor must survive ZooKeeper trouble
                log.warning("claims janitor failed: %s", type(exc).__name__)
