"""Check and repair the ACLs of an existing fleetmon tree (``fleet-discovery acl check|repair``).

A tree written before access control existed, by hand, or by a buggy client can carry ACLs
that differ from ``fleetmon.zkacl``'s policy. ``check`` walks the whole tree under the root
(pipelined, a few seconds at 25,000 hosts) and lists every node whose ACL is not the
policy's; ``repair`` sets them and creates the top-level subtrees with their ACLs, so that
no role can take one over by creating it first. Both need the admin credential: ZooKeeper
shows digests in full only to a client with ADMIN on the node.
"""

from __future__ import annotations

from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError

from fleetmon import zkacl

# Created by `repair` so that each subtree exists with its ACL before any role could make it.
SUBTREES = ("hosts", "alive", "absent", "shards", "rules", "rules/status")
WINDOW = 2000


@dataclass
class AclProblem:
    path: str
    found: str
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: ACL is {self.found}; expected {self.expected}"


def describe(acl: list, policy: zkacl.AclPolicy) -> str:
    parts = []
    for e in sorted(acl, key=lambda e: (e.id.scheme, e.id.id)):
        who = policy.role_of(e.id) or (f"{e.id.scheme}:{e.id.id.split(':', 1)[0]}" if e.id.scheme == "digest"
                                       else f"{e.id.scheme}:{e.id.id}")
        parts.append(f"{who}={''.join(sorted(e.acl_list)) if e.perms != zkacl.ALL else 'ALL'}")
    return ", ".join(parts) or "(empty)"


def walk(client: KazooClient, root: str) -> list[str]:
    """Every path under and including ``root``, breadth first, children listed pipelined."""
    out = [root]
    level = [root]
    while level:
        nxt: list[str] = []
        for i in range(0, len(level), WINDOW):
            batch = level[i:i + WINDOW]
            for p, res in [(p, client.get_children_async(p)) for p in batch]:
                try:
                    kids = res.get(timeout=30)
                except NoNodeError:
                    continue
                nxt.extend(f"{p.rstrip('/')}/{k}" for k in kids)
        out.extend(nxt)
        level = nxt
    return out


def check(client: KazooClient, root: str, policy: zkacl.AclPolicy) -> list[AclProblem]:
    """Nodes under ``root`` whose ACL is not the policy's."""
    problems = []
    paths = walk(client, root)
    for i in range(0, len(paths), WINDOW):
        batch = paths[i:i + WINDOW]
        for p, res in [(p, client.get_acls_async(p)) for p in batch]:
            try:
                acl, _ = res.get(timeout=30)
            except NoNodeError:
                continue
            except NoAuthError:
                problems.append(AclProblem(p, "(not readable by admin)", describe(policy.acl_for(p), policy)))
                continue
            want = policy.acl_for(p)
            if not zkacl.same_acl(acl, want):
                problems.append(AclProblem(p, describe(acl, policy), describe(want, policy)))
    return problems


def repair(client: KazooClient, root: str, policy: zkacl.AclPolicy) -> tuple[list[str], list[AclProblem]]:
    """Create missing subtrees, then set the policy ACL wherever it differs.
    Returns (created paths, problems fixed)."""
    created = []
    base = root.rstrip("/")
    for sub in ("", *SUBTREES):
        path = f"{base}/{sub}" if sub else (root or "/")
        if client.exists(path) is None:
            client.ensure_path(path)  # FleetKazooClient applies the policy to each new node
            created.append(path)
    problems = check(client, root, policy)
    for prob in problems:
        try:
            client.set_acls(prob.path, policy.acl_for(prob.path))
        except NoNodeError:
            continue
    return created, problems
