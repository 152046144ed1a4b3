"""Retention: remove inventory entries whose liveness has been gone for longer than a retention.

ZooKeeper does not record when an ephemeral node disappeared, so the reaper records
it: the first time it sees an inventory entry without liveness it writes a persistent
marker ``<root>/absent/<bucket>/<name>`` holding ``{"since": <unix time>}``; when
liveness comes back the marker is removed; when the marker is older than the
retention the entry is deleted. The delete is one ZooKeeper transaction that also
*creates* the liveness path, so it aborts if the agent came back in the meantime.

Only one process should reap at a time: the sidecar runs ``reap_once`` only while it
holds the ephemeral ``<root>/reaper`` node (``try_lead``); ``fleet-discovery gc`` runs
it once (cron-friendly). A retention counts from the first run that saw the host
without liveness, never from less.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError

from discovery import layout

log = logging.getLogger(__name__)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '90s', '90' -> seconds. Raises ValueError naming the text."""
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}: expected a number with unit s, m, h, d or w (e.g. 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


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


def try_lead(client: Any, root: str, identity: str) -> bool:
    """Hold the ephemeral ``<root>/reaper`` node; True while this session owns it."""
    path = layout.reaper_path(root)
    sid = client.client_id[0] if client.client_id else None
    if sid is None:
        return False
    try:
        client.create(path, identity.encode(), ephemeral=True, makepath=True)
        return True
    except NodeExistsError:
        stat = client.exists(path)
        return stat is not None and stat.ephemeralOwner == sid
