"""The ZooKeeper side of `rulesync apply / diff / status`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from rulesync import bundle as bundle_mod


def bundle_path(root: str) -> str:
    return f"{root.rstrip('/')}/rules/bundle"


def published(client: KazooClient, root: str) -> bundle_mod.Bundle | None:
    try:
        data, _ = client.get(bundle_path(root))
    except NoNodeError:
        return None
    return bundle_mod.decode(data) if data else None


def publish(client: KazooClient, root: str, b: bundle_mod.Bundle) -> None:
    data = bundle_mod.encode(b)
    path = bundle_path(root)
    if client.exists(path) is None:
        client.create(path, data, makepath=True)
    else:
        client.set(path, data)


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
