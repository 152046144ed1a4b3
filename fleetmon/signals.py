"""One table of fleetmon's user-facing signals: each quantity defined once.

A :class:`Signal` gives a quantity's PromQL over the raw series (what rulesync's alerts
compile to), the per-host series prometheus/rules/recording.yml records for it (what every
dashboard panel and console page reads) and what both give at the edges: no data, zero
traffic (ratios), an excluded file system. ``recording.yml`` is generated from this module
(``python -m fleetmon.signals --write`` or ``make recording-rules``; a test fails when the
committed file is stale), and tests/rulesync/test_signals_table.py proves with promtool that, for the same data, the recorded
series and the alert's expression give the same value, edges included.

Templates are ``str.format`` strings: ``{sel0}`` is the host selector alone, ``{sel}`` the
same with a leading comma (after a signal's own matcher), ``{by}`` the labels an aggregation
keeps, ``{r}`` the rate range, ``{w}`` the window and ``{seconds}`` predict_linear's horizon.
File system signals take their matcher from :mod:`fleetmon.filters`, the single list.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetmon.filters import FS_MATCHER, NET_DEVICE_MATCHER

HOST_LABELS = ("instance", "datacenter", "role", "env")

# Labels every per-host recorded series keeps (the target labels of the host): a host
# selector on any other label cannot be applied to a recorded series.
RECORDED_KEEPS = ("instance", "job", "datacenter", "role", "env")

# RFC 5424 severities 0-3 in short or long spelling (what rsyslog and journald write).
SYSLOG_ERROR_SEVERITIES = "emerg|emergency|panic|alert|crit|critical|err|error"
# Web server error-log levels of error and worse (notice/warn lines are routine there).
WEBSERVER_ERROR_LEVELS = "error|err|crit|critical|alert|emerg"

RECORDING_FILE = Path(__file__).resolve().parents[1] / "prometheus" / "rules" / "recording.yml"


@dataclass(frozen=True)
class Recorded:
    """A recorded series whose value a rule may read instead of the raw expression."""

    record: str  # the recorded series' name
    expr: str  # its expression in recording.yml (equal to the signal's bare expression)
    group: str  # its group in recording.yml (what `apply` looks for on the target Prometheus)
    keeps: tuple[str, ...] = RECORDED_KEEPS


@dataclass(frozen=True)
class Signal:
    """One user-facing quantity.

    ``record_expr`` None means the recorded series is the template itself without selector
    (rates over 5m), which also lets gauge alerts read the recorded series (``recorded``).
    Otherwise it is an expression built from the recording rules' intermediate series that
    gives the same value; ``record_factor`` is signal / recorded (per minute vs per second).
    """

    name: str
    kind: str  # "gauge": instant value; "counter": built on rate(...[{r}]); "bool"; "predict"
    unit: str  # "percent" | "ratio" | "count" | "per_second" | "per_minute" | "seconds" | "hours"
    template: str
    description: str
    no_data: str  # edge: the host is not scraped or never exposed the series
    zero: str  # edge: zero traffic / zero denominator
    excluded: str = ""  # edge: a file system of an ignored type or a device left out
    extra_by: tuple[str, ...] = ()
    directions: tuple[str, ...] = ("above", "below")
    aggregations: tuple[str, ...] = ("avg", "max", "min", "last")
    record: str | None = None
    record_expr: str | None = None
    record_group: str = ""
    record_factor: float = 1.0

    @property
    def no_traffic(self) -> str:
        """The edges in one sentence (rulesync's README table)."""
        return " ".join(x for x in (self.no_data, self.zero, self.excluded) if x)

    def bare(self, r: str = "5m") -> str:
        """The template without any host selector, as recording.yml would record it."""
        by = ", ".join(dict.fromkeys([*HOST_LABELS, *self.extra_by]))
        out = self.template.format(sel0="", sel="", by=by, r=r, w=r, seconds="0")
        return re.sub(r"([A-Za-z_:][A-Za-z0-9_:]*)\{\}", r"\1", out)

    @property
    def recorded_expr(self) -> str | None:
        """The expression recording.yml records for this quantity."""
        if self.record is None:
            return None
        return self.record_expr if self.record_expr is not None else self.bare()

    @property
    def recorded(self) -> Recorded | None:
        """The recorded series an alert may read instead of the raw expression, or None.

        Only for gauges recorded as exactly their own template: the value is then the same
        sample for sample (counters' rates depend on the rule's window, so never)."""
        if self.kind != "gauge" or self.record is None or self.record_expr is not None or self.record_factor != 1:
            return None
        return Recorded(self.record, self.bare(), self.record_group)


_FS = FS_MATCHER.replace("{", "{{").replace("}", "}}")
_SYS = "fleetmon.host.system"
_STORAGE = "fleetmon.host.storage"
_LOGS = "fleetmon.host.logs"

SIGNALS: dict[str, Signal] = {s.name: s for s in [
    Signal(
        "cpu_usage_percent", "counter", "percent",
        '100 * (1 - sum by ({by}) (rate(node_cpu_seconds_total{{mode="idle"{sel}}}[{r}]))'
        ' / sum by ({by}) (rate(node_cpu_seconds_total{{{sel0}}}[{r}])))',
        "Busy CPU time in percent of all CPU time, all cores together. Idle over all modes keeps "
        "the figure right during the first minutes of a new host, when rate() under-estimates "
        "both counters alike.",
        "No value while the host is not scraped, and for its first sample (rate needs two).",
        "A host always accrues CPU time.",
        record="instance:cpu_usage:percent", record_group=_SYS,
        # Derived from the per-mode series (one rate() over the per-CPU counters, the largest
        # host family): idle / all modes is the template's ratio, the CPU count cancels.
        record_expr="100 * (1 - sum without (mode) (instance_mode:cpu_usage:percent{mode=\"idle\"})"
                    " / sum without (mode) (instance_mode:cpu_usage:percent))",
    ),
    Signal(
        "memory_usage_percent", "gauge", "percent",
        "100 * (1 - node_memory_MemAvailable_bytes{{{sel0}}} / node_memory_MemTotal_bytes{{{sel0}}})",
        "Memory not available to new programs (MemAvailable), in percent of MemTotal.",
        "No value while the host is not scraped.", "MemTotal is never 0.",
        record="instance:memory_usage:percent", record_group=_SYS,
    ),
    Signal(
        "swap_usage_percent", "gauge", "percent",
        "100 * (node_memory_SwapTotal_bytes{{{sel0}}} - node_memory_SwapFree_bytes{{{sel0}}})"
        " / clamp_min(node_memory_SwapTotal_bytes{{{sel0}}}, 1)",
        "Swap in use, in percent of swap size.",
        "No value while the host is not scraped.",
        "A host without swap (SwapTotal 0) uses 0 % of it: an `above` rule never fires, a `below` rule does.",
        record="instance:swap_usage:percent", record_group=_SYS,
    ),
    Signal(
        "disk_usage_percent", "gauge", "percent",
        "100 * (1 - node_filesystem_avail_bytes{{" + _FS + "{sel}}}"
        " / (node_filesystem_size_bytes{{" + _FS + "{sel}}} > 0))",
        "Space not available to unprivileged users (reserved blocks count as used), per mountpoint.",
        "No value while the host is not scraped.",
        "A file system of size 0 (a stale mount) has no value.",
        "Ignored file system types (fleetmon.filters: tmpfs, overlay, ...) have no value.",
        extra_by=("mountpoint", "device", "fstype"),
        record="instance_mountpoint:disk_usage:percent", record_group=_STORAGE,
    ),
    Signal(
        "inode_usage_percent", "gauge", "percent",
        "100 * (1 - node_filesystem_files_free{{" + _FS + "{sel}}}"
        " / (node_filesystem_files{{" + _FS + "{sel}}} > 0))",
        "Inodes in use, in percent, per mountpoint.",
        "No value while the host is not scraped.",
        "File systems reporting 0 inodes (btrfs, some network file systems) have no value.",
        "Ignored file system types have no value.",
        extra_by=("mountpoint", "device", "fstype"),
        record="instance_mountpoint:inode_usage:percent", record_group=_STORAGE,
    ),
    Signal(
        "load_per_core", "gauge", "count",
        'max by ({by}) (node_load1{{{sel0}}}) / count by ({by}) (node_cpu_seconds_total{{mode="idle"{sel}}})',
        "1-minute load average divided by the number of CPUs.",
        "No value while the host is not scraped.", "A scraped host always has a CPU.",
        record="instance:load_per_core:ratio", record_group=_SYS,
        record_expr="node_load1 / on (instance, job) group_left () instance:cpu_count:count",
    ),
    Signal(
        "host_down", "bool", "count",
        "up{{{sel0}}}",
        "The host's exporter is not answering its scrape (up == 0) on the shard that scrapes it. "
        "No threshold: `last` fires while the latest scrape failed, `min`/`avg` while every "
        "scrape in the window failed, `max` when any scrape in the window failed.",
        "Built on `up == 0` on the scraping shard, never absent(): a host removed from the "
        "inventory has no `up` series and does not alert; other shards never alert for it.",
        "",
        directions=(),
    ),
    Signal(
        "disk_will_fill_in_hours", "predict", "hours",
        "predict_linear(node_filesystem_avail_bytes{{" + _FS + "{sel}}}[{w}], {seconds})",
        "Fires when a linear fit of free space over the window reaches 0 within `below` hours "
        "(predict_linear), per mountpoint. Only `below` is meaningful.",
        "No value while the host is not scraped.", "A file system with constant free space never fires.",
        "Ignored file system types have no value.",
        extra_by=("mountpoint", "device", "fstype"),
        directions=("below",), aggregations=("avg", "last"),
    ),
    Signal(
        "syslog_error_rate", "counter", "per_minute",
        '60 * (sum by ({by}) (rate(fleetmon_syslog_messages_total'
        '{{severity=~"' + SYSLOG_ERROR_SEVERITIES + '"{sel}}}[{r}]))'
        ' or 0 * sum by ({by}) (rate(fleetmon_syslog_messages_total{{{sel0}}}[{r}])))',
        "System log messages of severity err or worse, per minute.",
        "No value for a host whose syslog is not tailed (no fleetmon_syslog_messages_total at all).",
        "0 for a host that logs but never logged an error (the error severities' counters "
        "appear with their first message): a `below` rule fires on it.",
        record="instance:syslog_errors:rate5m", record_group=_LOGS, record_factor=60,
        record_expr=f'sum without (severity) (instance_severity:syslog_messages:rate5m{{severity=~"{SYSLOG_ERROR_SEVERITIES}"}})'
                    " or 0 * sum without (severity) (instance_severity:syslog_messages:rate5m)",
    ),
    Signal(
        "http_request_rate", "counter", "per_second",
        "sum by ({by}) (rate(fleetmon_http_requests_total{{{sel0}}}[{r}]))",
        "Web server requests per second, per access log.",
        "No value for a host without an access log. For the first window after a log appears, "
        "rate() under-estimates: `below` rules may fire early for a new host.",
        "No traffic gives 0 (a `below` rule fires).",
        extra_by=("log",),
        record="instance_log:http_requests:rate5m", record_group=_LOGS,
        record_expr="sum without (method, status) (rate(fleetmon_http_requests_total[5m]))",
    ),
    Signal(
        "http_5xx_ratio", "counter", "ratio",
        '(sum by ({by}) (rate(fleetmon_http_requests_total{{status=~"5.."{sel}}}[{r}]))'
        " or 0 * sum by ({by}) (rate(fleetmon_http_requests_total{{{sel0}}}[{r}])))"
        " / sum by ({by}) (rate(fleetmon_http_requests_total{{{sel0}}}[{r}]))",
        "Share (0-1) of requests answered with a 5xx status, per access log.",
        "No value for a host without an access log.",
        "No traffic is 0/0 = NaN, which never fires (and resolves a firing alert); traffic "
        "without any 5xx is 0, even before a 5xx series exists.",
        extra_by=("log",),
        record="instance_log:http_5xx:ratio_rate5m", record_group=_LOGS,
        record_expr='(sum without (method, status) (rate(fleetmon_http_requests_total{status=~"5.."}[5m]))'
                    " or 0 * instance_log:http_requests:rate5m) / instance_log:http_requests:rate5m",
    ),
    Signal(
        "http_p95_latency_seconds", "counter", "seconds",
        "histogram_quantile(0.95, sum by ({by}, le) "
        "(rate(fleetmon_http_request_duration_seconds_bucket{{{sel0}}}[{r}])))",
        "95th percentile of request duration in seconds (interpolated within histogram buckets), per log.",
        "No value for a host without an access log.",
        "No traffic is NaN and never fires.",
        extra_by=("log",),
        record="instance_log:http_request_duration_seconds:p95_5m", record_group=_LOGS,
        record_expr="histogram_quantile(0.95, sum without (method, status) "
                    "(rate(fleetmon_http_request_duration_seconds_bucket[5m])))",
    ),
    Signal(
        "webserver_error_rate", "counter", "per_minute",
        '(sum by ({by}) (60 * rate(fleetmon_webserver_errors_total'
        '{{level=~"' + WEBSERVER_ERROR_LEVELS + '"{sel}}}[{r}]))'
        ' or 0 * sum by ({by}) (rate(fleetmon_webserver_errors_total{{{sel0}}}[{r}])))',
        "Web server error-log lines of level error or worse, per minute, per log.",
        "No value for a host without a tailed error log.",
        "0 for an error log with only notice/warn lines: a `below` rule fires on it.",
        extra_by=("log",),
        record="instance_log:webserver_errors:rate5m", record_group=_LOGS, record_factor=60,
        record_expr=f'sum without (level) (rate(fleetmon_webserver_errors_total{{level=~"{WEBSERVER_ERROR_LEVELS}"}}[5m]))'
                    " or 0 * sum without (level) (rate(fleetmon_webserver_errors_total[5m]))",
    ),
]}


def reused_records() -> dict[str, Recorded]:
    """{recorded series: Recorded} for every signal whose alerts may read its recorded series."""
    return {s.recorded.record: s.recorded for s in SIGNALS.values() if s.recorded is not None}


# --------------------------------------------------------------------------- recording.yml

@dataclass(frozen=True)
class Rule:
    record: str
    expr: str
    comment: str = ""


def _sig(name: str, comment: str = "") -> Rule:
    s = SIGNALS[name]
    assert s.record is not None and s.recorded_expr is not None
    return Rule(s.record, s.recorded_expr, comment or f"signal {name}: {s.description}")


def recording_groups() -> list[tuple[str, str, list[Rule]]]:
    """(group name, comment, rules) of recording.yml, in evaluation order (rules of a group
    run in order and each sees the ones before it in the same evaluation)."""
    return [
        (_SYS, "", [
            Rule("instance:up:bool", 'up{datacenter!=""}',
                 "Host targets are the ones that carry host labels from their znode; Prometheus's own,\n"
                 "the sidecars' and the router's targets do not."),
            Rule("instance:cpu_count:count", 'count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})'),
            Rule("instance_mode:cpu_usage:percent",
                 "100 * sum without (cpu) (rate(node_cpu_seconds_total[5m]))"
                 " / on (instance, job) group_left () instance:cpu_count:count",
                 "One rate() over the per-CPU counters (the largest host family); the total is derived.\n"
                 "Sum / CPU count, not avg: a mode some CPUs lack (a hypervisor's steal) would\n"
                 "otherwise skew the total away from the alert's idle / all ratio."),
            _sig("cpu_usage_percent"),
            Rule("instance:memory_total:bytes", "node_memory_MemTotal_bytes"),
            Rule("instance:memory_available:bytes", "node_memory_MemAvailable_bytes"),
            _sig("memory_usage_percent"),
            _sig("swap_usage_percent"),
            _sig("load_per_core"),
            Rule("instance:load5_per_core:ratio", "node_load5 / on (instance, job) group_left () instance:cpu_count:count",
                 "load5 / load15 per core beside it for the host page."),
            Rule("instance:load15_per_core:ratio",
                 "node_load15 / on (instance, job) group_left () instance:cpu_count:count"),
            Rule("instance:uptime:seconds", "time() - node_boot_time_seconds"),
        ]),
        (_STORAGE, "", [
            _sig("disk_usage_percent"),
            Rule("instance_mountpoint:disk_avail:bytes", "node_filesystem_avail_bytes{" + FS_MATCHER + "}"),
            _sig("inode_usage_percent"),
            Rule("instance:disk_usage_max:percent",
                 "max without (device, fstype, mountpoint) (instance_mountpoint:disk_usage:percent)",
                 "The fullest file system of each host: what top-N and fleet quantiles rank."),
            Rule("instance:inode_usage_max:percent",
                 "max without (device, fstype, mountpoint) (instance_mountpoint:inode_usage:percent)"),
            Rule("instance_device:disk_read_bytes:rate5m", "rate(node_disk_read_bytes_total[5m])"),
            Rule("instance_device:disk_written_bytes:rate5m", "rate(node_disk_written_bytes_total[5m])"),
            Rule("instance_device:disk_io_time:ratio_rate5m", "rate(node_disk_io_time_seconds_total[5m])"),
            Rule("instance:disk_read_bytes:rate5m", "sum without (device) (instance_device:disk_read_bytes:rate5m)"),
            Rule("instance:disk_written_bytes:rate5m",
                 "sum without (device) (instance_device:disk_written_bytes:rate5m)"),
        ]),
        ("fleetmon.host.network", "", [
            Rule("instance_device:network_receive_bytes:rate5m",
                 "rate(node_network_receive_bytes_total{" + NET_DEVICE_MATCHER + "}[5m])",
                 "Loopback and virtual devices are left out (fleetmon.filters)."),
            Rule("instance_device:network_transmit_bytes:rate5m",
                 "rate(node_network_transmit_bytes_total{" + NET_DEVICE_MATCHER + "}[5m])"),
            Rule("instance:network_receive_bytes:rate5m",
                 "sum without (device) (instance_device:network_receive_bytes:rate5m)"),
            Rule("instance:network_transmit_bytes:rate5m",
                 "sum without (device) (instance_device:network_transmit_bytes:rate5m)"),
        ]),
        (_LOGS, "Per-log series are what the alerts compute (signals are per log); the per-host\n"
                "totals and ratios the dashboards rank are summed over logs.", [
            Rule("instance_status:http_requests:rate5m",
                 "sum without (log, method) (rate(fleetmon_http_requests_total[5m]))"),
            Rule("instance:http_requests:rate5m", "sum without (status) (instance_status:http_requests:rate5m)"),
            _sig("http_request_rate"),
            _sig("http_5xx_ratio"),
            Rule("instance:http_5xx:ratio_rate5m",
                 '(sum without (status) (instance_status:http_requests:rate5m{status=~"5.."})'
                 " or 0 * instance:http_requests:rate5m) / instance:http_requests:rate5m",
                 "Per host, with the same edges: 0 with traffic but no 5xx, NaN without traffic."),
            Rule("instance:http_response_bytes:rate5m",
                 "sum without (log) (rate(fleetmon_http_response_bytes_total[5m]))"),
            Rule("instance_le:http_request_duration_seconds_bucket:rate5m",
                 "sum without (log) (rate(fleetmon_http_request_duration_seconds_bucket[5m]))",
                 "Bucket rates per host (not federated: the global gets the quantiles)."),
            Rule("instance:http_request_duration_seconds:p50_5m",
                 "histogram_quantile(0.50, instance_le:http_request_duration_seconds_bucket:rate5m)"),
            Rule("instance:http_request_duration_seconds:p95_5m",
                 "histogram_quantile(0.95, instance_le:http_request_duration_seconds_bucket:rate5m)"),
            Rule("instance:http_request_duration_seconds:p99_5m",
                 "histogram_quantile(0.99, instance_le:http_request_duration_seconds_bucket:rate5m)"),
            _sig("http_p95_latency_seconds"),
            Rule("instance_severity:syslog_messages:rate5m",
                 "sum without (log) (rate(fleetmon_syslog_messages_total[5m]))"),
            _sig("syslog_error_rate", "signal syslog_error_rate / 60 (per second): err and worse; "
                                      "0 when the host logs but none of those."),
            Rule("instance_level:webserver_errors:rate5m",
                 "sum without (log) (rate(fleetmon_webserver_errors_total[5m]))"),
            Rule("instance:webserver_errors:rate5m",
                 f'sum without (level) (instance_level:webserver_errors:rate5m{{level=~"{WEBSERVER_ERROR_LEVELS}"}})'
                 " or 0 * sum without (level) (instance_level:webserver_errors:rate5m)",
                 "Per host: error and worse over all error logs, 0 when none of those."),
            _sig("webserver_error_rate", "signal webserver_error_rate / 60 (per second), per log."),
        ]),
        ("fleetmon.host.exporter", "", [
            Rule("instance:scrape_collector_failures:count", "sum without (collector) (1 - node_scrape_collector_success)",
                 "The exporter's own health, per host: failing collectors, collection time, log tailing."),
            Rule("instance:scrape_collector_duration:seconds",
                 "sum without (collector) (node_scrape_collector_duration_seconds)"),
            Rule("instance:scrape_duration:seconds", 'scrape_duration_seconds{datacenter!=""}'),
            Rule("instance:log_lines:rate5m", "sum without (log) (rate(fleetmon_log_lines_total[5m]))"),
            Rule("instance:log_parse_errors:rate5m", "sum without (log) (rate(fleetmon_log_parse_errors_total[5m]))"),
            Rule("instance:log_lag:bytes", "sum without (log, path) (fleetmon_log_lag_bytes)"),
        ]),
    ]


RECORDING_HEADER = """\
# generated by `python -m fleetmon.signals --write` from fleetmon/signals.py, do not edit
#
# fleetmon per-host recording rules: loaded by every shard Prometheus.
#
# Each rule keeps the target labels of the host (instance, job, datacenter, role, env): the
# aggregations below only drop the per-CPU / per-device / per-log dimensions. The global
# Prometheus federates these series (prometheus/global.yml) and never the raw ones, so every
# Grafana panel and console page reads these names. Fleet aggregates are in fleet.yml.
# The rules marked "signal NAME" record exactly what rulesync's alert on NAME computes, with
# the same edges (no data, zero traffic, ignored file systems): see fleetmon/signals.py.
#
# Naming: level:metric:operations (https://prometheus.io/docs/practices/rules/).
# Prometheus 2.42: no group `labels`, no `query_offset`.
"""


def _comment(text: str, indent: str) -> str:
    lines = [w for line in text.splitlines() for w in textwrap.wrap(line, 96 - len(indent))]
    return "".join(f"{indent}# {line}\n" for line in lines)


def _scalar(expr: str, indent: str) -> str:
    """``expr`` as a YAML value: plain when it reads back the same, else folded (``>-``,
    no escapes: what promtool and a reader see is the PromQL itself)."""
    if len(expr) <= 100:
        try:
            if yaml.safe_load(f"k: {expr}") == {"k": expr}:
                return f" {expr}\n"
        except yaml.YAMLError:
            pass
    return f" >-\n{indent}  {expr}\n"


def recording_yaml() -> str:
    """The text of prometheus/rules/recording.yml."""
    out = [RECORDING_HEADER, "groups:\n"]
    for i, (name, comment, rules) in enumerate(recording_groups()):
        if i:
            out.append("\n")
        out.append(f"  - name: {name}\n")
        if comment:
            out.append(_comment(comment, "    "))
        out.append("    rules:\n")
        for r in rules:
            if r.comment:
                out.append(_comment(r.comment, "      "))
            out.append(f"      - record: {r.record}\n        expr:{_scalar(r.expr, '        ')}")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m fleetmon.signals [--write | --check] [--out FILE]``."""
    p = argparse.ArgumentParser(prog="python -m fleetmon.signals",
                                description="Generate prometheus/rules/recording.yml from the signals table.")
    p.add_argument("--out", type=Path, default=RECORDING_FILE, help="recording rules file (default: %(default)s)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the file (atomically) if it changed")
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is not what would be generated")
    args = p.parse_args(argv)
    text = recording_yaml()
    if not (args.write or args.check):
        sys.stdout.write(text)
        return 0
    current = args.out.read_text() if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out}: stale, run `python -m fleetmon.signals --write`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    if current == text:
        print(f"{args.out}: up to date")
        return 0
    from fleetmon.atomic import write_atomic

    write_atomic(args.out, text)
    print(f"{args.out}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
