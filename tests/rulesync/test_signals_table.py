"""fleetmon.signals, the one table of signals: recording.yml is generated from it, the
filesystem filter is the single list, and for the same data the recorded series a dashboard
reads and the expression an alert compiles to give the same value, edges included.

The equivalence runs in promtool (the Prometheus 2.42 rule engine, evaluating
prometheus/rules/recording.yml every minute over the series below) with PromQL that compares
the two per host / mountpoint / log: any sample present on one side only, any value that
differs, any NaN on one side only is a failure.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.collectors.filesystem import DEFAULT_FS_TYPES_EXCLUDE
from fleetmon import filters, signals
from rulesync import promtool
from rulesync.generate import signal_expr
from rulesync.pipeline import compile_paths
from tests.rulesync.conftest import RECORDING

REPO = Path(__file__).resolve().parents[2]


def test_committed_recording_rules_are_generated_from_the_table(tmp_path: Path) -> None:
    assert RECORDING.read_text() == signals.recording_yaml(), "stale: run `python -m fleetmon.signals --write`"
    r = subprocess.run([sys.executable, "-m", "fleetmon.signals", "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr
    # --check notices a hand edit, --write puts the generated text back.
    edited = tmp_path / "recording.yml"
    edited.write_text(RECORDING.read_text().replace("clamp_min(node_memory_SwapTotal_bytes, 1)",
                                                    "node_memory_SwapTotal_bytes"))
    r = subprocess.run([sys.executable, "-m", "fleetmon.signals", "--check", "--out", str(edited)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "stale" in r.stderr
    r = subprocess.run([sys.executable, "-m", "fleetmon.signals", "--write", "--out", str(edited)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and edited.read_text() == RECORDING.read_text()
    ok, out = promtool.check_rules([RECORDING])
    assert ok, out


def test_every_recorded_signal_is_in_recording_yml() -> None:
    doc = yaml.safe_load(RECORDING.read_text())
    found = {r["record"]: (g["name"], r["expr"]) for g in doc["groups"] for r in g["rules"]}
    recorded = [s for s in signals.SIGNALS.values() if s.record]
    assert {s.name for s in signals.SIGNALS.values()} - {s.name for s in recorded} == {
        "host_down", "disk_will_fill_in_hours"}
    for s in recorded:
        assert found[s.record] == (s.record_group, s.recorded_expr), s.name


def test_one_filesystem_filter() -> None:
    # The exporter's flag default stays node_exporter 1.5's (parity); the query-side list
    # extends exactly that list, and both alerts and recording rules use the same matcher.
    r = subprocess.run(["prometheus-node-exporter", "--help"], capture_output=True, text=True, timeout=30)
    help_text = r.stdout + r.stderr
    m = re.search(r'--collector\.filesystem\.fs-types-exclude="([^"]+)"', help_text)
    assert m, help_text[:500]
    assert DEFAULT_FS_TYPES_EXCLUDE == filters.NODE_EXPORTER_FS_TYPES_EXCLUDE == m.group(1)

    ne = re.compile(filters.NODE_EXPORTER_FS_TYPES_EXCLUDE)
    assert {t for t in filters.FS_TYPES_IGNORED if ne.fullmatch(t)} == set(filters.NODE_EXPORTER_FS_TYPES)
    assert {"tmpfs", "overlay", "fuse.lxcfs"} <= set(filters.FS_TYPES_IGNORED)
    assert not filters.fs_type_ignored("ext4") and filters.fs_type_ignored("tmpfs")
    for name in ("disk_usage_percent", "inode_usage_percent", "disk_will_fill_in_hours"):
        assert filters.FS_MATCHER in signals.SIGNALS[name].bare(), name
    assert RECORDING.read_text().count(filters.FS_MATCHER) == 5  # disk x2, inode x2, disk_avail
    # The matcher is a valid RE2 alternation of whole names: "fuse.lxcfs" does not match "fuseXlxcfs".
    body = re.compile("^(?:" + filters.FS_TYPES_IGNORED_RE + ")$")
    assert body.match("fuse.lxcfs") and not body.match("fuseXlxcfs") and not body.match("tmpfs2")


# --------------------------------------------------------------------------- equivalence

T = 'job="fleet",env="prod"'
H1 = f'instance="h1",datacenter="dc1",role="web",{T}'
H2 = f'instance="h2",datacenter="dc1",role="db",{T}'
H3 = f'instance="h3",datacenter="dc2",role="web",{T}'  # stops being scraped at minute 3: no data
GONE = " _x11"  # four samples, then none (stale by the 15m evaluation)


def _fs(host: str, mp: str, fstype: str, size: int, avail: int, files: int | None = None,
        free: int | None = None) -> list[tuple[str, str]]:
    lab = f'{host},device="dev{mp}",fstype="{fstype}",mountpoint="{mp}"'
    out = [(f"node_filesystem_size_bytes{{{lab}}}", f"{size}x15"),
           (f"node_filesystem_avail_bytes{{{lab}}}", f"{avail}x15")]
    if files is not None:
        out += [(f"node_filesystem_files{{{lab}}}", f"{files}x15"),
                (f"node_filesystem_files_free{{{lab}}}", f"{free}x15")]
    return out


SERIES: list[tuple[str, str]] = [
    # CPU: h1 2 CPUs, 0.7 s/s idle of 2 s/s; h2 one idle CPU whose user counter stands still.
    (f'node_cpu_seconds_total{{{H1},cpu="0",mode="idle"}}', "0+30x15"),
    (f'node_cpu_seconds_total{{{H1},cpu="0",mode="user"}}', "0+20x15"),
    (f'node_cpu_seconds_total{{{H1},cpu="0",mode="system"}}', "0+10x15"),
    (f'node_cpu_seconds_total{{{H1},cpu="1",mode="idle"}}', "0+12x15"),
    (f'node_cpu_seconds_total{{{H1},cpu="1",mode="user"}}', "0+48x15"),
    (f'node_cpu_seconds_total{{{H2},cpu="0",mode="idle"}}', "0+60x15"),
    (f'node_cpu_seconds_total{{{H2},cpu="0",mode="user"}}', "7x15"),
    (f'node_cpu_seconds_total{{{H3},cpu="0",mode="idle"}}', "0 60 120 180" + GONE),
    # Memory and swap: h2 has no swap (SwapTotal 0).
    (f"node_memory_MemTotal_bytes{{{H1}}}", "1000x15"), (f"node_memory_MemAvailable_bytes{{{H1}}}", "300x15"),
    (f"node_memory_MemTotal_bytes{{{H2}}}", "2000x15"), (f"node_memory_MemAvailable_bytes{{{H2}}}", "1500x15"),
    (f"node_memory_MemTotal_bytes{{{H3}}}", "1000x3" + GONE), (f"node_memory_MemAvailable_bytes{{{H3}}}", "9x3" + GONE),
    (f"node_memory_SwapTotal_bytes{{{H1}}}", "512x15"), (f"node_memory_SwapFree_bytes{{{H1}}}", "128x15"),
    (f"node_memory_SwapTotal_bytes{{{H2}}}", "0x15"), (f"node_memory_SwapFree_bytes{{{H2}}}", "0x15"),
    (f"node_load1{{{H1}}}", "3x15"), (f"node_load1{{{H2}}}", "0.5x15"), (f"node_load1{{{H3}}}", "9x3" + GONE),
    # File systems: two real ones and a size-0 stale mount on h1 beside three ignored types.
    *_fs(H1, "/", "ext4", 1000, 250, 1000, 875),
    *_fs(H1, "/data", "xfs", 4000, 1000, 0, 0),  # no inode counts (like btrfs)
    *_fs(H1, "/mnt/stale", "ext4", 0, 0, 0, 0),
    *_fs(H1, "/run", "tmpfs", 100, 50, 100, 10),
    *_fs(H1, "/var/lib/docker/overlay2/x/merged", "overlay", 1000, 10, 100, 1),
    *_fs(H1, "/proc/cpuinfo", "fuse.lxcfs", 100, 0, 100, 0),
    *_fs(H2, "/", "ext4", 2000, 1000, 100, 50),
    (f'node_filesystem_size_bytes{{{H3},device="dev/",fstype="ext4",mountpoint="/"}}', "1000x3" + GONE),
    (f'node_filesystem_avail_bytes{{{H3},device="dev/",fstype="ext4",mountpoint="/"}}', "1x3" + GONE),
    # HTTP on h1: log access serves 5xx, log api none yet (no 5xx series), log idle no traffic.
    (f'fleetmon_http_requests_total{{{H1},log="access",method="GET",status="200"}}', "0+120x15"),
    (f'fleetmon_http_requests_total{{{H1},log="access",method="GET",status="503"}}', "0+60x15"),
    (f'fleetmon_http_requests_total{{{H1},log="access",method="POST",status="500"}}', "0+60x15"),
    (f'fleetmon_http_requests_total{{{H1},log="api",method="GET",status="200"}}', "0+120x15"),
    (f'fleetmon_http_requests_total{{{H1},log="idle",method="GET",status="200"}}', "500x15"),
    (f'fleetmon_http_requests_total{{{H3},log="access",method="GET",status="500"}}', "0 60 120 180" + GONE),
    (f'fleetmon_http_request_duration_seconds_bucket{{{H1},log="access",le="0.1"}}', "0+120x15"),
    (f'fleetmon_http_request_duration_seconds_bucket{{{H1},log="access",le="0.5"}}', "0+240x15"),
    (f'fleetmon_http_request_duration_seconds_bucket{{{H1},log="access",le="+Inf"}}', "0+270x15"),
    (f'fleetmon_http_request_duration_seconds_bucket{{{H1},log="idle",le="0.1"}}', "100x15"),
    (f'fleetmon_http_request_duration_seconds_bucket{{{H1},log="idle",le="+Inf"}}', "100x15"),
    # Logs: h1 errors of two spellings beside info; h2 logs only info (0 errors, not absent).
    (f'fleetmon_syslog_messages_total{{{H1},log="syslog",severity="err"}}', "0+30x15"),
    (f'fleetmon_syslog_messages_total{{{H1},log="syslog",severity="panic"}}', "0+6x15"),
    (f'fleetmon_syslog_messages_total{{{H1},log="syslog",severity="info"}}', "0+600x15"),
    (f'fleetmon_syslog_messages_total{{{H2},log="syslog",severity="info"}}', "0+60x15"),
    (f'fleetmon_syslog_messages_total{{{H3},log="syslog",severity="err"}}', "0 60 120 180" + GONE),
    (f'fleetmon_webserver_errors_total{{{H1},log="nginx_error",level="error"}}', "0+30x15"),
    (f'fleetmon_webserver_errors_total{{{H1},log="nginx_error",level="warn"}}', "0+60x15"),
    (f'fleetmon_webserver_errors_total{{{H1},log="other_error",level="notice"}}', "0+6x15"),
]

# signal -> (values it has at 15m, how many of them are NaN): the comparisons below are only
# worth something if both sides have data, so each count is checked too.
EXPECTED = {
    "cpu_usage_percent": (2, 0),  # h1, h2 (h3 gone)
    "memory_usage_percent": (2, 0),
    "swap_usage_percent": (2, 0),  # h2 without swap: 0, not NaN
    "disk_usage_percent": (3, 0),  # h1 / and /data, h2 /: not the stale mount, not tmpfs/overlay/lxcfs
    "inode_usage_percent": (2, 0),  # h1 /, h2 /: /data has no inode counts
    "load_per_core": (2, 0),
    "http_request_rate": (3, 0),  # access, api, idle (0 req/s)
    "http_5xx_ratio": (3, 1),  # access 0.5, api 0 (no 5xx series), idle NaN (no traffic)
    "http_p95_latency_seconds": (2, 1),  # idle: NaN
    "syslog_error_rate": (2, 0),  # h2: 0
    "webserver_error_rate": (2, 0),  # other_error: 0
}
# Exact values at the edges (and one ordinary value each), on the recorded side; the
# comparisons make the alert side equal.
EDGES = [
    ('instance:swap_usage:percent{instance="h2"}', 0),
    ('instance:swap_usage:percent{instance="h1"}', 75),
    ('instance_mountpoint:disk_usage:percent{instance="h1",mountpoint="/"}', 75),
    ('instance_log:http_5xx:ratio_rate5m{log="access"}', 0.5),
    ('instance_log:http_5xx:ratio_rate5m{log="api"}', 0),
    ('instance_log:http_requests:rate5m{log="idle"}', 0),
    ('instance:syslog_errors:rate5m{instance="h2"}', 0),
    ('instance:syslog_errors:rate5m{instance="h1"}', 0.6),
    ('instance_log:webserver_errors:rate5m{log="other_error"}', 0),
    ('instance:cpu_usage:percent{instance="h1"}', 65),
]


def _alert_exprs(tmp_path: Path) -> dict[str, str]:
    """{signal: the value expression rulesync compiles a rule on it to} (raw form: `last` for
    gauges, `avg` over 5m for rates, which is rate(...[5m]) like the recording rules)."""
    rules = []
    for name, sig in signals.SIGNALS.items():
        if sig.record is None:
            continue
        rule = {"alert": f"A_{name}", "metric": name, "notify": ["ops"], "window": "5m",
                "aggregation": "last" if sig.kind == "gauge" else "avg",
                "above": 0.5 if sig.unit == "ratio" else 1}
        rules.append(rule)
    src = tmp_path / "signals.yaml"
    src.write_text(yaml.safe_dump({"version": 1, "rules": rules, "recipients": {"ops": ["mailto://o@example.test"]}}))
    spec, _, problems = compile_paths([src], use_recorded=False)
    assert spec is not None, [str(p) for p in problems]
    return {r.signal: signal_expr(r, spec) for r in spec.rules if r.signal}


def _tests(alert: dict[str, str]) -> list[dict]:
    out = []
    for name, a in alert.items():
        sig = signals.SIGNALS[name]
        on = ", ".join(("instance", *sig.extra_by))
        r = sig.record if sig.record_factor == 1 else f"{sig.record_factor:g} * {sig.record}"
        n, nan = EXPECTED[name]
        for expr, exp in [
            (f"({a}) unless on ({on}) ({r})", []),  # a value the dashboard does not have
            (f"({r}) unless on ({on}) ({a})", []),  # a value the alert does not have
            (f"abs(({a}) - on ({on}) ({r})) > 1e-9", []),  # a different value
            (f"(({a}) != ({a})) unless on ({on}) (({r}) != ({r}))", []),  # NaN on the alert side only
            (f"(({r}) != ({r})) unless on ({on}) (({a}) != ({a}))", []),  # NaN on the dashboard side only
            (f"count(({a}))", [{"labels": "{}", "value": n}]),
            (f"count(({r}))", [{"labels": "{}", "value": n}]),
            (f"count(({r}) != ({r})) or vector(0)", [{"labels": "{}", "value": nan}]),
        ]:
            out.append({"expr": expr, "eval_time": "15m", "exp_samples": exp})
        h3 = 'label_replace(vector(1), "instance", "h3", "", "")'
        for side in (a, r):  # the host that stopped being scraped: no data on either side
            out.append({"expr": f"count(({side}) and on (instance) {h3}) or vector(0)", "eval_time": "15m",
                        "exp_samples": [{"labels": "{}", "value": 0}]})
    for sel, value in EDGES:
        out.append({"expr": f"round(sum({sel}), 0.000001)", "eval_time": "15m", "exp_samples": [{"labels": "{}", "value": value}]})
    return out


def _write_test(tmp_path: Path, recording_text: str) -> Path:
    (tmp_path / "recording.yml").write_text(recording_text)
    series = [{"series": s, "values": v} for s, v in SERIES]
    doc = {"rule_files": ["recording.yml"], "evaluation_interval": "1m",
           "tests": [{"name": "alert expression == recorded series", "interval": "1m",
                      "input_series": series, "promql_expr_test": _tests(_alert_exprs(tmp_path))}]}
    path = tmp_path / "equivalence_test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 16))
    return path


def test_alert_and_recorded_series_agree_at_the_edges(tmp_path: Path) -> None:
    rc, out = promtool.run(["test", "rules", str(_write_test(tmp_path, RECORDING.read_text()))])
    assert rc == 0, out


def test_the_equivalence_check_catches_a_disagreement(tmp_path: Path) -> None:
    # The pre-#17 swap rule (NaN without swap on the alert side, 0 in the recording) and a
    # filesystem filter missing tmpfs: both must be reported.
    text = RECORDING.read_text()
    alert = signals.SIGNALS["swap_usage_percent"].bare()
    assert alert in text and "|tmpfs|" in text
    text = text.replace(alert, "100 * (1 - node_memory_SwapFree_bytes / node_memory_SwapTotal_bytes)", 1)
    text = text.replace("|tmpfs|", "|")
    rc, out = promtool.run(["test", "rules", str(_write_test(tmp_path, text))])
    assert rc != 0
    assert "instance:swap_usage:percent" in out and "instance_mountpoint:disk_usage:percent" in out, out
