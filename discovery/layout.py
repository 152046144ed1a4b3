"""The ZooKeeper layout of fleetmon discovery, and validation of host znode data.

Everything that names a znode path or parses znode data lives here, so the
registrar (writer), the sidecar (reader) and the CLI agree byte for byte.

Hosts are spread over ``BUCKETS`` hashed bucket parents so that no parent's child
list grows past ZooKeeper's 1 MiB reply limit and one registration costs each
watcher one small re-list instead of a 25,000-name one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ROOT = "/fleetmon"
DEFAULT_METRICS_PATH = "/metrics"
BUCKETS = 256  # bucket_of() returns two hex digits: "00".."ff"
# Znode data must stay far below ZooKeeper's 1 MiB limit; a host entry is ~200 bytes.
MAX_DATA_BYTES = 64 * 1024

# Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]*; "__" prefixed names are reserved.
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the discovery pipeline sets itself; a znode must not override them.
RESERVED_LABELS = frozenset({"instance", "job", "shard", "replica"})
# Host names become znode names and the `instance` label: no "/", no spaces.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,252}$")
SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


class InvalidHostData(ValueError):
    """Host znode data (or a registration) that fails validation; the message names the field."""


def bucket_of(name: str) -> str:
    """The bucket of host ``name``: the first byte of its SHA-256, as two hex digits."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:2]


def all_buckets() -> list[str]:
    return [f"{i:02x}" for i in range(BUCKETS)]


def normalize_root(root: str) -> str:
    root = "/" + root.strip("/")
    return root if root != "/" else ""


def hosts_path(root: str) -> str:
    return f"{normalize_root(root)}/hosts"


def alive_path(root: str) -> str:
    return f"{normalize_root(root)}/alive"


def absent_path(root: str) -> str:
    return f"{normalize_root(root)}/absent"


def shards_path(root: str) -> str:
    return f"{normalize_root(root)}/shards"


def reaper_path(root: str) -> str:
    return f"{normalize_root(root)}/reaper"


def host_bucket_path(root: str, bucket: str) -> str:
    return f"{hosts_path(root)}/{bucket}"


def alive_bucket_path(root: str, bucket: str) -> str:
    return f"{alive_path(root)}/{bucket}"


def host_path(root: str, name: str) -> str:
    return f"{hosts_path(root)}/{bucket_of(name)}/{name}"


def host_alive_path(root: str, name: str) -> str:
    return f"{alive_path(root)}/{bucket_of(name)}/{name}"


def host_absent_path(root: str, name: str) -> str:
    return f"{absent_path(root)}/{bucket_of(name)}/{name}"


def shard_path(root: str, shard: str) -> str:
    return f"{shards_path(root)}/{shard}"


def replica_path(root: str, shard: str, replica: str) -> str:
    return f"{shards_path(root)}/{shard}/{replica}"


@dataclass(frozen=True)
class HostSpec:
    """One inventory entry: where to scrape a host and the labels its series carry."""

    name: str
    address: str
    metrics_path: str = DEFAULT_METRICS_PATH
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {"address": self.address, "metrics_path": self.metrics_path, "labels": dict(self.labels)}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def __hash__(self) -> int:  # labels is a dict; hash the canonical form
        return hash(self.to_json() + self.name.encode())


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not HOST_NAME_RE.match(name) or name in (".", ".."):
        raise InvalidHostData(
            f"name {name!r}: must match {HOST_NAME_RE.pattern} (it becomes a znode name and `instance`)")
    return name


def validate_shard_name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not SHARD_NAME_RE.match(value):
        raise InvalidHostData(f"{kind} {value!r}: must match {SHARD_NAME_RE.pattern}")
    return value


def validate_address(address: Any) -> str:
    """``host:port`` or ``[v6]:port`` with port 1-65535."""
    if not isinstance(address, str):
        raise InvalidHostData(f"address: expected a string \"host:port\", got {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidHostData(f"address {address!r}: expected host:port with a port 1-65535")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise InvalidHostData(f"address {address!r}: bad IPv6 literal")
    elif any(c in host for c in "/ []@?#") or ":" in host:
        raise InvalidHostData(f"address {address!r}: host part must be a name or IP (IPv6 in brackets)")
    return address


def validate_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidHostData(f"labels: expected an object of strings, got {type(labels).__name__}")
    out: dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not LABEL_NAME_RE.match(k):
            raise InvalidHostData(f"labels.{k}: not a valid Prometheus label name")
        if k.startswith("__"):
            raise InvalidHostData(f"labels.{k}: names starting with '__' are reserved by Prometheus")
        if k in RESERVED_LABELS:
            raise InvalidHostData(f"labels.{k}: reserved (set by fleetmon discovery, not by the host)")
        if not isinstance(v, str):
            raise InvalidHostData(f"labels.{k}: value must be a string, got {type(v).__name__}")
        out[k] = v
    return out


def validate_metrics_path(path: Any) -> str:
    if path is None:
        return DEFAULT_METRICS_PATH
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " ?#"):
        raise InvalidHostData(f"metrics_path {path!r}: must be an absolute URL path like /metrics")
    return path


def make_host(name: str, address: str, labels: dict[str, str] | None = None,
              metrics_path: str | None = DEFAULT_METRICS_PATH) -> HostSpec:
    """Validate a registration; raises InvalidHostData naming the bad field."""
    return HostSpec(name=validate_name(name), address=validate_address(address),
                    metrics_path=validate_metrics_path(metrics_path), labels=validate_labels(labels))


def parse_host_data(name: str, data: bytes | None) -> HostSpec:
    """Parse a host znode's data; raises InvalidHostData naming the field that is wrong."""
    if not data:
        raise InvalidHostData("data: empty (expected JSON {\"address\": \"host:port\", ...})")
    if len(data) > MAX_DATA_BYTES:
        raise InvalidHostData(f"data: {len(data)} bytes, more than {MAX_DATA_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidHostData(f"data: not JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise InvalidHostData(f"data: expected a JSON object, got {type(doc).__name__}")
    if "address" not in doc:
        raise InvalidHostData("address: missing")
    unknown = set(doc) - {"address", "metrics_path", "labels"}
    if unknown:
        raise InvalidHostData(f"{sorted(unknown)[0]}: unknown field")
    return make_host(name, doc["address"], doc.get("labels"), doc.get("metrics_path"))


def liveness_data(agent: str, pid: int, since: float) -> bytes:
    return json.dumps({"agent": agent, "pid": pid, "since": round(since, 3)}, sort_keys=True).encode()


def replica_data(shard: str, replica: str, prometheus_url: str | None) -> bytes:
    return json.dumps({"shard": shard, "replica": replica, "prometheus_url": prometheus_url},
                      sort_keys=True).encode()


def parse_replica_data(data: bytes | None) -> dict[str, Any]:
    """Shard replica znode data; tolerant (returns {} for garbage) since only `global` needs it."""
    try:
        doc = json.loads((data or b"{}").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}
