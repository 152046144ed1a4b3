"""Retention: remove inventory entries whose liveness has been gone for longer than a retention.

ZooKeeper does not record when an ephemeral node disappeared, so the reaper records
it: the first time it sees an inventory entry without liveness it writes a persistent
marker ``<root>/absent/<bucket>/<name>`` holding ``{"since": <unix time>}``; when
liveness comes back the marker is removed; when the marker is older than the
retention the entry is deleted. The delete is one ZooKeeper transaction that also
*creates* the liveness path, so it aborts if the agent came back in the meantime.

Only one process should reap at a time: the sidecar runs ``reap_once`` only while it
holds ``ReaperLock``, kazoo's ``Lock`` recipe on ``<root>/reaper`` (sequential ephemeral
contender nodes ``<uuid>__lock__<seq>`` holding ``<shard>/<replica>``);
``fleet-discovery gc`` runs it once (cron-friendly). A retention counts from the first
run that saw the host without liveness, never from less.

Why kazoo's Lock and not its Election: Election.run() blocks a thread inside the lock
until the function returns, while the sidecar tries the lead once per ``--reap-interval``
and must notice a lost session between passes. Lock with ``blocking=False`` does exactly
that, and its contender nodes are the ones every other kazoo-based tool understands.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import KazooException, NoChildrenForEphemeralsError, NodeExistsError, NoNodeError
from kazoo.recipe.lock import Lock

from discovery import layout
from fleetmon import zksession

log = logging.getLogger(__name__)


@dataclass
class ReapResult:
    marked: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    waiting: dict[str, float] = field(default_factory=dict)  # name -> seconds absent so far


def _children(client: Any, path: str) -> list[str]:
    try:
        return client.get_children(path)
    except NoNodeError:
        return []


def reap_once(client: Any, root: str, retention: float, now: float | None = None,
              dry_run: bool = False) -> ReapResult:
    """One pass over every bucket; see the module docstring."""
    root = layout.normalize_root(root)
    now = time.time() if now is None else now
    res = ReapResult()
    buckets = set(_children(client, layout.hosts_path(root))) | set(_children(client, layout.absent_path(root)))
    for b in sorted(buckets):
        names = set(_children(client, layout.host_bucket_path(root, b)))
        alive = set(_children(client, layout.alive_bucket_path(root, b)))
        marked = set(_children(client, f"{layout.absent_path(root)}/{b}"))
        gone = names - alive
        for n in sorted(marked - gone):
            res.cleared.append(n)
            if not dry_run:
                try:
                    client.delete(layout.host_absent_path(root, n))
                except NoNodeError:
                    pass
        for n in sorted(gone):
            mpath = layout.host_absent_path(root, n)
            if n not in marked:
                res.marked.append(n)
                if not dry_run:
                    try:
                        client.create(mpath, json.dumps({"since": now}).encode(), makepath=True)
                    except NodeExistsError:
                        pass
                continue
            try:
                data, _ = client.get(mpath)
                since = float(json.loads(data)["since"])
                if not math.isfinite(since) or since > now:
                    raise ValueError(f"since {since} is not a past time")
            except NoNodeError:
                continue
            except (ValueError, KeyError, TypeError, RecursionError):
                since = now  # garbage marker: restart the clock rather than delete early
                if not dry_run:
                    client.set(mpath, json.dumps({"since": now}).encode())
            absent_for = now - since
            if absent_for < retention:
                res.waiting[n] = absent_for
                continue
            if dry_run or _delete_if_still_gone(client, root, n):
                res.deleted.append(n)
    if res.deleted:
        log.warning("retention: removed %d inventory entries absent for more than %.0fs: %s",
                    len(res.deleted), retention, ", ".join(res.deleted[:20]))
    return res


def _delete_if_still_gone(client: Any, root: str, name: str) -> bool:
    hpath = layout.host_path(root, name)
    apath = layout.host_alive_path(root, name)
    try:
        _, stat = client.get(hpath)
    except NoNodeError:
        return False
    client.ensure_path(apath.rsplit("/", 1)[0])
    tx = client.transaction()
    tx.create(apath, b"")  # fails, aborting all, if the agent re-registered meanwhile
    tx.delete(apath)
    tx.delete(hpath, version=stat.version)
    tx.delete(layout.host_absent_path(root, name))
    results = tx.commit()
    ok = not any(isinstance(r, Exception) for r in results)
    if not ok:
        log.info("retention: %s came back or changed; kept (%s)", name, results)
    return ok


class ReaperLock:
    """Who runs retention: kazoo's ``Lock`` recipe on ``<root>/reaper``, tried without blocking.

    ``hold()`` is called before every pass; it is True only while this client's *current*
    session owns the lowest contender node. kazoo's Lock keeps ``is_acquired`` True after its
    session expired (its ephemeral node went with the session, and another sidecar may
    already hold the lock), so ownership is re-checked against ZooKeeper each time.
    """

    def __init__(self, client: Any, root: str, identity: str):
        self.client = client
        self.path = layout.reaper_path(root)
        self.lock = Lock(client, self.path, identifier=identity)
        self._warned_legacy = False

    def hold(self) -> bool:
        """True while this session holds the lock (taking it if free). Raises KazooException
        on connection trouble; never blocks waiting for another holder. Like every synchronous
        kazoo call, it waits for a reconnection if the connection drops during the call, so
        call it only while connected (the sidecar's reap loop does)."""
        if self.lock.is_acquired:
            if self._still_mine():
                return True
            log.warning("retention: lost %s with the ZooKeeper session; trying again", self.path)
            self.release()
        try:
            # Without blocking, acquire() creates our contender node and deletes it again
            # unless it is the lowest: nobody waits on a predecessor between passes.
            return bool(self.lock.acquire(blocking=False))
        except NoNodeError:
            # <root>/reaper was removed (by hand, or an older holder left): kazoo's Lock only
            # ensures its path once, so make it do that again on the next pass.
            self.lock.assured_path = False
            return False
        except NoChildrenForEphemeralsError:
            self.lock.assured_path = False
            # A sidecar from before the Lock recipe holds <root>/reaper as an ephemeral node:
            # it reaps, we do not, until its session ends (then the path becomes the lock's).
            if not self._warned_legacy:
                log.warning("retention: %s is held by an older sidecar (ephemeral node); not reaping",
                            self.path)
                self._warned_legacy = True
            return False

    def _still_mine(self) -> bool:
        node = self.lock.node
        if not node or not zksession.owned_by_us(self.client, self.client.exists(f"{self.path}/{node}")):
            return False
        return self._lowest() == node  # a lower contender can only appear if ours was replaced

    def _lowest(self) -> str | None:
        children = [c for c in self.client.get_children(self.path) if "__lock__" in c]
        return min(children, key=lambda c: c.rsplit("__lock__", 1)[1]) if children else None

    def holder(self) -> str | None:
        """The identity of the current holder (``<shard>/<replica>``), or None."""
        try:
            contenders = self.lock.contenders()
        except (NoNodeError, NoChildrenForEphemeralsError):
            return None
        return contenders[0] if contenders else None

    def release(self) -> None:
        """Give the lock up (best effort: a closed session has released it already)."""
        try:
            self.lock.release()
        except KazooException as exc:
            log.debug("releasing %s: %s", self.path, exc)
        self.lock.is_acquired = False
        self.lock.node = None
