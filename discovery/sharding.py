"""Rendezvous (highest-random-weight) assignment of hosts to live shards. Pure.

Every shard scores every host with a hash of (shard, host); the host goes to the
highest score. All sidecars compute the same answer from the same live-shard set,
so every host lands in exactly one shard, and adding or losing one of N shards
moves only about 1/N of the hosts (hashmod relabeling moves most of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(shard: str, host: str) -> int:
    """64-bit weight of ``host`` on ``shard`` (blake2b of "shard\\0host")."""
    digest = hashlib.blake2b(f"{shard}\0{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(host: str, shards: Iterable[str]) -> str | None:
    """The shard that owns ``host`` (None when there is no shard).

    Ties (64-bit scores; never seen in practice) go to the larger shard name, so the
    answer never depends on the order of ``shards``.
    """
    return max(shards, key=lambda s: (score(s, host), s), default=None)


def partition(hosts: Iterable[str], shards: Iterable[str]) -> dict[str, list[str]]:
    """Map every live shard to the sorted list of hosts it owns (shards with none included)."""
    shard_list = sorted(set(shards))
    out: dict[str, list[str]] = {s: [] for s in shard_list}
    if not shard_list:
        return out
    for h in hosts:
        out[assign(h, shard_list)].append(h)  # type: ignore[index]
    for v in out.values():
        v.sort()
    return out


def hashmod_assign(host: str, shards: list[str]) -> str:
    """What Prometheus `hashmod` relabeling does (md5 of the address mod N): for comparison only."""
    n = int.from_bytes(hashlib.md5(host.encode()).digest()[8:], "big") % len(shards)
    return sorted(shards)[n]


def moved_fraction(hosts: list[str], before: list[str], after: list[str], hashmod: bool = False) -> float:
    """Fraction of ``hosts`` whose shard differs between the two shard sets."""
    fn = (lambda h, s: hashmod_assign(h, s)) if hashmod else (lambda h, s: assign(h, s))
    if not hosts:
        return 0.0
    moved = sum(1 for h in hosts if fn(h, before) != fn(h, after))
    return moved / len(hosts)
