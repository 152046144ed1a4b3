"""Delivery workers: take due rows from the queue, send them through Apprise, record outcomes.

One dispatcher thread finds URLs with due rows and hands each URL to a thread pool, never
more than one job per URL at a time: a recipient that is slow or down holds one worker
(bounded by its plugin's own connect/read timeouts) while every other recipient keeps
flowing. A job sends one message per notification (all of that notification's new alert
states for that URL), or a single digest when the URL has had its quota of messages in
the flood window. Failures are retried with exponential backoff and jitter, scheduled in
the database (so retries survive restarts), until ``retry.max_age``; then dead-lettered.

With ``claims`` (router HA, ``alert-router serve --zk``), each row is claimed in ZooKeeper
before it is sent and recorded as done after (see claims.py): rows a peer router holds wait
``claim_recheck`` seconds, rows a peer has sent are marked delivered without sending.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fleetmon.secrets import scrub

from . import formatting
from .claims import Claims, claim_key
from .config import Config
from .metrics import RouterMetrics
from .store import DeliveryRow, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    outcome: str          # success, failure, timeout, partial, nomatch, invalid_url, exception
    detail: str = ""
    permanent: bool = False


def apprise_send(url: str, msg: formatting.Message) -> SendResult:
    """Send one message to one Apprise URL with a fresh Apprise object.

    A fresh object per delivery: reusing one makes Apprise throttle repeated sends to the
    same service (~5.5 s each). No call-level or service-level timeout: Apprise would stop
    waiting but leave the send running, and our retry could then deliver it twice. The
    plugins' own socket timeouts (Apprise's ``cto``/``rto`` URL parameters; 15 s connect for
    SMTP) bound each attempt instead.
    """
    import apprise

    asset = apprise.AppriseAsset(storage_mode="memory", service_timeout=0)
    a = apprise.Apprise(asset=asset)
    if not a.add(url):
        return SendResult(False, "invalid_url", "Apprise cannot use this URL", permanent=True)
    try:
        result = a.notify(body=msg.body or msg.title or "(empty)", title=msg.title,
                          notify_type=msg.notify_type, body_format="text")
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not kill the worker
        return SendResult(False, "exception", type(exc).__name__)
    status = getattr(result, "status", None)
    if status is None:
        # Apprise 1.x: True, False, or None when nothing matched.
        if result is True:
            return SendResult(True, "success")
        return SendResult(False, "nomatch" if result is None else "failure")
    name = status.name.lower()
    if name == "success":
        return SendResult(True, "success")
    detail = ""
    try:
        warnings = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
        detail = warnings[-1] if warnings else ""
    except Exception:  # noqa: BLE001 - logs are best effort
        pass
    # PARTIAL (some targets of a multi-target URL got it) is retried: a duplicate for some
    # people is better than silence for the others. NOMATCH cannot happen with one added
    # URL, so treat it as a failure to retry rather than as delivered.
    return SendResult(False, name, detail)


def backoff_delay(attempt: int, cfg: Config, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    r = cfg.retry
    base = min(r.max_delay, r.initial_delay * (r.multiplier ** max(0, attempt - 1)))
    return base / 2 + rng(0, base / 2)


class Deliverer:
    def __init__(self, store: Store, cfg: Config, metrics: RouterMetrics,
                 send: Callable[[str, formatting.Message], SendResult] = apprise_send,
                 secrets: Callable[[], frozenset[str]] = frozenset,
                 clock: Callable[[], float] = time.time, claims: Claims | None = None):
        self.store = store
        self.claims = claims
        self.cfg = cfg
        self.metrics = metrics
        self.send = send
        self.secrets = secrets
        self.clock = clock
        self._pool = ThreadPoolExecutor(cfg.delivery_threads, thread_name_prefix="alert-router-deliver")
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._windows: dict[str, deque[float]] = {}
        self._held_until: dict[str, float] = {}   # URL hash -> end of its flood window
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat = 0.0
        self._last_prune = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.send is apprise_send:
            # Load Apprise and its plugins now (~0.5 s of CPU), not on the first alert.
            import apprise

            apprise.Apprise().add("json://127.0.0.1/warmup")
        n = self.store.recover()
        if n:
            log.warning("%d deliveries were in flight at the last stop; sending them again", n)
        self._thread = threading.Thread(target=self._run, name="alert-router-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def alive(self) -> bool:
        """The dispatcher runs and has looped recently."""
        return (self._thread is not None and self._thread.is_alive()
                and self.clock() - self.heartbeat < max(10.0, 5 * self.cfg.poll_interval))

    # ------------------------------------------------------------------ dispatcher

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = self.clock()
            self._wake.clear()
            timeout = self.cfg.poll_interval
            try:
                now = self.clock()
                for h in self.store.due_urls(now):
                    if self._held_until.get(h, 0.0) > now:
                        continue  # flooded: its rows wait for the window and go out as one digest
                    with self._lock:
                        if h in self._in_flight:
                            continue
                        self._in_flight.add(h)
                    self._pool.submit(self._job, h)
                nxt = self.store.next_due()
                if nxt is not None and nxt > now:
                    timeout = min(timeout, max(0.005, nxt - now))
                held = [t for t in self._held_until.values() if t > now]
                if held:
                    timeout = min(timeout, max(0.005, min(held) - now))
                if now - self._last_prune > 600:
                    self._last_prune = now
                    pruned = self.store.prune(now - self.cfg.retention)
                    if pruned:
                        log.info("pruned %d finished deliveries older than %.0fs", pruned, self.cfg.retention)
            except Exception:  # noqa: BLE001 - keep dispatching; the next loop retries
                log.exception("dispatcher loop failed")
            self._wake.wait(timeout)

    def _job(self, h: str) -> None:
        try:
            self._deliver_url(h)
        except Exception as exc:  # noqa: BLE001
            log.error("delivery job failed: %s", scrub(repr(exc), list(self.secrets())))
        finally:
            with self._lock:
                self._in_flight.discard(h)
            self._wake.set()

    # ------------------------------------------------------------------ one URL

    def _window(self, h: str, now: float) -> deque[float]:
        w = self._windows.setdefault(h, deque())
        while w and w[0] <= now - self.cfg.flood.window:
            w.popleft()
        return w

    def _deliver_url(self, h: str) -> None:
        now = self.clock()
        rows = self.store.claim(h, now)
        if not rows:
            return
        held: set[str] = set()   # keys whose ZooKeeper claim this job holds
        try:
            if self.claims is not None:
                rows = self._coordinate(rows, now, held)
                if not rows:
                    return
            self._deliver_rows(h, rows, now, held)
        except Exception:
            # E.g. the database refused the outcome. Put what is still claimed back in the
            # queue (a later retry may duplicate a message; losing it would be worse).
            ids = [r.id for r in rows]
            self.store.defer_if_sending(ids, now + backoff_delay(1, self.cfg))
            raise
        finally:
            if self.claims is not None and held:
                # Failed, deferred or flood-held rows: let a peer (or our own retry) take them.
                self.claims.release(held)

    def _coordinate(self, rows: list[DeliveryRow], now: float, held: set[str]) -> list[DeliveryRow]:
        """Claim the rows in ZooKeeper; return those this router sends now."""
        assert self.claims is not None
        by_key: dict[str, list[DeliveryRow]] = {}
        for r in rows:
            by_key.setdefault(self._claim_key(r), []).append(r)
        # Two rows of one alert state here (the same episode reported with starts a replica
        # apart, or two episodes): send the oldest now; the other is looked at again after
        # it, and then counts as done or as a new episode.
        first = {k: rs[0] for k, rs in by_key.items()}
        again = [r.id for rs in by_key.values() for r in rs[1:]]
        res = self.claims.acquire(list(first), {k: r.starts_at for k, r in first.items()})
        if res.done:
            ids = [first[k].id for k in res.done]
            self.store.mark_peer_delivered(ids, self.clock())
            self.metrics.delivered_by_peer.labels(rows[0].channel).inc(len(ids))
            log.info("%d alert state(s) for %s already delivered by a peer router", len(ids), rows[0].url_masked)
        later = [first[k].id for k in res.later] + again
        if later:
            self.store.defer(later, now + self.cfg.claim_recheck)
        bypassed = set(res.bypassed)
        held.update(k for k in res.send if k not in bypassed)
        send = {first[k].id for k in res.send}
        return [r for r in rows if r.id in send]

    @staticmethod
    def _claim_key(r: DeliveryRow) -> str:
        return claim_key(r.fingerprint, r.alert_status, r.url_hash)

    def _deliver_rows(self, h: str, rows: list[DeliveryRow], now: float, held: set[str] | None = None) -> None:
        notifs = self.store.notifications(r.notification_id for r in rows)
        batches: dict[int, list[DeliveryRow]] = {}
        for r in rows:
            batches.setdefault(r.notification_id, []).append(r)
        window = self._window(h, now)
        budget = self.cfg.flood.max_per_window - len(window)
        first = rows[0]
        if budget <= 0:
            until = window[0] + self.cfg.flood.window
            self._held_until[h] = until
            self.store.defer([r.id for r in rows], until)
            log.info("flood protection: %d alert(s) for %s (%s) held until %.0fs from now, then sent as a digest",
                     len(rows), first.url_masked, first.recipient, until - now)
            return
        if len(batches) <= budget:
            items = list(batches.items())
            for i, (nid, brows) in enumerate(items):
                alerts = self._alerts(notifs[nid], brows)
                msg = formatting.render(first.channel, alerts, notifs[nid], self.cfg.sms_max_chars, now)
                res = self._send(first.url, msg)
                retry_at = self._record(brows, res, "single", notifs, held)
                if retry_at is not None:
                    # The recipient is failing: do not spend a timeout per remaining notification.
                    rest = [r.id for _, rr in items[i + 1:] for r in rr]
                    if rest:
                        self.store.defer(rest, retry_at)
                    return
        else:
            pairs = [(notifs[nid], self._alerts(notifs[nid], brows)) for nid, brows in batches.items()]
            msg = formatting.digest(first.channel, pairs, self.cfg.sms_max_chars, self.cfg.flood.window)
            res = self._send(first.url, msg)
            if res.ok:
                self.metrics.digests.labels(first.channel).inc()
            self._record(rows, res, "digest", notifs, held)

    def _alerts(self, notif: dict, rows: list[DeliveryRow]) -> list[dict]:
        by_fp = {a.get("fingerprint"): a for a in notif.get("alerts", [])}
        return [by_fp[r.fingerprint] for r in rows if r.fingerprint in by_fp]

    def _send(self, url: str, msg: formatting.Message) -> SendResult:
        try:
            return self.send(url, msg)
        except Exception as exc:  # noqa: BLE001
            return SendResult(False, "exception", type(exc).__name__)

    def _record(self, rows: list[DeliveryRow], res: SendResult, kind: str, notifs: dict[int, dict],
                held: set[str] | None = None) -> float | None:
        """Store the outcome; return the retry time if the attempt failed and will be retried."""
        now = self.clock()
        ch = rows[0].channel
        masked = rows[0].url_masked
        ids = [r.id for r in rows]
        names = ", ".join(sorted({r.alertname for r in rows}))
        if res.ok:
            self.store.mark_delivered(ids, now, digest=(kind == "digest"))
            if self.claims is not None:
                starts = {self._claim_key(r): r.starts_at for r in rows}
                self.claims.complete(list(starts), starts, held=held if held is not None else ())
                if held is not None:
                    held.difference_update(starts)
            self._window(rows[0].url_hash, now).append(now)
            self.metrics.messages.labels(ch, kind).inc()
            self.metrics.delivered.labels(ch).inc(len(rows))
            for r in rows:
                received = notifs.get(r.notification_id, {}).get("_received_at", r.created_at)
                self.metrics.receipt_to_delivery.labels(ch).observe(max(0.0, now - received))
                if r.alert_status == "firing" and r.starts_at:
                    self.metrics.start_to_delivery.labels(ch).observe(max(0.0, now - r.starts_at))
            log.info("delivered %s message with %d alert state(s) [%s] to %s (%s, group %s)",
                     kind, len(rows), names, masked, ch, rows[0].recipient)
            return None
        detail = scrub(f"{res.outcome}: {res.detail}" if res.detail else res.outcome,
                       [rows[0].url, *self.secrets()])[:300]
        self.metrics.failed.labels(ch, res.outcome).inc()
        attempts = max(r.attempts for r in rows) + 1
        oldest = min(r.created_at for r in rows)
        deadline = oldest + self.cfg.retry.max_age
        if res.permanent or now >= deadline:
            self.store.mark_failed(ids, now, detail, None)
            self.metrics.dead.labels(ch).inc(len(rows))
            log.error("DEAD LETTER: %d alert state(s) [%s] for %s (%s, group %s) not delivered after %d "
                      "attempt(s) over %.0fs: %s", len(rows), names, masked, ch, rows[0].recipient, attempts,
                      now - oldest, detail)
            return None
        retry_at = min(now + backoff_delay(attempts, self.cfg), deadline)
        self.store.mark_failed(ids, now, detail, retry_at)
        self.metrics.retried.labels(ch).inc(len(rows))
        log.warning("delivery of %d alert state(s) [%s] to %s (%s) failed (attempt %d: %s); retrying in %.1fs",
                    len(rows), names, masked, ch, attempts, detail, retry_at - now)
        return retry_at
