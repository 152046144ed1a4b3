"""Fleet overview: hosts up/down, top-N hosts, heat maps and p50/p95/max by datacenter and role."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .panels import (
    FLEET_FILTER,
    Grid,
    datasource_variable,
    heatmap_panel,
    new_dashboard,
    query_variable,
    stat_panel,
    table_panel,
    topn_panel,
    ts,
)

F = FLEET_FILTER
TOPN = 10

# (title, fleet aggregate name, per-host series, unit)
INDICATORS = [
    ("CPU usage", "cpu_usage_percent", "instance:cpu_usage:percent", "percent"),
    ("Memory usage", "memory_usage_percent", "instance:memory_usage:percent", "percent"),
    ("Fullest filesystem", "disk_usage_percent", "instance:disk_usage_max:percent", "percent"),
    ("Load per core (1m)", "load_per_core", "instance:load_per_core:ratio", "short"),
    ("HTTP 5xx ratio", "http_5xx_ratio", "instance:http_5xx:ratio_rate5m", "percentunit"),
    ("HTTP p95 latency", "http_p95_latency_seconds", "instance:http_request_duration_seconds:p95_5m", "s"),
    ("Syslog errors (err and worse)", "syslog_errors_rate5m", "instance:syslog_errors:rate5m", "reqps"),
    ("Web server error log (error and worse)", "webserver_errors_rate5m", "instance:webserver_errors:rate5m",
     "reqps"),
]


def top(series: str) -> str:
    return f"topk({TOPN}, max by (instance, datacenter, role) ({series}{{{F}}}))"


def build() -> dashboard.Dashboard:
    d = new_dashboard(
        "fleetmon-fleet", "Fleet overview",
        "The whole fleet from the recorded series: hosts up and down, the busiest hosts, the "
        "distribution of each indicator, and p50/p95/max by datacenter and role.",
        ["fleet"])
    d = d.with_variable(datasource_variable())
    d = d.with_variable(query_variable("datacenter", "Datacenter", "label_values(instance:up:bool, datacenter)"))
    d = d.with_variable(query_variable(
        "role", "Role", 'label_values(instance:up:bool{datacenter=~"$datacenter"}, role)'))
    g = Grid()

    d = d.with_row(g.row("Hosts"))
    d = d.with_panel(g.place(stat_panel(
        "Hosts up", f"sum(datacenter_role:hosts_up:count{{{F}}})", legend="up",
        description="Hosts whose exporter answered its last scrape."), 4, 5))
    d = d.with_panel(g.place(stat_panel(
        "Hosts down", f"sum(datacenter_role:hosts_down:count{{{F}}})", legend="down",
        description="Hosts in the inventory whose scrape fails (host or agent down).",
        thresholds=[(None, "green"), (1, "red")]), 4, 5))
    d = d.with_panel(g.place(stat_panel(
        "Alerts firing", f'sum(ALERTS{{alertstate="firing",{F}}}) or vector(0)', legend="firing",
        description="Alerts firing on the shards (federated ALERTS series).",
        thresholds=[(None, "green"), (1, "orange")]), 4, 5))
    d = d.with_panel(g.place(ts(
        "Hosts down by datacenter and role",
        [(f"datacenter_role:hosts_down:count{{{F}}}", "{{datacenter}} / {{role}}")], unit="none"), 12, 5))
    d = d.with_panel(g.place(table_panel(
        "Hosts by datacenter and role",
        [(f"datacenter_role:hosts_up:count{{{F}}}", "up"),
         (f"datacenter_role:hosts_down:count{{{F}}}", "down"),
         (f"datacenter_role:hosts_total:count{{{F}}}", "total")]), 12, 8))
    d = d.with_panel(g.place(table_panel(
        "Alerts firing",
        [(f'max by (alertname, severity, datacenter, role, instance) (ALERTS{{alertstate="firing",{F}}})',
          "firing")],
        description="One row per firing alert (shards' alerts, federated)."), 12, 8))

    d = d.with_row(g.row("Top hosts"))
    d = d.with_panel(g.place(topn_panel(f"Top {TOPN} hosts by CPU", top("instance:cpu_usage:percent")), 8, 9))
    d = d.with_panel(g.place(topn_panel(f"Top {TOPN} hosts by memory",
                                        top("instance:memory_usage:percent")), 8, 9))
    d = d.with_panel(g.place(topn_panel(f"Top {TOPN} hosts by disk (fullest filesystem)",
                                        top("instance:disk_usage_max:percent")), 8, 9))
    d = d.with_panel(g.place(topn_panel(f"Top {TOPN} hosts by HTTP 5xx ratio",
                                        top("instance:http_5xx:ratio_rate5m"), unit="percentunit",
                                        max_val=1, steps=[(None, "green"), (0.01, "orange"), (0.05, "red")]),
                             12, 9))
    d = d.with_panel(g.place(topn_panel(f"Top {TOPN} hosts by syslog errors",
                                        top("instance:syslog_errors:rate5m"), unit="reqps", max_val=None,
                                        steps=[(None, "green"), (0.1, "orange"), (1, "red")]), 12, 9))

    d = d.with_row(g.row("Heat maps"))
    for title, series in (("CPU usage across hosts", "instance:cpu_usage:percent"),
                          ("Memory usage across hosts", "instance:memory_usage:percent"),
                          ("Fullest filesystem across hosts", "instance:disk_usage_max:percent")):
        d = d.with_panel(g.place(heatmap_panel(
            title, f"max by (instance) ({series}{{{F}}})",
            description="Each column is the fleet at one time; the colour is how many hosts sit in "
                        "each band."), 8, 9))

    d = d.with_row(g.row("Indicators by datacenter and role (p50 / p95 / max over hosts)"))
    for title, agg, _series, unit in INDICATORS:
        max_val = 100 if unit == "percent" else None
        d = d.with_panel(g.place(ts(
            title,
            [(f"datacenter_role:{agg}:p50{{{F}}}", "{{datacenter}}/{{role}} p50"),
             (f"datacenter_role:{agg}:p95{{{F}}}", "{{datacenter}}/{{role}} p95"),
             (f"datacenter_role:{agg}:max{{{F}}}", "{{datacenter}}/{{role}} max")],
            unit=unit, max_val=max_val), 12, 8))
    return d
