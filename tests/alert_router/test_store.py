"""The durable queue: one transaction per notification, duplicate suppression, crash recovery."""

from __future__ import annotations

import copy
import sqlite3
import stat

import pytest

from alert_router.payload import parse_notification
from alert_router.routing import route
from alert_router.store import Store

REC = {"default": ["mailto://ops@example.test", "json://127.0.0.1:1/hook"]}


def routes(alert):
    return route(alert.labels, REC)


def test_wal_full_sync_and_private_file(tmp_path):
    s = Store(tmp_path / "state")
    c = s.conn()
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(s.path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(s.dir.stat().st_mode) == 0o700


def test_duplicates_ha_pair_and_group_resend(tmp_path, payloads):
    s = Store(tmp_path)
    doc = payloads["am025_truncated_firing_max_alerts_3"]
    first = s.enqueue(parse_notification(doc), routes)
    assert len(first.stored) == 3 * 2 and first.duplicates == 0
    # The HA peer (or Alertmanager's retry) sends the same notification: nothing new.
    again = s.enqueue(parse_notification(doc), routes)
    assert again.stored == [] and again.duplicates == 6 and again.notification_id is None
    assert s.count("notifications") == 1
    # Next flush of the group: the 3 alerts again plus a new one and one resolved.
    resend = copy.deepcopy(doc)
    new = copy.deepcopy(doc["alerts"][0])
    new.update(fingerprint="aaaabbbbccccdddd", labels={**new["labels"], "instance": "web-9:9100"})
    resend["alerts"].append(new)
    resend["alerts"][1].update(status="resolved", endsAt="2026-11-28T06:45:00Z")
    res = s.enqueue(parse_notification(resend), routes)
    assert len(res.stored) == 4 and res.duplicates == 4  # 2 unchanged alerts x 2 URLs
    rows = s.list_deliveries(limit=1000)
    assert sorted({(r["fingerprint"], r["alert_status"]) for r in rows if r["notification_id"] == res.notification_id}) \
        == sorted({("aaaabbbbccccdddd", "firing"), (doc["alerts"][1]["fingerprint"], "resolved")})
    # A re-fire (new startsAt) is a new state.
    refire = copy.deepcopy(doc)
    refire["alerts"] = [copy.deepcopy(doc["alerts"][1])]
    refire["alerts"][0]["startsAt"] = "2026-11-28T07:00:00Z"
    assert len(s.enqueue(parse_notification(refire), routes).stored) == 2


def test_one_transaction_nothing_partial(tmp_path, payloads):
    s = Store(tmp_path)
    # A write that fails half-way through the notification (disk full, I/O error).
    doc = payloads["am025_grouped_firing_25_alerts"]
    notif = parse_notification(doc)
    planned = [routes(a) for a in notif.alerts]
    it = iter(planned)
    conn = s.conn()
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON deliveries WHEN "
                 "(SELECT COUNT(*) FROM deliveries) >= 7 BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.IntegrityError):
        s.enqueue(notif, lambda a: next(it))
    assert s.count("deliveries") == 0 and s.count("notifications") == 0
    conn.execute("DROP TRIGGER boom")
    assert len(s.enqueue(notif, routes).stored) == sum(len(p) for p in planned) > 7


def test_claim_recover_and_outcomes_survive_reopen(tmp_path, payloads):
    s = Store(tmp_path)
    s.enqueue(parse_notification(payloads["am025_firing_single"]), routes)
    urls = s.due_urls(now=1e12)
    assert len(urls) == 2
    claimed = s.claim(urls[0], now=1e12)
    assert len(claimed) == 1
    s.close()
    # A crash while sending: the row is due again after restart.
    s2 = Store(tmp_path)
    assert s2.recover() == 1
    assert sorted(s2.due_urls(now=1e12)) == sorted(urls)
    rows = s2.claim(urls[0], now=1e12)
    s2.mark_failed([rows[0].id], now=100.0, error="failure", next_attempt_at=200.0)
    assert s2.list_deliveries(status="pending")[0]["attempts"] in (0, 1)
    rows = s2.claim(urls[0], now=300.0)
    s2.mark_delivered([rows[0].id], now=301.0)
    d = s2.list_deliveries(status="delivered")
    assert len(d) == 1 and d[0]["attempts"] == 2 and d[0]["next_attempt_at"] is None
    assert s2.queue_depth() == {"push": 1}
    assert s2.prune(older_than=1e12) == 1
    assert s2.count("deliveries") == 1
