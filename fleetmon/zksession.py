"""ZooKeeper session helpers, and fleetmon's one rule for an ephemeral node held by another session.

**The rule: never delete another session's ephemeral node; wait until ZooKeeper removes it, then
create ours.** ``claim_ephemeral`` applies it and says which case it met, so the caller retries on
its next pass (every component already re-checks its nodes periodically and after reconnects).
``claim_ephemerals`` is the same rule for many paths at once, pipelined (the registrar holds one
liveness node per host, thousands in one session).

Who uses it: the registrar's liveness nodes (discovery/registry.py), the sidecar's shard replica
node (discovery/sidecar.py) and the rule agent's status node (rulesync/agent.py). The alert
router's delivery claims (alert_router/claims.py) follow the same rule with their own pipelined
create: a claim held by a peer is put back and checked again, never deleted.

Why waiting and not taking over:
- The node being waited for is a previous session of the same agent (a restart within the session
  timeout) or another process claiming the same name. In the first case the old node still says
  what the new one would (this host is alive, this shard replica exists), so nothing is lost while
  it lingers: at most one session timeout (10 s by default), after which ZooKeeper deletes it.
- In the second case (two exporters registered under one name, two sidecars started with the same
  ``--replica``), taking over makes each side delete the other's node as soon as it notices, for
  ever: the name flaps between present and absent, and each absence moves targets between shards
  or raises agent-down. Waiting leaves one holder and a log line naming the other session.
- ZooKeeper gives no way to know that a foreign session is dead before it expires; deleting on a
  guess trades a bounded wait for an unbounded fight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError

log = logging.getLogger(__name__)

CREATED = "created"  # the node did not exist; ours now
OURS = "ours"  # this session already held it (data refreshed)
FOREIGN = "foreign"  # another session holds it: left alone; call again later

# Outstanding async requests per window in claim_ephemerals: enough to fill the pipe, bounded memory.
WINDOW = 2000


def session_id(client: Any) -> int | None:
    """The current session id of a kazoo client, or None before its first session."""
    cid = client.client_id
    return cid[0] if cid else None


def is_ephemeral(stat: Any) -> bool:
    """True for a node that lives only as long as some session (``ephemeralOwner`` set)."""
    return stat is not None and bool(stat.ephemeralOwner)


def owned_by_us(client: Any, stat: Any) -> bool:
    """True when ``stat`` is an ephemeral node of the client's *current* session."""
    sid = session_id(client)
    return stat is not None and sid is not None and stat.ephemeralOwner == sid


def claim_ephemeral(client: Any, path: str, data: bytes = b"", makepath: bool = True) -> str:
    """Create ``path`` as this session's ephemeral node, following the module's rule.

    Returns CREATED, OURS (the data is set again) or FOREIGN (another session's node: never
    deleted; it is logged, and the caller tries again on its next pass). Kazoo errors propagate.
    """
    try:
        client.create(path, data, ephemeral=True, makepath=makepath)
        return CREATED
    except NodeExistsError:
        pass
    stat = client.exists(path)
    if stat is None:  # its holder's session ended between our two requests
        try:
            client.create(path, data, ephemeral=True, makepath=makepath)
            return CREATED
        except NodeExistsError:
            stat = client.exists(path)
    if owned_by_us(client, stat):
        try:
            client.set(path, data)
        except NoNodeError:
            return FOREIGN  # gone again (deleted by hand): the next pass creates it
        return OURS
    owner = stat.ephemeralOwner if stat is not None else 0
    log.info("%s is held by session 0x%x (%s); waiting for ZooKeeper to remove it", path, owner,
             "ephemeral" if owner else "a persistent node")
    return FOREIGN


def claim_ephemerals(client: Any, nodes: Iterable[tuple[str, bytes]], makepath: bool = True,
                     timeout: float = 15.0) -> dict[str, str]:
    """``claim_ephemeral`` for many ``(path, data)`` pairs, pipelined: path -> CREATED/OURS/FOREIGN.

    Same rule and results as claiming one by one, in a few round trips per ``WINDOW`` paths. The
    foreign holders are logged in one line, not one per path. Kazoo errors and the handler's reply
    timeout (after ``timeout`` seconds) propagate; the caller's next pass starts over.
    """
    items = list(nodes)
    out: dict[str, str] = {}
    taken: list[tuple[str, bytes]] = []
    for path, data, res in _pipeline(items, lambda p, d: client.create_async(
            p, d, ephemeral=True, makepath=makepath)):
        try:
            res.get(timeout=timeout)
            out[path] = CREATED
        except NodeExistsError:
            taken.append((path, data))
    ours: list[tuple[str, bytes]] = []
    foreign: dict[str, int] = {}
    for path, data, res in _pipeline(taken, lambda p, _d: client.exists_async(p)):
        stat = res.get(timeout=timeout)
        if stat is None:  # its holder's session ended meanwhile: the one-path rule decides (rare)
            out[path] = claim_ephemeral(client, path, data, makepath)
        elif owned_by_us(client, stat):
            ours.append((path, data))
        else:
            out[path] = FOREIGN
            foreign[path] = stat.ephemeralOwner
    for path, _data, res in _pipeline(ours, lambda p, d: client.set_async(p, d)):
        try:
            res.get(timeout=timeout)
            out[path] = OURS
        except NoNodeError:
            out[path] = FOREIGN  # gone again (deleted by hand): the next pass creates it
    if foreign:
        path, owner = next(iter(foreign.items()))
        log.info("%d node(s) held by other sessions (%s by 0x%x%s); waiting for ZooKeeper to remove them",
                 len(foreign), path, owner, ", ..." if len(foreign) > 1 else "")
    return out


def _pipeline(items: list[tuple[str, bytes]], start: Any):
    """Issue ``start(path, data)`` for ``items`` a window at a time; yield (path, data, result)."""
    for i in range(0, len(items), WINDOW):
        window = [(p, d, start(p, d)) for p, d in items[i:i + WINDOW]]
        yield from window
