"""Host detail: every indicator of one host ($host), and which shard scrapes it."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .panels import (
    HOST_DASHBOARD_UID,
    Grid,
    datasource_variable,
    new_dashboard,
    query_variable,
    stat_panel,
    table_panel,
    ts,
)

H = 'instance="$host"'


def build() -> dashboard.Dashboard:
    d = new_dashboard(
        HOST_DASHBOARD_UID, "Host detail",
        "One host from its recorded series: CPU, memory, swap, disks, network, load, logs and "
        "HTTP traffic. On the global data source, series are deduplicated over the replicas "
        "of the host's shard.",
        ["host"])
    d = d.with_variable(datasource_variable())
    d = d.with_variable(query_variable("datacenter", "Datacenter", "label_values(instance:up:bool, datacenter)"))
    d = d.with_variable(query_variable(
        "role", "Role", 'label_values(instance:up:bool{datacenter=~"$datacenter"}, role)'))
    d = d.with_variable(query_variable(
        "host", "Host", 'label_values(instance:up:bool{datacenter=~"$datacenter",role=~"$role"}, instance)',
        multi=False, include_all=False))
    g = Grid()

    d = d.with_row(g.row("Status"))
    d = d.with_panel(g.place(stat_panel(
        "Up", f"max(instance:up:bool{{{H}}})", legend="up",
        thresholds=[(None, "red"), (1, "green")]), 3, 4))
    d = d.with_panel(g.place(stat_panel("Uptime", f"max(instance:uptime:seconds{{{H}}})", unit="s",
                                        legend="uptime"), 3, 4))
    d = d.with_panel(g.place(stat_panel("CPUs", f"max(instance:cpu_count:count{{{H}}})", legend="cpus"), 3, 4))
    d = d.with_panel(g.place(stat_panel("Memory", f"max(instance:memory_total:bytes{{{H}}})", unit="bytes",
                                        legend="total"), 3, 4))
    d = d.with_panel(g.place(table_panel(
        "Scraped by",
        [(f"max by (shard, replica, job, datacenter, role, env) (instance:up:bool{{{H}}})", "last scrape ok")],
        description="The shard Prometheus (and replicas) scraping this host, from the external "
                    "labels the global view sees; value 1 = its last scrape succeeded."), 12, 4))

    d = d.with_row(g.row("CPU and memory"))
    d = d.with_panel(g.place(ts(
        "CPU by mode", [(f'max by (mode) (instance_mode:cpu_usage:percent{{{H},mode!="idle"}})', "{{mode}}")],
        unit="percent", stack=True, max_val=100), 12, 8))
    d = d.with_panel(g.place(ts(
        "Memory and swap usage",
        [(f"max(instance:memory_usage:percent{{{H}}})", "memory"),
         (f"max(instance:swap_usage:percent{{{H}}})", "swap")], unit="percent", max_val=100), 12, 8))
    d = d.with_panel(g.place(ts(
        "Memory available", [(f"max(instance:memory_available:bytes{{{H}}})", "available"),
                             (f"max(instance:memory_total:bytes{{{H}}})", "total")], unit="bytes"), 12, 8))
    d = d.with_panel(g.place(ts(
        "Load per core",
        [(f"max(instance:load_per_core:ratio{{{H}}})", "1m"),
         (f"max(instance:load5_per_core:ratio{{{H}}})", "5m"),
         (f"max(instance:load15_per_core:ratio{{{H}}})", "15m")], unit="short"), 12, 8))

    d = d.with_row(g.row("Disks and network"))
    d = d.with_panel(g.place(ts(
        "Filesystem usage", [(f"max by (mountpoint) (instance_mountpoint:disk_usage:percent{{{H}}})",
                              "{{mountpoint}}")], unit="percent", max_val=100), 12, 8))
    d = d.with_panel(g.place(ts(
        "Inode usage", [(f"max by (mountpoint) (instance_mountpoint:inode_usage:percent{{{H}}})",
                         "{{mountpoint}}")], unit="percent", max_val=100), 12, 8))
    d = d.with_panel(g.place(ts(
        "Disk I/O",
        [(f"max by (device) (instance_device:disk_read_bytes:rate5m{{{H}}})", "{{device}} read"),
         (f"max by (device) (instance_device:disk_written_bytes:rate5m{{{H}}})", "{{device}} written")],
        unit="Bps"), 8, 8))
    d = d.with_panel(g.place(ts(
        "Disk busy time", [(f"max by (device) (instance_device:disk_io_time:ratio_rate5m{{{H}}})", "{{device}}")],
        unit="percentunit", max_val=1), 8, 8))
    d = d.with_panel(g.place(ts(
        "Network",
        [(f"max by (device) (instance_device:network_receive_bytes:rate5m{{{H}}})", "{{device}} received"),
         (f"max by (device) (instance_device:network_transmit_bytes:rate5m{{{H}}})", "{{device}} sent")],
        unit="Bps"), 8, 8))

    d = d.with_row(g.row("Logs and HTTP"))
    d = d.with_panel(g.place(ts(
        "Syslog messages by severity",
        [(f"max by (severity) (instance_severity:syslog_messages:rate5m{{{H}}})", "{{severity}}")],
        unit="reqps", stack=True), 12, 8))
    d = d.with_panel(g.place(ts(
        "Web server error log by level",
        [(f"max by (level) (instance_level:webserver_errors:rate5m{{{H}}})", "{{level}}")],
        unit="reqps", stack=True), 12, 8))
    d = d.with_panel(g.place(ts(
        "HTTP requests by status",
        [(f"max by (status) (instance_status:http_requests:rate5m{{{H}}})", "{{status}}")],
        unit="reqps", stack=True), 12, 8))
    d = d.with_panel(g.place(ts(
        "HTTP 5xx ratio", [(f"max(instance:http_5xx:ratio_rate5m{{{H}}})", "5xx / all")],
        unit="percentunit"), 12, 8))
    d = d.with_panel(g.place(ts(
        "HTTP latency quantiles",
        [(f"max(instance:http_request_duration_seconds:p50_5m{{{H}}})", "p50"),
         (f"max(instance:http_request_duration_seconds:p95_5m{{{H}}})", "p95"),
         (f"max(instance:http_request_duration_seconds:p99_5m{{{H}}})", "p99")], unit="s"), 12, 8))
    d = d.with_panel(g.place(ts(
        "Exporter: collection and log tailing",
        [(f"max(instance:scrape_duration:seconds{{{H}}})", "scrape duration"),
         (f"max(instance:scrape_collector_failures:count{{{H}}})", "failing collectors"),
         (f"max(instance:log_parse_errors:rate5m{{{H}}})", "log parse errors/s")], unit="short"), 12, 8))
    return d
