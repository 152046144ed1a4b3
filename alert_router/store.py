"""The durable queue: SQLite in WAL mode, one transaction per notification.

A notification is stored together with one delivery row per (alert state, recipient URL)
in a single transaction, and the webhook is answered 2xx only after that commit. The
delivery row's ``dedup_key`` is unique, so the same alert state arriving again (an HA
Alertmanager pair, Alertmanager's retries, or its resending of the whole group on every
notification) adds nothing. Workers claim due rows per URL, and record the outcome; rows
left "sending" by a crash are due again at startup (at-least-once).

``synchronous=FULL`` (the default): in WAL mode each commit then fsyncs the WAL, so a
notification acknowledged to Alertmanager survives a power cut, not only a process crash.
NORMAL would skip that fsync and can lose the last commits on power loss while
Alertmanager believes them delivered. FULL costs one fsync per notification, about a
millisecond here, far below Alertmanager's send rate.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmon.secrets import mask_url

from .payload import Alert, Notification
from .routing import Route

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    truncated_alerts INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    dedup_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    severity TEXT NOT NULL,
    starts_at REAL,
    ends_at REAL,
    recipient TEXT NOT NULL,
    url TEXT NOT NULL,
    url_hash TEXT NOT NULL,
    url_masked TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    delivered_at REAL,
    digest INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_url_due ON deliveries(status, url_hash, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_channel ON deliveries(status, channel);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries(alertname);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries(created_at);
CREATE INDEX IF NOT EXISTS deliveries_notification ON deliveries(notification_id);
"""

PENDING, SENDING, DELIVERED, DEAD = "pending", "sending", "delivered", "dead"
STATUSES = (PENDING, SENDING, DELIVERED, DEAD)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def dedup_key(alert: Alert, url: str) -> str:
    return hashlib.sha256(f"{alert.state_key()}|{url}".encode()).hexdigest()


@dataclass
class EnqueueResult:
    notification_id: int | None
    stored: list[tuple[str, str]]      # (channel, url_hash) of each new delivery row
    duplicates: int
    unroutable: list[str]              # fingerprints that matched no recipient


@dataclass
class DeliveryRow:
    id: int
    notification_id: int
    fingerprint: str
    alertname: str
    alert_status: str
    severity: str
    starts_at: float | None
    ends_at: float | None
    recipient: str
    url: str
    url_hash: str
    url_masked: str
    channel: str
    attempts: int
    created_at: float
    dedup_key: str = ""


_ROW_COLS = ("id, notification_id, fingerprint, alertname, alert_status, severity, starts_at, ends_at, "
             "recipient, url, url_hash, url_masked, channel, attempts, created_at, dedup_key")


class Store:
    """Thread-safe access to the queue database (one connection per thread)."""

    def __init__(self, state_dir: str | os.PathLike[str], synchronous: str = "FULL"):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.dir, 0o700)
        except OSError:
            pass
        self.path = self.dir / "queue.sqlite3"
        self.synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        old_umask = os.umask(0o077)   # the queue holds recipient URLs: owner only
        try:
            conn = self.conn()
        finally:
            os.umask(old_umask)
        conn.executescript(SCHEMA)
        cols = {r[1] for r in conn.execute("PRAGMA table_info(deliveries)")}
        if "by_peer" not in cols:
            # Added for router HA (alert_router/claims.py): 1 when a peer router sent it.
            conn.execute("ALTER TABLE deliveries ADD COLUMN by_peer INTEGER NOT NULL DEFAULT 0")

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(f"PRAGMA synchronous={self.synchronous}")
            c.execute("PRAGMA busy_timeout=30000")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in one write transaction.

        Writers of this process queue on a Python lock rather than on SQLite's busy handler,
        which sleeps in growing steps (1, 2, 5, 10 ... 100 ms) and would dominate the accept
        latency when several webhook threads write at once.
        """
        c = self.conn()
        with self._write_lock:
            c.execute("BEGIN IMMEDIATE")
            try:
                out = fn(c)
                c.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back on its own (SQLITE_FULL, I/O errors).
                if c.in_transaction:
                    try:
                        c.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        return out

    # ------------------------------------------------------------------ accepting

    def enqueue(self, notif: Notification, routes_for: Callable[[Alert], list[Route]],
                now: float | None = None) -> EnqueueResult:
        """Store ``notif`` and its new delivery rows atomically; duplicates are skipped."""
        now = time.time() if now is None else now
        payload = json.dumps(notif.to_json(), separators=(",", ":"))
        planned = []
        unroutable = []
        for alert in notif.alerts:
            routes = routes_for(alert)
            if not routes:
                unroutable.append(alert.fingerprint)
            for r in routes:
                planned.append((alert, r))

        def work(c: sqlite3.Connection) -> EnqueueResult:
            cur = c.execute(
                "INSERT INTO notifications (received_at, receiver, group_key, status, truncated_alerts, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, notif.receiver_name, notif.group_key, notif.status, notif.truncated_alerts, payload))
            nid = cur.lastrowid
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO deliveries (notification_id, dedup_key, fingerprint, alertname,"
                " alert_status, severity, starts_at, ends_at, recipient, url, url_hash, url_masked, channel,"
                " created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(nid, dedup_key(alert, r.url), alert.fingerprint, alert.name, alert.status, alert.severity,
                  alert.starts_at_ts, alert.ends_at_ts, r.group, r.url, url_hash(r.url), mask_url(r.url),
                  r.channel, now, now) for alert, r in planned])
            inserted = c.total_changes - before
            stored: list[tuple[str, str]] = []
            if inserted:
                stored = c.execute("SELECT channel, url_hash FROM deliveries WHERE notification_id = ?",
                                   (nid,)).fetchall()
            dups = len(planned) - inserted
            if not stored and not unroutable:
                # Nothing new in it (a resend or the HA peer's copy): keep no trace of it.
                # (A notification with unroutable alerts is kept, for the record.)
                c.execute("DELETE FROM notifications WHERE id = ?", (nid,))
                nid = None
            return EnqueueResult(nid, stored, dups, unroutable)

        return self._tx(work)

    # ------------------------------------------------------------------ delivering

    def recover(self) -> int:
        """Rows a crash left in flight are due again (their send may or may not have happened)."""
        return self._tx(lambda c: c.execute(
            "UPDATE deliveries SET status = 'pending' WHERE status = 'sending'").rowcount)

    def due_urls(self, now: float) -> list[str]:
        """URLs with at least one due row. A loose index scan over (status, url_hash,
        next_attempt_at): one index probe per distinct URL, however long the backlog."""
        rows = self.conn().execute(
            """
            WITH RECURSIVE u(h) AS (
                SELECT (SELECT MIN(url_hash) FROM deliveries WHERE status = 'pending')
                UNION ALL
                SELECT (SELECT MIN(url_hash) FROM deliveries WHERE status = 'pending' AND url_hash > u.h)
                FROM u WHERE u.h IS NOT NULL
            )
            SELECT h FROM u WHERE h IS NOT NULL AND
                (SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND url_hash = u.h) <= ?
            """, (now,)).fetchall()
        return [r[0] for r in rows]

    def next_due(self) -> float | None:
        row = self.conn().execute(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'").fetchone()
        return row[0] if row else None

    def claim(self, uhash: str, now: float, limit: int = 1000) -> list[DeliveryRow]:
        """Mark the due rows of one URL as being sent and return them, oldest first."""
        def work(c: sqlite3.Connection) -> list[DeliveryRow]:
            rows = c.execute(
                f"SELECT {_ROW_COLS} FROM deliveries WHERE url_hash = ? AND status = 'pending'"
                " AND next_attempt_at <= ? ORDER BY id LIMIT ?", (uhash, now, limit)).fetchall()
            if rows:
                c.executemany("UPDATE deliveries SET status = 'sending' WHERE id = ?", [(r[0],) for r in rows])
            return [DeliveryRow(*r) for r in rows]
        return self._tx(work)

    def notifications(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = list(set(ids))
        out: dict[int, dict] = {}
        c = self.conn()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            for nid, received_at, payload in c.execute(
                    f"SELECT id, received_at, payload FROM notifications WHERE id IN ({q})", chunk):
                d = json.loads(payload)
                d["_received_at"] = received_at
                out[nid] = d
        return out

    def mark_delivered(self, ids: list[int], now: float, digest: bool = False) -> None:
        self._tx(lambda c: c.executemany(
            "UPDATE deliveries SET status = 'delivered', delivered_at = ?, last_attempt_at = ?,"
            " attempts = attempts + 1, digest = ?, last_error = NULL WHERE id = ?",
            [(now, now, int(digest), i) for i in ids]))

    def mark_peer_delivered(self, ids: list[int], now: float) -> None:
        """A peer router sent these (its done znode says so): delivered, without an attempt here."""
        self._tx(lambda c: c.executemany(
            "UPDATE deliveries SET status = 'delivered', delivered_at = ?, by_peer = 1, last_error = NULL"
            " WHERE id = ?", [(now, i) for i in ids]))

    def mark_failed(self, ids: list[int], now: float, error: str, next_attempt_at: float | None) -> None:
        """Record a failed attempt: due again at ``next_attempt_at``, or dead-lettered if None."""
        status = DEAD if next_attempt_at is None else PENDING
        self._tx(lambda c: c.executemany(
            "UPDATE deliveries SET status = ?, last_attempt_at = ?, attempts = attempts + 1,"
            " next_attempt_at = ?, last_error = ? WHERE id = ?",
            [(status, now, next_attempt_at if next_attempt_at is not None else now, error[:500], i)
             for i in ids]))

    def defer(self, ids: list[int], until: float) -> None:
        """Put claimed rows back without counting an attempt (flood protection)."""
        self._tx(lambda c: c.executemany(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ? WHERE id = ?",
            [(until, i) for i in ids]))

    def defer_if_sending(self, ids: list[int], until: float) -> None:
        self._tx(lambda c: c.executemany(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ? WHERE id = ? AND status = 'sending'",
            [(until, i) for i in ids]))

    def requeue_dead(self, ids: list[int] | None = None, now: float | None = None) -> int:
        """Give dead-lettered rows (all, or ``ids``) a new retry period, due now."""
        now = time.time() if now is None else now
        sql = ("UPDATE deliveries SET status = 'pending', next_attempt_at = ?, created_at = ?, last_error ="
               " 'requeued by operator: ' || COALESCE(last_error, '') WHERE status = 'dead'")
        if ids:
            return self._tx(lambda c: sum(c.execute(sql + " AND id = ?", (now, now, i)).rowcount for i in ids))
        return self._tx(lambda c: c.execute(sql, (now, now)).rowcount)

    # ------------------------------------------------------------------ reading

    def queue_depth(self) -> dict[str, int]:
        rows = self.conn().execute(
            "SELECT channel, COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending') GROUP BY channel")
        return dict(rows.fetchall())

    def list_deliveries(self, alert: str | None = None, recipient: str | None = None,
                        status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = [], []
        if alert:
            where.append("(alertname = ? OR fingerprint = ?)")
            args += [alert, alert]
        if recipient:
            where.append("recipient = ?")
            args.append(recipient)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = ("SELECT id, notification_id, fingerprint, alertname, alert_status, severity, recipient,"
               " url_masked, channel, status, attempts, created_at, next_attempt_at, last_attempt_at,"
               " delivered_at, digest, last_error, by_peer FROM deliveries")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        keys = ("id", "notification_id", "fingerprint", "alertname", "alert_status", "severity", "recipient",
                "url", "channel", "status", "attempts", "created_at", "next_attempt_at", "last_attempt_at",
                "delivered_at", "digest", "last_error", "by_peer")
        out = []
        for row in self.conn().execute(sql, args):
            d = dict(zip(keys, row, strict=True))
            d["digest"] = bool(d["digest"])
            d["by_peer"] = bool(d["by_peer"])
            if d["status"] in (DELIVERED, DEAD):
                d["next_attempt_at"] = None
            out.append(d)
        return out

    def count(self, table: str = "deliveries") -> int:
        assert table in ("deliveries", "notifications")
        return self.conn().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def writable(self) -> bool:
        """True if a write transaction can be committed right now (disk, locks, permissions)."""
        try:
            self._tx(lambda c: c.execute("CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY, at REAL)")
                     and c.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", (time.time(),)))
            return True
        except sqlite3.Error:
            return False

    def prune(self, older_than: float, batch: int = 5000) -> int:
        """Forget finished deliveries (and then their notifications) older than ``older_than``.

        In batches, so the write lock is never held long enough to delay a webhook.
        """
        total = 0
        while True:
            n = self._tx(lambda c: c.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status IN"
                " ('delivered', 'dead') AND created_at < ? LIMIT ?)", (older_than, batch)).rowcount)
            total += n
            if n < batch:
                break
        self._tx(lambda c: c.execute(
            "DELETE FROM notifications WHERE received_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM deliveries d WHERE d.notification_id = notifications.id)", (older_than,)))
        return total
