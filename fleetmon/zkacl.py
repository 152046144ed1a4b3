"""Who may do what on each fleetmon znode: the ACL of a path, as a pure function.

The path alone decides the ACL, whoever creates the node, so a bucket parent made by a
registrar still lets the reaper delete in it, and ``rulesync acl check`` can tell a wrong
ACL from a right one. The fleetmon root is everything before the first layout segment
(``hosts``, ``alive``, ``absent``, ``shards``, ``reaper``, ``rules``, ``alert-router``): a root
must not itself contain one of those names.

| subtree | admin | registrar | sidecar | publisher | router | reader |
|---|---|---|---|---|---|---|
| root and its parents | all | read, create | read, create | read, create | read, create | read |
| `hosts/...` | all | create, read, write, delete | read, delete (reaper) | - | - | read |
| `alive/...` | all | create, read, write, delete | read, create, delete (reaper guard) | - | - | read |
| `absent/...` | all | read, delete (deregister) | create, read, write, delete | - | - | read |
| `shards/...`, `reaper` | all | - | create, read, write, delete | read | - | read |
| `rules`, `rules/bundle` | all | - | read (+create on `rules`) | create, read, write, delete | - | read |
| `rules/status/...` | all | - | create, read, write, delete | read | - | read |
| `alert-router/...` (delivery claims) | all | - | - | - | create, read, write, delete | read |

Everyone else (anonymous, wrong password) gets nothing. Entries (leaf znodes) get the same
ACL as their subtree minus create/delete for roles that only need those on the parent.
"""

from __future__ import annotations

from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential

ROLES = ("admin", "registrar", "publisher", "sidecar", "router", "reader")
TOP = ("hosts", "alive", "absent", "shards", "reaper", "rules", "alert-router")

R, W, C, D, A = (Permissions.READ, Permissions.WRITE, Permissions.CREATE, Permissions.DELETE,
                 Permissions.ADMIN)
ALL = Permissions.ALL
CRWD = C | R | W | D

# kind -> {role: perms}; admin always gets ALL.
_TABLE: dict[str, dict[str, int]] = {
    "root": {"registrar": R | C, "sidecar": R | C, "publisher": R | C, "router": R | C, "reader": R},
    "hosts": {"registrar": CRWD, "sidecar": R | D, "reader": R},
    "hosts-entry": {"registrar": CRWD, "sidecar": R, "reader": R},
    "alive": {"registrar": CRWD, "sidecar": R | C | D, "reader": R},
    "alive-entry": {"registrar": CRWD, "sidecar": R, "reader": R},
    "absent": {"registrar": R | D, "sidecar": CRWD, "reader": R},
    "shards": {"sidecar": CRWD, "publisher": R, "reader": R},
    "reaper": {"sidecar": CRWD, "reader": R},
    "rules": {"publisher": CRWD, "sidecar": R | C, "reader": R},
    "rules-bundle": {"publisher": CRWD, "sidecar": R, "reader": R},
    "rules-status": {"sidecar": CRWD, "publisher": R, "reader": R},
    "alert-router": {"router": CRWD, "reader": R},
}


def digest_id(user: str, password: str) -> str:
    """ZooKeeper's digest identity ``user:base64(sha1(user:password))``."""
    return make_digest_acl_credential(user, password)


def split_root(path: str) -> tuple[str, list[str]]:
    """(root, segments below it); segments is empty when ``path`` is the root or above it."""
    parts = [p for p in path.split("/") if p]
    for i, p in enumerate(parts):
        if p in TOP:
            return "/" + "/".join(parts[:i]), parts[i:]
    return "/" + "/".join(parts), []


def kind_of(path: str) -> str:
    """The ACL class of ``path`` (a key of the table above)."""
    _root, rest = split_root(path)
    if not rest:
        return "root"
    top = rest[0]
    if top in ("hosts", "alive"):
        return f"{top}-entry" if len(rest) >= 3 else top
    if top == "absent":
        return "absent"
    if top in ("shards", "reaper", "alert-router"):
        return top
    # rules
    if len(rest) >= 2 and rest[1] == "status":
        return "rules-status"
    if len(rest) >= 2:
        return "rules-bundle"
    return "rules"


def admin_acl(ids: dict[str, str]) -> ACL:
    return ACL(ALL, Id("digest", ids["admin"]))


class AclPolicy:
    """ACLs from the digest identities of each role (``{role: "user:digest"}``)."""

    def __init__(self, ids: dict[str, str]):
        missing = [r for r in ROLES if r not in ids]
        if missing:
            raise ValueError(f"no digest identity for role(s) {', '.join(missing)}")
        self.ids = dict(ids)
        # One list per kind, built once: a registrar pipelines tens of thousands of creates.
        self._by_kind = {kind: [admin_acl(self.ids)] + [ACL(perms, Id("digest", self.ids[role]))
                                                      for role, perms in table.items()]
                         for kind, table in _TABLE.items()}

    def acl_for(self, path: str) -> list[ACL]:
        return list(self._by_kind[kind_of(path)])

    def role_of(self, ident: Id) -> str | None:
        for role, v in self.ids.items():
            if ident.scheme == "digest" and ident.id == v:
                return role
        return None


def same_acl(a: list[ACL], b: list[ACL]) -> bool:
    """Order-insensitive ACL equality."""
    def key(x: list[ACL]) -> set[tuple[int, str, str]]:
        return {(int(e.perms), e.id.scheme, e.id.id) for e in x}
    return key(a) == key(b)
