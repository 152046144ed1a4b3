"""fleetmon itself: exporters, discovery sidecars per shard, rule bundles, the alert router.

Read on the global Prometheus: the exporter figures are recorded per host on the shards and
federated; the sidecars' ``fleetmon_discovery_*`` and rulesync's ``fleetmon_rules_bundle_info``
are federated from the shards that scrape them; the alert router is scraped by the global
itself (job ``fleetmon-alert-router`` in prometheus/global.yml).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .panels import Grid, datasource_variable, new_dashboard, stat_panel, table_panel, topn_panel, ts

RATE = "$__rate_interval"


def build() -> dashboard.Dashboard:
    d = new_dashboard(
        "fleetmon-self", "fleetmon",
        "The monitoring system's own health: exporter collection, discovery per shard, the rule "
        "bundle each shard runs, and the alert router's queue, latency and failures.",
        ["self"])
    d = d.with_variable(datasource_variable())
    g = Grid()

    d = d.with_row(g.row("Exporters"))
    d = d.with_panel(g.place(ts(
        "Scrape duration over hosts",
        [("quantile(0.5, max by (instance) (instance:scrape_duration:seconds))", "p50"),
         ("quantile(0.95, max by (instance) (instance:scrape_duration:seconds))", "p95"),
         ("max(instance:scrape_duration:seconds)", "max")], unit="s"), 8, 8))
    d = d.with_panel(g.place(topn_panel(
        "Slowest exporters", "topk(10, max by (instance) (instance:scrape_duration:seconds))", unit="s",
        max_val=None, steps=[(None, "green"), (1, "orange"), (5, "red")]), 8, 8))
    d = d.with_panel(g.place(ts(
        "Exporter errors",
        [("sum(max by (instance) (instance:scrape_collector_failures:count))", "failing collectors"),
         ("sum(max by (instance) (instance:log_parse_errors:rate5m))", "log parse errors/s"),
         ("sum(datacenter_role:hosts_down:count)", "hosts not answering")], unit="short"), 8, 8))
    d = d.with_panel(g.place(ts(
        "Log lines read", [("sum(max by (instance) (instance:log_lines:rate5m))", "lines/s")],
        unit="reqps"), 12, 8))
    d = d.with_panel(g.place(topn_panel(
        "Log tailing lag (bytes behind)", "topk(10, max by (instance) (instance:log_lag:bytes))",
        unit="bytes", max_val=None, steps=[(None, "green"), (1048576, "orange"), (104857600, "red")]), 12, 8))

    d = d.with_row(g.row("Discovery per shard"))
    d = d.with_panel(g.place(table_panel(
        "Shards",
        [('max by (shard, replica) (up{job="fleetmon-federate"})', "federated"),
         ("max by (shard, replica) (fleetmon_discovery_zk_connected)", "zk connected"),
         ("max by (shard, replica) (fleetmon_discovery_stale)", "stale"),
         ("max by (shard, replica) (fleetmon_discovery_shard_hosts)", "hosts"),
         ("max by (shard, replica) (fleetmon_discovery_targets_in_file)", "targets in file"),
         ("max by (shard, replica) (fleetmon_discovery_invalid_entries)", "invalid entries"),
         ("time() - max by (shard, replica) (fleetmon_discovery_last_write_timestamp_seconds)",
          "seconds since write")],
        description="One row per shard replica: federation from the global, the sidecar's "
                    "ZooKeeper session, whether its targets file may be behind, and its size."), 24, 7))
    d = d.with_panel(g.place(ts(
        "Hosts per shard", [("max by (shard) (fleetmon_discovery_shard_hosts)", "{{shard}}")],
        unit="none", stack=True), 12, 8))
    d = d.with_panel(g.place(ts(
        "ZooKeeper session and staleness",
        [("max by (shard, replica) (fleetmon_discovery_zk_connected)", "{{shard}}/{{replica}} connected"),
         ("max by (shard, replica) (fleetmon_discovery_stale)", "{{shard}}/{{replica}} stale")],
        unit="none"), 12, 8))

    d = d.with_row(g.row("Rule bundles"))
    d = d.with_panel(g.place(stat_panel(
        "Distinct bundle versions loaded", "count(count by (version) (fleetmon_rules_bundle_info))",
        legend="versions", description="More than 1 for long: a shard did not load the latest bundle.",
        thresholds=[(None, "green"), (2, "orange")]), 6, 6))
    d = d.with_panel(g.place(table_panel(
        "Bundle version per shard", [("max by (shard, replica, version) (fleetmon_rules_bundle_info)", "loaded")],
        description="The rulesync bundle version each shard replica evaluates."), 18, 6))

    d = d.with_row(g.row("Alert router"))
    d = d.with_panel(g.place(ts(
        "Queue depth", [("sum by (channel) (alert_router_queue_depth)", "{{channel}}")], unit="none"), 8, 8))
    d = d.with_panel(g.place(ts(
        "Delivery latency",
        [(f"histogram_quantile(0.5, sum by (le) (rate(alert_router_receipt_to_delivery_seconds_bucket[{RATE}])))",
          "receipt -> delivered p50"),
         (f"histogram_quantile(0.95, sum by (le) (rate(alert_router_receipt_to_delivery_seconds_bucket[{RATE}])))",
          "receipt -> delivered p95"),
         (f"histogram_quantile(0.95, sum by (le) "
          f"(rate(alert_router_alert_start_to_delivery_seconds_bucket[{RATE}])))",
          "alert start -> delivered p95")], unit="s"), 8, 8))
    d = d.with_panel(g.place(ts(
        "Deliveries and failures",
        [(f"sum by (channel) (rate(alert_router_deliveries_delivered_total[{RATE}]))", "{{channel}} delivered"),
         (f"sum(rate(alert_router_delivery_attempts_failed_total[{RATE}])) or vector(0)", "failed attempts"),
         (f"sum(rate(alert_router_deliveries_retried_total[{RATE}]))", "retried"),
         (f"sum(rate(alert_router_deliveries_dead_lettered_total[{RATE}]))", "dead-lettered")],
        unit="reqps"), 8, 8))
    d = d.with_panel(g.place(ts(
        "Webhook requests by response code",
        [(f"sum by (code) (rate(alert_router_webhook_requests_total[{RATE}]))", "{{code}}")], unit="reqps"), 12, 8))
    d = d.with_panel(g.place(stat_panel(
        "Recipients file loaded", "min(alert_router_recipients_last_reload_successful)", legend="ok",
        thresholds=[(None, "red"), (1, "green")]), 6, 8))
    d = d.with_panel(g.place(stat_panel(
        "Router up", 'min(up{job="fleetmon-alert-router"})', legend="up",
        thresholds=[(None, "red"), (1, "green")]), 6, 8))
    return d
