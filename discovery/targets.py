"""Znode state -> Prometheus file_sd JSON. Pure: no ZooKeeper, no disk.

One target group per host, sorted by host name, so the two replicas of a shard (an
HA pair) render byte-identical files from the same ZooKeeper state. Liveness is
deliberately *not* a target label: a label that flips when an agent reconnects would
change the identity of every series of that host (series churn, broken `rate()`s).
It is exported by the sidecar as `fleetmon_discovery_agent_alive{instance}` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from discovery.layout import HostSpec
from discovery.sharding import assign


def host_target(spec: HostSpec) -> dict[str, Any]:
    labels = dict(spec.labels)
    labels["instance"] = spec.name
    labels["__metrics_path__"] = spec.metrics_path
    return {"targets": [spec.address], "labels": dict(sorted(labels.items()))}


def shard_hosts(hosts: Mapping[str, HostSpec], live_shards: Iterable[str], shard: str) -> list[HostSpec]:
    """Hosts owned by ``shard``; ``shard`` itself always counts as live (we are running)."""
    shards = set(live_shards) | {shard}
    return [hosts[n] for n in sorted(hosts) if assign(n, shards) == shard]


def shard_targets(hosts: Mapping[str, HostSpec], live_shards: Iterable[str], shard: str) -> list[dict]:
    return [host_target(h) for h in shard_hosts(hosts, live_shards, shard)]


def render_group(group: dict) -> str:
    return json.dumps(group, sort_keys=True, separators=(",", ":"))


def join_lines(lines: list[str]) -> str:
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"


def render(groups: list[dict]) -> str:
    """The file_sd JSON text (stable key order, one group per line for readable diffs)."""
    return join_lines([render_group(g) for g in groups])


def global_targets(replicas: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict]:
    """One federation target per live shard replica with a ``prometheus_url``.

    ``replicas`` is {shard: {replica: znode JSON}}. A URL path prefix (Prometheus behind
    ``--web.route-prefix``) becomes ``__metrics_path__`` = prefix + /federate, and an
    https URL sets ``__scheme__``; plain ``http://host:port`` sets neither.
    """
    groups = []
    for shard in sorted(replicas):
        for replica in sorted(replicas[shard]):
            url = replicas[shard][replica].get("prometheus_url")
            if not isinstance(url, str) or not url:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                continue
            labels = {"shard": shard, "replica": replica}
            prefix = parts.path.rstrip("/")
            if prefix:
                labels["__metrics_path__"] = prefix + "/federate"
            if parts.scheme == "https":
                labels["__scheme__"] = "https"
            netloc = parts.netloc.rsplit("@", 1)[-1]  # never carry credentials into a target
            groups.append({"targets": [netloc], "labels": labels})
    return groups
