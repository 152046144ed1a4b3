"""The ZooKeeper side of `rulesync apply / diff / status`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from rulesync import bundle as bundle_mod


def bundle_path(root: str) -> str:
    return f"{root.rstrip('/')}/rules/bundle"


# znode version of a bundle path that does not exist yet (ZooKeeper versions start at 0).
ABSENT = -1


class PublishConflict(RuntimeError):
    """Someone else published a bundle since this one was compared against what was published."""


def published(client: KazooClient, root: str) -> bundle_mod.Bundle | None:
    return published_with_version(client, root)[0]


def published_with_version(client: KazooClient, root: str) -> tuple[bundle_mod.Bundle | None, int]:
    """(published bundle or None, znode version or ABSENT). BundleError if unreadable; its
    ``znode_version`` attribute still carries the version, so it can be replaced safely."""
    try:
        data, stat = client.get(bundle_path(root))
    except NoNodeError:
        return None, ABSENT
    if not data:
        return None, stat.version
    try:
        return bundle_mod.decode(data), stat.version
    except bundle_mod.BundleError as exc:
        exc.znode_version = stat.version  # type: ignore[attr-defined]
        raise


def publish(client: KazooClient, root: str, b: bundle_mod.Bundle, expected_version: int | None = None,
            signing_key: Ed25519PrivateKey | None = None, unsigned: bool = False) -> int:
    """Write the bundle, signed with ``signing_key`` (default: ``bundle.load_private_key()``;
    ``unsigned`` skips signing, for agents run with --rules-allow-unsigned); returns the new
    znode version.

    With ``expected_version`` (the znode version seen when the diff was computed, ABSENT if
    there was no bundle) this is a compare-and-set: if anyone published in between, nothing
    is written and PublishConflict says so, so two people applying at once cannot silently
    overwrite each other.
    """
    if not unsigned and signing_key is None:
        signing_key = bundle_mod.load_private_key()
    data = bundle_mod.encode(b, None if unsigned else signing_key)
    path = bundle_path(root)
    if expected_version is None:
        if client.exists(path) is None:
            client.create(path, data, makepath=True)
            return 0
        return client.set(path, data).version
    if expected_version == ABSENT:
        try:
            client.create(path, data, makepath=True)
            return 0
        except NodeExistsError:
            raise PublishConflict(_conflict(client, root, expected_version)) from None
    try:
        return client.set(path, data, version=expected_version).version
    except (BadVersionError, NoNodeError):
        raise PublishConflict(_conflict(client, root, expected_version)) from None


def _conflict(client: KazooClient, root: str, expected: int) -> str:
    seen = "no bundle" if expected == ABSENT else f"znode version {expected}"
    try:
        b, now = published_with_version(client, root)
        what = f"bundle {b.version} (znode version {now})" if b else f"znode version {now}"
    except bundle_mod.BundleError as exc:
        what = f"an unreadable bundle (znode version {getattr(exc, 'znode_version', '?')})"
    except NoNodeError:
        what = "no bundle (it was deleted)"
    return (f"{bundle_path(root)} changed since it was compared ({seen}); now it holds {what}: "
            "someone else applied in between. Nothing was published: run `rulesync diff` again, "
            "review, and re-apply")


def live_replicas(client: KazooClient, root: str) -> list[tuple[str, str]]:
    """(shard, replica) of every running sidecar (ephemeral /<root>/shards/<shard>/<replica>)."""
    base = f"{root.rstrip('/')}/shards"
    out = []
    try:
        shards = client.get_children(base)
    except NoNodeError:
        return out
    for s in sorted(shards):
        try:
            out.extend((s, r) for r in sorted(client.get_children(f"{base}/{s}")))
        except NoNodeError:
            continue
    return out


def replica_prometheus_urls(client: KazooClient, root: str) -> dict[tuple[str, str], str | None]:
    """{(shard, replica): its Prometheus URL from the sidecar's registration, None if unknown}."""
    out: dict[tuple[str, str], str | None] = {}
    base = f"{root.rstrip('/')}/shards"
    for s, r in live_replicas(client, root):
        try:
            data, _ = client.get(f"{base}/{s}/{r}")
            url = json.loads(data or b"{}").get("prometheus_url")
        except (NoNodeError, ValueError, AttributeError):
            url = None
        out[(s, r)] = url if isinstance(url, str) and url else None
    return out


def statuses(client: KazooClient, root: str) -> dict[tuple[str, str], dict]:
    base = f"{root.rstrip('/')}/rules/status"
    out: dict[tuple[str, str], dict] = {}
    try:
        shards = client.get_children(base)
    except NoNodeError:
        return out
    for s in shards:
        try:
            replicas = client.get_children(f"{base}/{s}")
        except NoNodeError:
            continue
        for r in replicas:
            try:
                data, _ = client.get(f"{base}/{s}/{r}")
                out[(s, r)] = json.loads(data or b"{}")
            except (NoNodeError, ValueError):
                continue
    return out


@dataclass
class WaitResult:
    version: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing


def wait_for(client: KazooClient, root: str, version: str, timeout: float = 60.0,
             poll: float = 0.2) -> WaitResult:
    """Wait until every live shard replica reports ``version`` loaded, or one reports failing it."""
    deadline = time.monotonic() + timeout
    while True:
        live = live_replicas(client, root)
        st = statuses(client, root)
        res = WaitResult(version)
        for key in live:
            name = "/".join(key)
            s = st.get(key)
            if s and s.get("version") == version:
                if s.get("ok"):
                    res.done.append(name)
                else:
                    res.failed[name] = str(s.get("error"))
            else:
                res.missing.append(name)
        if not res.missing or time.monotonic() >= deadline:
            return res
        time.sleep(poll)


def rules_of(files: dict[str, str]) -> dict[str, dict]:
    """{alert or record name: rule} over every group of every file (version marker left out)."""
    out: dict[str, dict] = {}
    for _name, text in sorted(files.items()):
        doc = yaml.safe_load(text) or {}
        for g in doc.get("groups", []) or []:
            if g.get("name") == "fleetmon_rules_version":
                continue
            for r in g.get("rules", []) or []:
                out[r.get("alert") or r.get("record")] = r
    return out


def diff(new_files: dict[str, str], old: bundle_mod.Bundle | None) -> tuple[list[str], list[str], list[str]]:
    """(added, changed, removed) rule names of ``new_files`` against the published bundle."""
    new = rules_of(new_files)
    prev = rules_of(old.files) if old else {}
    added = sorted(set(new) - set(prev))
    removed = sorted(set(prev) - set(new))
    changed = sorted(k for k in set(new) & set(prev) if new[k] != prev[k])
    return added, changed, removed
