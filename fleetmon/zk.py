"""A kazoo client with explicit, bounded retries.

kazoo's defaults retry forever with waits up to an hour; a monitoring agent must
instead fail fast, keep serving, and try again on its own schedule.
"""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

# One operation: a few quick tries (about 3 s in all), then the caller decides.
OP_RETRY = {"max_tries": 4, "delay": 0.2, "backoff": 2, "max_delay": 2.0, "ignore_expire": False}
# Connecting: keep trying, but never wait more than 5 s between attempts.
CONNECTION_RETRY = {"max_tries": -1, "delay": 0.5, "backoff": 2, "max_delay": 5.0}
# The session timeout a host's agent asks for (discovery.registry.Registrar's default, so the
# exporter's --zk). 30 s, not 10: measured on a 3-node ensemble with 2,500 per-host sessions
# (docs/capacity.md, "Sessions"), restarting a follower expired 586 sessions at 10 s and none
# at 30 s, and a session pings every third of its timeout, so 30 s also cuts the ensemble's
# ping load threefold (841 -> 290 requests/s). The cost, a crashed agent's liveness node
# lingering 30 s, pages no one: HostDown is on `up`, agent-down is held for minutes.
SESSION_TIMEOUT = 30.0
# Spread of each reconnection wait (kazoo's default is 0.4): see make_client.
CONNECTION_JITTER = 0.4


def make_client(hosts: str, timeout: float = 10.0, read_only: bool = False, *,
                handler: Any = None, reconnect_jitter: float = CONNECTION_JITTER) -> KazooClient:
    """Return an unstarted KazooClient for ``hosts`` ("h1:2181,h2:2181[/chroot]").

    ``handler``: a kazoo handler instance (default: threads); many sessions in one process use
    ``kazoo.handlers.gevent.SequentialGeventHandler`` (see simulator/sessions.py).
    ``reconnect_jitter``: each wait between reconnection rounds is multiplied by a random factor
    in [1 - j, 1 + j], so a fleet cut off at once does not come back in the same instant.
    kazoo shuffles the member list on every round, which spreads clients over the members.
    """
    sleep = {} if handler is None else {"sleep_func": handler.sleep_func}
    jitter = {"max_jitter": reconnect_jitter}
    return KazooClient(
        hosts=hosts,
        timeout=timeout,
        read_only=read_only,
        handler=handler,
        randomize_hosts=True,
        connection_retry=KazooRetry(**CONNECTION_RETRY, **jitter, **sleep),
        command_retry=KazooRetry(**OP_RETRY, **sleep),
    )


def op_retry() -> KazooRetry:
    """A fresh bounded retry for wrapping one idempotent operation."""
    return KazooRetry(**OP_RETRY)
