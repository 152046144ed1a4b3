"""Built-in signals: names users write instead of PromQL, and the PromQL each compiles to.

Each signal has an *instant* expression built from a host selector ``{sel}`` and, for
counter-based signals, a rate range ``{r}``. ``rulesync.generate`` turns it into an
aggregate over the rule's window. Every expression keeps ``instance`` and the host
labels (``datacenter``, ``role``, ``env`` and any label the rule's selector uses) as
``{by}``, so Alertmanager and the router see them on every alert.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST_LABELS = ("instance", "datacenter", "role", "env")

# Pseudo file systems never worth alerting on.
_FS = 'fstype!~"tmpfs|ramfs|devtmpfs|squashfs|overlay|nsfs|fuse.lxcfs|autofs|proc|sysfs"'


# Labels every per-host recorded series in prometheus/rules/recording.yml keeps (its header):
# a host selector on any other label cannot be applied to the recorded series.
RECORDED_KEEPS = ("instance", "job", "datacenter", "role", "env")


@dataclass(frozen=True)
class Recorded:
    """A series recorded by prometheus/rules/recording.yml that equals a signal's value."""

    record: str  # the recorded series' name
    expr: str  # its expression in recording.yml, verbatim: must equal the signal's (no selector)
    group: str  # its group in recording.yml (what `apply` looks for on the target Prometheus)
    keeps: tuple[str, ...] = RECORDED_KEEPS


@dataclass(frozen=True)
class Signal:
    name: str
    kind: str  # "gauge": instant value; "counter": built on rate(...[{r}]); "bool": host_down
    unit: str  # "percent" | "ratio" | "count" | "per_second" | "per_minute" | "seconds" | "hours"
    template: str
    description: str
    no_traffic: str
    extra_by: tuple[str, ...] = ()
    directions: tuple[str, ...] = ("above", "below")
    aggregations: tuple[str, ...] = ("avg", "max", "min", "last")
    recorded: Recorded | None = None  # reused for avg/max/min windows when exactly equal


SIGNALS: dict[str, Signal] = {s.name: s for s in [
    Signal(
        "cpu_usage_percent", "counter", "percent",
        '100 * (1 - sum by ({by}) (rate(node_cpu_seconds_total{{mode="idle"{sel}}}[{r}]))'
        ' / sum by ({by}) (rate(node_cpu_seconds_total{{{sel0}}}[{r}])))',
        "Busy CPU time in percent of all CPU time, all cores together.",
        "A host always accrues CPU time; while it is not scraped there is no value and no alert. "
        "Idle over all modes keeps the figure right during the first minutes of a new host, "
        "when rate() under-estimates both counters alike.",
    ),
    Signal(
        "memory_usage_percent", "gauge", "percent",
        "100 * (1 - node_memory_MemAvailable_bytes{{{sel0}}} / node_memory_MemTotal_bytes{{{sel0}}})",
        "Memory not available to new programs (MemAvailable), in percent of MemTotal.",
        "Always defined while the host is scraped.",
        recorded=Recorded("instance:memory_usage:percent",
                          "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
                          "fleetmon.host.system"),
    ),
    Signal(
        "swap_usage_percent", "gauge", "percent",
        "100 * (1 - node_memory_SwapFree_bytes{{{sel0}}} / node_memory_SwapTotal_bytes{{{sel0}}})",
        "Swap in use, in percent of swap size.",
        "A host without swap has SwapTotal 0: 0/0 is NaN, which compares false, so the rule never fires.",
    ),
    Signal(
        "disk_usage_percent", "gauge", "percent",
        "100 * (1 - node_filesystem_avail_bytes{{" + _FS + "{sel}}}"
        " / node_filesystem_size_bytes{{" + _FS + "{sel}}})",
        "Space not available to unprivileged users (reserved blocks count as used), per mountpoint.",
        "Always defined for real file systems; pseudo file systems (tmpfs, overlay, ...) are excluded.",
        extra_by=("mountpoint", "device", "fstype"),
    ),
    Signal(
        "inode_usage_percent", "gauge", "percent",
        "100 * (1 - node_filesystem_files_free{{" + _FS + "{sel}}}"
        " / node_filesystem_files{{" + _FS + "{sel}}})",
        "Inodes in use, in percent, per mountpoint.",
        "File systems reporting 0 inodes (btrfs, some network file systems) give NaN and never fire.",
        extra_by=("mountpoint", "device", "fstype"),
    ),
    Signal(
        "load_per_core", "gauge", "count",
        'max by ({by}) (node_load1{{{sel0}}}) / count by ({by}) (node_cpu_seconds_total{{mode="idle"{sel}}})',
        "1-minute load average divided by the number of CPUs.",
        "Always defined while the host is scraped.",
    ),
    Signal(
        "host_down", "bool", "count",
        "up{{{sel0}}}",
        "The host's exporter is not answering its scrape (up == 0) on the shard that scrapes it. "
        "No threshold: `last` fires while the latest scrape failed, `min`/`avg` while every "
        "scrape in the window failed, `max` when any scrape in the window failed.",
        "Built on `up == 0` on the scraping shard, never absent(): a host removed from the "
        "inventory has no `up` series and does not alert; other shards never alert for it.",
        directions=(),
    ),
    Signal(
        "disk_will_fill_in_hours", "predict", "hours",
        "predict_linear(node_filesystem_avail_bytes{{" + _FS + "{sel}}}[{w}], {seconds})",
        "Fires when a linear fit of free space over the window reaches 0 within `below` hours "
        "(predict_linear), per mountpoint. Only `below` is meaningful.",
        "A file system with constant free space never fires.",
        extra_by=("mountpoint", "device", "fstype"),
        directions=("below",), aggregations=("avg", "last"),
    ),
    Signal(
        "syslog_error_rate", "counter", "per_minute",
        '60 * sum by ({by}) (rate(fleetmon_syslog_messages_total'
        '{{severity=~"emerg|emergency|alert|crit|critical|err|error"{sel}}}[{r}]))',
        "System log messages of severity err or worse, per minute.",
        "The counter for a severity appears with its first message: a host that never logged an "
        "error has no series and no value (an `above` rule stays silent, a `below` rule too).",
    ),
    Signal(
        "http_request_rate", "counter", "per_second",
        "sum by ({by}) (rate(fleetmon_http_requests_total{{{sel0}}}[{r}]))",
        "Web server requests per second, per access log.",
        "No traffic gives 0 (a `below` rule fires). For the first window after a log appears, "
        "rate() under-estimates: `below` rules may fire early for a new host.",
        extra_by=("log",),
    ),
    Signal(
        "http_5xx_ratio", "counter", "ratio",
        'sum by ({by}) (rate(fleetmon_http_requests_total{{status=~"5.."{sel}}}[{r}]))'
        " / sum by ({by}) (rate(fleetmon_http_requests_total{{{sel0}}}[{r}]))",
        "Share (0-1) of requests answered with a 5xx status, per access log.",
        "No traffic is 0/0 = NaN and never fires; a log that never served a 5xx has no "
        "numerator series and gives no value (silent).",
        extra_by=("log",),
    ),
    Signal(
        "http_p95_latency_seconds", "counter", "seconds",
        "histogram_quantile(0.95, sum by ({by}, le) "
        "(rate(fleetmon_http_request_duration_seconds_bucket{{{sel0}}}[{r}])))",
        "95th percentile of request duration in seconds (interpolated within histogram buckets), per log.",
        "No traffic is NaN and never fires.",
        extra_by=("log",),
    ),
    Signal(
        "webserver_error_rate", "counter", "per_minute",
        'sum by ({by}) (60 * rate(fleetmon_webserver_errors_total'
        '{{level=~"error|err|crit|critical|alert|emerg"{sel}}}[{r}]))',
        "Web server error-log lines of level error or worse, per minute, per log.",
        "Like syslog_error_rate: no series until the first error line, so silent.",
        extra_by=("log",),
    ),
]}
