"""A kazoo client with explicit, bounded retries.

kazoo's defaults retry forever with waits up to an hour; a monitoring agent must
instead fail fast, keep serving, and try again on its own schedule.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

# One operation: a few quick tries (about 3 s in all), then the caller decides.
OP_RETRY = {"max_tries": 4, "delay": 0.2, "backoff": 2, "max_delay": 2.0, "ignore_expire": False}
# Connecting: keep trying, but never wait more than 5 s between attempts.
CONNECTION_RETRY = {"max_tries": -1, "delay": 0.5, "backoff": 2, "max_delay": 5.0}


def make_client(hosts: str, timeout: float = 10.0, read_only: bool = False) -> KazooClient:
    """Return an unstarted KazooClient for ``hosts`` ("h1:2181,h2:2181[/chroot]")."""
    return KazooClient(
        hosts=hosts,
        timeout=timeout,
        read_only=read_only,
        connection_retry=KazooRetry(**CONNECTION_RETRY),
        command_retry=KazooRetry(**OP_RETRY),
    )


def op_retry() -> KazooRetry:
    """A fresh bounded retry for wrapping one idempotent operation."""
    return KazooRetry(**OP_RETRY)
