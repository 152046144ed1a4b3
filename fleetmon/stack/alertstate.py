"""Alerting state an earlier run of the local stack left behind, which would make this run
hold back alerts it should send: Alertmanager's notification log and the routers' done
records in ZooKeeper. ``start`` removes both unless asked to keep them."""

from __future__ import annotations

from pathlib import Path


def reset_alert_state(run: Path) -> list[Path]:
    """Drop each Alertmanager's notification log (``<storage.path>/nflog``) left by an earlier run.

    It records what was already sent: kept, it makes Alertmanager hold back the same alerts
    (the seed's CPU alert for web-0042) for repeat_interval (4h) after a `make stop` / `make run`,
    as if they had been mailed in this run. Silences (``silences``), the shards' metric history,
    the router's delivery history and the mailbox are kept. Returns the files removed.
    """
    removed = []
    for nflog in sorted(run.glob("alertmanager*/data*/nflog")):
        nflog.unlink(missing_ok=True)
        removed.append(nflog)
    return removed


def reset_router_claims(zk_hosts: str, root: str = "/fleetmon") -> bool:
    """Delete the routers' done records (``<root>/alert-router/done``) left by an earlier run.

    They are alerting state too: kept, a router treats an alert of this run whose start falls
    within ``claim_start_skew`` (30 s) of the last run's as already delivered, so a quick
    `make stop` / `make run` mails nothing. Returns whether there were any."""
    from fleetmon.zk import make_client

    client = make_client(zk_hosts, role="admin")
    client.start(timeout=15)
    try:
        path = f"{root}/alert-router/done"
        if client.exists(path) is None:
            return False
        client.delete(path, recursive=True)
        return True
    finally:
        client.stop()
        client.close()


