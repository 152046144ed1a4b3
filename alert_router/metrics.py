"""The router's own metrics, in a registry per app (tests run several apps in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from .routing import CHANNELS

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600, 21600)


class QueueDepthCollector:
    """Pending deliveries per channel, read from the queue at scrape time."""

    def __init__(self, depth: Callable[[], dict[str, int]]):
        self._depth = depth

    def collect(self):
        g = GaugeMetricFamily("alert_router_queue_depth",
                              "Deliveries waiting to be sent or being sent, by channel.", labels=["channel"])
        try:
            depth = self._depth()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the queue is busy
            depth = {}
        for ch in CHANNELS:
            g.add_metric([ch], depth.get(ch, 0))
        yield g


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("alert_router_webhook_requests", "Webhook requests by HTTP response code.",
                                ["code"], registry=r)
        self.notifications = Counter("alert_router_notifications_received",
                                     "Valid Alertmanager notifications received.", registry=r)
        self.alerts_received = Counter("alert_router_alerts_received",
                                       "Alerts (states) in valid notifications received, by status.",
                                       ["status"], registry=r)
        self.truncated = Counter("alert_router_alerts_truncated",
                                 "Alerts Alertmanager left out of notifications (truncatedAlerts).", registry=r)
        self.stored = Counter("alert_router_deliveries_stored",
                              "Delivery rows (alert state x recipient URL) durably queued, by channel.",
                              ["channel"], registry=r)
        self.duplicates = Counter("alert_router_duplicates_suppressed",
                                  "Alert states already queued for a recipient and not queued again.", registry=r)
        self.unroutable = Counter("alert_router_alerts_unroutable",
                                  "Alerts that matched no recipient URL (no group and no default).", registry=r)
        self.store_errors = Counter("alert_router_store_errors",
                                    "Notifications that could not be stored (answered 503).", registry=r)
        self.delivered = Counter("alert_router_deliveries_delivered",
                                 "Delivery rows delivered, by channel.", ["channel"], registry=r)
        self.messages = Counter("alert_router_messages_sent", "Messages sent through Apprise, by channel and kind.",
                                ["channel", "kind"], registry=r)
        self.failed = Counter("alert_router_delivery_attempts_failed",
                              "Failed delivery attempts by channel and Apprise outcome.", ["channel", "outcome"],
                              registry=r)
        self.retried = Counter("alert_router_deliveries_retried",
                               "Delivery rows scheduled for another attempt, by channel.", ["channel"], registry=r)
        self.dead = Counter("alert_router_deliveries_dead_lettered",
                            "Delivery rows given up after the retry period, by channel.", ["channel"], registry=r)
        self.digests = Counter("alert_router_digests", "Digest messages sent by flood protection, by channel.",
                               ["channel"], registry=r)
        self.start_to_delivery = Histogram(
            "alert_router_alert_start_to_delivery_seconds",
            "Seconds from a firing alert's startsAt to its delivery, by channel.", ["channel"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.receipt_to_delivery = Histogram(
            "alert_router_receipt_to_delivery_seconds",
            "Seconds from receiving a notification to delivering it, by channel.", ["channel"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.accept_seconds = Histogram(
            "alert_router_accept_duration_seconds", "Seconds to validate and durably store a notification.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.reloads = Counter("alert_router_recipients_reloads", "Recipients file loads by result.", ["result"],
                               registry=r)
        self.reload_ok = Gauge("alert_router_recipients_last_reload_successful",
                               "1 if the last recipients file load succeeded.", registry=r)
        self.recipient_groups = Gauge("alert_router_recipient_groups", "Recipient groups in use.", registry=r)
        # Router HA (claims.py): only meaningful with --zk, always exported so dashboards agree.
        self.delivered_by_peer = Counter("alert_router_deliveries_delivered_by_peer",
                                         "Delivery rows a peer router sent (its done znode), not sent here.",
                                         ["channel"], registry=r)
        self.claims = Counter("alert_router_claims",
                              "Delivery claim attempts in ZooKeeper by outcome (acquired, held_by_peer, "
                              "done_by_peer, waiting_for_zk, bypassed = sent without a claim).", ["outcome"],
                              registry=r)
        self.duplicate_sends = Counter("alert_router_duplicate_sends",
                                       "Deliveries found to have been sent by a peer router too (ZooKeeper was "
                                       "unreachable, or a session expired mid-send).", registry=r)
        self.zk_connected = Gauge("alert_router_zk_connected",
                                  "1 while connected to ZooKeeper for delivery claims (0 without --zk).",
                                  registry=r)
        for outcome in ("acquired", "held_by_peer", "done_by_peer", "waiting_for_zk", "bypassed"):
            self.claims.labels(outcome)
        for ch in CHANNELS:
            self.delivered_by_peer.labels(ch)
            for c in (self.stored, self.delivered, self.retried, self.dead, self.digests):
                c.labels(ch)
            self.messages.labels(ch, "single")
            self.messages.labels(ch, "digest")

    def watch_queue(self, depth: Callable[[], dict[str, int]]) -> None:
        self.registry.register(QueueDepthCollector(depth))
