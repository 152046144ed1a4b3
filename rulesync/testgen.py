"""`rulesync test`: promtool unit tests generated per rule from synthetic series.

For each built-in-signal rule the series sit far on the safe side of the threshold for a
warm-up long enough to fill every window, then step just past it at minute S. With the
rule's window W, ``for`` F and rate range R (windows that are whole minutes, samples
every minute or less), the condition first holds at S + d:

| aggregation | gauge | counter (rate) |
|---|---|---|
| last | 0 | R |
| avg | W | W |
| max (above) / min (below) | 0 | R |
| min (above) / max (below) | W | W + R |

and the alert fires at S + d + F rounded up to promtool's one-minute evaluations.
``_active_at`` computes d from the sample times for any window, scrape interval and
sample spacing, rather than from this table. Each rule gets three checks: silent one
minute before that, firing at that minute with exactly the expected labels, and silent
when the step stops just short of the threshold. A host whose labels do not match the
rule's `hosts:` selector goes past the threshold too and must never appear. Signals whose
aggregate has no exact step response (p95 latency, predict_linear) are checked with
bounds: silent until S + F, firing by S + W + R + F.

Each rule is tested alone (its own rule file and test file) so series built for one rule
never trip another; promtool runs many test files per process, two processes at a time.

A rule that reads a recorded series (``generate.recorded_for``) is tested with fleetmon's real
recording rules (prometheus/rules/recording.yml, or ``recording_rules=``) loaded beside it and
evaluated first at each step (``group_eval_order``), so the test proves the reused form: the
recorded series has one sample per evaluation (1m here), which is the step its window sees.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetmon import durations
from fleetmon.resources import prometheus_file, real_path
from rulesync import promtool
from rulesync.generate import alert_rule, dump, recorded_for
from rulesync.model import Rule, Spec
from rulesync.signals import HOST_LABELS, SIGNALS

DEFAULT_HOST = {"instance": "host-1", "datacenter": "dc1", "role": "web", "env": "prod", "job": "fleet"}
# Signals whose result keeps every label of the input series (binary ops on gauges, filters).
_KEEPS_ALL = {"memory_usage_percent", "swap_usage_percent", "disk_usage_percent", "inode_usage_percent",
              "host_down", "disk_will_fill_in_hours"}
_INEXACT = {"http_p95_latency_seconds", "disk_will_fill_in_hours"}
_FS = {"mountpoint": "/", "device": "/dev/sda1", "fstype": "ext4"}
EVAL_INTERVAL = 60.0  # promtool's evaluation_interval in the generated tests
# The shipped per-host recording rules (package data: prometheus/rules/recording.yml in a checkout).
# A real path, because promtool reads it.
DEFAULT_RECORDING_RULES = real_path(prometheus_file("rules", "recording.yml"))
RECORDING_COPY = "recording-rules.yml"


@dataclass
class Case:
    rule: Rule
    rules_doc: dict
    tests_doc: dict
    notes: list[str] = field(default_factory=list)


def _minutes(seconds: float) -> int:
    return int(math.ceil(seconds / 60.0 - 1e-9))


def _levels(rule: Rule, spec: Spec) -> tuple[float, float, float] | None:
    """(far_safe, near_safe, bad) signal values for the step tests; None if unreachable.

    ``bad`` is so close to the threshold that a window mixing far_safe and bad samples
    stays on the safe side: the aggregate only crosses once the whole window is bad,
    which makes the firing minute exact.
    """
    sig = SIGNALS[rule.signal or ""]
    t = rule.threshold or 0.0
    lo, hi = (0.0, 100.0) if sig.unit == "percent" else (0.0, 1.0) if sig.unit == "ratio" else (0.0, math.inf)
    k = rule.window / min(spec.scrape_interval, _spacing(rule, spec)) + 2
    if rule.op == ">":
        far = t / 2 if t > lo else None
        if far is None or t >= hi:
            return None
        eps = min((t - far) / (2 * k), (hi - t) / 2)
        return far, t - eps, t + eps
    far = min(t * 2, (t + hi) / 2) if t < hi else None
    if far is None or t <= lo or far <= t:
        return None
    eps = min((far - t) / (2 * k), (t - lo) / 2)
    return far, t + eps, t - eps


def _series(signal: str, labels: dict[str, str], values: list[float], spacing: float) -> list[dict]:
    """Input series (one sample every ``spacing`` seconds) making ``signal`` equal values[i]
    from sample i on; counters get per-sample increments."""
    def fmt(xs: list[float]) -> str:
        return " ".join(repr(round(x, 9)) if not float(x).is_integer() else str(int(x)) for x in xs)

    def sel(name: str, extra: dict[str, str] | None = None) -> str:
        lab = {**labels, **(extra or {})}
        inner = ",".join(f"{k}={_q(v)}" for k, v in sorted(lab.items()))
        return f"{name}{{{inner}}}"

    def counter(per_minute: list[float]) -> list[float]:
        out, acc = [], 1000.0
        for x in per_minute:
            out.append(acc)
            acc += x * spacing / 60.0
        return out

    out = []
    if signal == "cpu_usage_percent":
        out.append((sel("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}),
                    counter([60 * (1 - v / 100) for v in values])))
        out.append((sel("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}), counter([60 * v / 100 for v in values])))
    elif signal in ("memory_usage_percent", "swap_usage_percent"):
        kind = "Mem" if signal.startswith("memory") else "Swap"
        free = "MemAvailable" if kind == "Mem" else "SwapFree"
        total = 8 * 2**30
        out.append((sel(f"node_memory_{kind}Total_bytes"), [total] * len(values)))
        out.append((sel(f"node_memory_{free}_bytes"), [round(total * (1 - v / 100)) for v in values]))
    elif signal in ("disk_usage_percent", "inode_usage_percent"):
        a, s = ("avail_bytes", "size_bytes") if signal.startswith("disk") else ("files_free", "files")
        total = 100 * 2**30 if signal.startswith("disk") else 6_400_000
        out.append((sel(f"node_filesystem_{s}", _FS), [total] * len(values)))
        out.append((sel(f"node_filesystem_{a}", _FS), [round(total * (1 - v / 100)) for v in values]))
    elif signal == "load_per_core":
        out.append((sel("node_load1"), [2 * v for v in values]))
        for cpu in ("0", "1"):
            out.append((sel("node_cpu_seconds_total", {"cpu": cpu, "mode": "idle"}), counter([30.0] * len(values))))
    elif signal == "host_down":
        out.append((sel("up"), values))
    elif signal == "disk_will_fill_in_hours":
        # values are bytes consumed per minute; avail starts high enough to stay positive.
        total = 10.0 ** 13
        avail, acc = [], total * 0.9
        for x in values:
            avail.append(acc)
            acc -= x * spacing / 60.0
        out.append((sel("node_filesystem_size_bytes", _FS), [total] * len(values)))
        out.append((sel("node_filesystem_avail_bytes", _FS), avail))
    elif signal == "syslog_error_rate":
        out.append((sel("fleetmon_syslog_messages_total", {"log": "syslog", "severity": "err"}), counter(values)))
    elif signal == "webserver_error_rate":
        out.append((sel("fleetmon_webserver_errors_total", {"log": "nginx-error", "level": "error"}),
                    counter(values)))
    elif signal == "http_request_rate":
        out.append((sel("fleetmon_http_requests_total", {"log": "access", "method": "GET", "status": "200"}),
                    counter([60 * v for v in values])))
    elif signal == "http_5xx_ratio":
        per_min = 600.0
        out.append((sel("fleetmon_http_requests_total", {"log": "access", "method": "GET", "status": "200"}),
                    counter([per_min * (1 - v) for v in values])))
        out.append((sel("fleetmon_http_requests_total", {"log": "access", "method": "GET", "status": "500"}),
                    counter([per_min * v for v in values])))
    elif signal == "http_p95_latency_seconds":
        # values are (bucket index) 0 = safe, 1 = bad; the bucket bounds come in labels.
        raise AssertionError("handled by _latency_series")
    return [{"series": s, "values": fmt(v)} for s, v in out]


def _q(v: str) -> str:
    import json

    return json.dumps(v, ensure_ascii=False)


def _latency_series(labels: dict[str, str], before: float, after: float, phase2: list[bool],
                    spacing: float) -> list[dict]:
    """Histogram buckets whose p95 is ``before`` until the step and ``after`` from it on.

    The lower level's observations all fall in (0, b1] (p95 = 0.95*b1), the higher level's
    in (b1, b2] (p95 = b1 + 0.95*(b2-b1)).
    """
    low, high = min(before, after), max(before, after)
    b1 = low / 0.95
    b2 = b1 + (high - b1) / 0.95 if high > b1 else b1 * 2
    in_low = [(after if p else before) == low for p in phase2]
    per = spacing  # one request per second
    buckets = [(b1, [per if x else 0 for x in in_low]), (b2, [per] * len(phase2)), (math.inf, [per] * len(phase2))]
    out = []
    for le, per_min in buckets:
        acc, vals = 1000.0, []
        for x in per_min:
            vals.append(acc)
            acc += x
        lab = {**labels, "log": "access", "le": "+Inf" if le == math.inf else repr(le)}
        inner = ",".join(f"{k}={_q(v)}" for k, v in sorted(lab.items()))
        out.append({"series": f"fleetmon_http_request_duration_seconds_bucket{{{inner}}}",
                    "values": " ".join(str(int(v)) for v in vals)})
    return out


def _spacing(rule: Rule, spec: Spec) -> float:
    """Seconds between synthetic samples: a divisor of a minute no longer than any range, so
    every range (evaluated at whole minutes, both ends inclusive) holds at least two samples.
    Fewer samples keep 1,000 rules' tests fast."""
    limit = min(60.0, spec.rate_interval, rule.window)
    return next(d for d in (60, 30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1) if d <= limit)


def _ceil_to(x: float, step: float) -> float:
    return math.ceil(x / step - 1e-9) * step


def _active_at(rule: Rule, spec: Spec, start: float, spacing: float, reused: bool = False) -> float:
    """First evaluation (whole minutes) at which the condition holds after a step at ``start``.

    Models Prometheus 2.42: range selectors take samples in [t - range, t]; a subquery
    evaluates at multiples of its step in [t - range, t], each point seeing the last sample
    at or before it; a rate is all "bad" once its first sample is at or after the step, a
    gauge point once its sample is. The near-threshold levels make an aggregate cross only
    when every sample it averages is bad (for min/avg) or any is (for max above, min below).
    """
    sig = SIGNALS[rule.signal or ""]
    w, r, step = rule.window, spec.rate_interval, spec.scrape_interval
    if reused:  # a recorded series: one point per evaluation, seeing the last raw sample
        step = EVAL_INTERVAL
    agg = rule.aggregation
    favourable = (agg == "max" and rule.op == ">") or (agg == "min" and rule.op == "<")

    def range_all_bad(t: float, rng: float) -> bool:  # every sample in [t - rng, t] is post-step
        return _ceil_to(t - rng, spacing) >= start

    def gauge_bad(p: float) -> bool:  # the sample a point at p sees is post-step
        return p >= start

    def holds(t: float) -> bool:
        if sig.kind == "bool":
            return gauge_bad(t) if agg in ("last", "max") else range_all_bad(t, w)
        if sig.kind == "predict":
            return range_all_bad(t, w)
        if sig.kind == "gauge":
            if agg == "last" or favourable:
                return gauge_bad(t)
            return gauge_bad(_ceil_to(t - w, step))
        # counter
        if agg == "avg":
            return range_all_bad(t, w)
        if agg == "last" or favourable:
            return range_all_bad(t, r)
        return range_all_bad(_ceil_to(t - w, step), r)

    t = start
    while not holds(t):
        t += 60
    return t


def _expected_labels(rule: Rule, host: dict[str, str]) -> dict[str, str]:
    sig = SIGNALS[rule.signal or ""]
    if rule.signal in _KEEPS_ALL:
        lab = dict(host)
        if sig.extra_by:
            lab.update(_FS)
    else:
        keep = set(HOST_LABELS) | set(rule.hosts) | set(sig.extra_by)
        lab = {k: v for k, v in host.items() if k in keep}
        if "log" in sig.extra_by:
            lab["log"] = "nginx-error" if rule.signal == "webserver_error_rate" else "access"
    lab.update({"severity": rule.severity, "notify": ",".join(rule.notify), "rule_id": rule.rule_id, **rule.labels})
    return {k: v for k, v in lab.items() if v != ""}


def _hosts(rule: Rule) -> tuple[dict[str, str], dict[str, str]]:
    match = dict(DEFAULT_HOST)
    other = dict(DEFAULT_HOST)
    other["instance"] = "host-2"
    for k, values in rule.hosts.items():
        match[k] = values[0]
        other[k] = "not-" + "-".join(values)
    return match, other


def build_case(rule: Rule, spec: Spec, rule_file: str,
               recording: tuple[str, list[str]] | None = None) -> Case | None:
    """The generated promtool test for one built-in-signal rule (None for `expr:` rules).

    ``recording`` is (rule file, its group names) of the recording rules, loaded first for
    a rule that reads a recorded series.
    """
    if rule.signal is None:
        return None
    reused = recorded_for(rule, spec) is not None
    if reused and recording is None:
        raise ValueError(f"{rule.alert} reads a recorded series: recording rules needed")
    sig = SIGNALS[rule.signal]
    notes: list[str] = []
    spacing = _spacing(rule, spec)
    warm = _minutes(rule.window + spec.rate_interval) + 2
    f = _minutes(rule.for_)
    exact = rule.signal not in _INEXACT
    # Inexact signals (p95, predict_linear) cross somewhere between the step and the time the
    # whole window is past it: test the bounds (silent until S + for, firing by then).
    active = _active_at(rule, spec, warm * 60.0, spacing, reused) // 60
    if not exact:
        active = max(active, _ceil_to(warm * 60.0 + rule.window + spec.rate_interval, 60) // 60)
    fire = int(active) + f
    end = fire + 3
    samples_per_min = int(60 // spacing)
    n = end * samples_per_min + 1
    step = [i * spacing >= warm * 60 for i in range(n)]
    match, other = _hosts(rule)

    levels = _levels(rule, spec) if sig.kind not in ("bool", "predict") else None

    def scenario(bad_level: bool) -> list[dict]:
        """Far on the safe side until minute S, then ``bad`` (or just short of the threshold)."""
        series: list[dict] = []
        for host in (match, other) if rule.hosts else (match,):
            if sig.kind == "bool":
                values = [0.0 if p and bad_level else 1.0 for p in step]
            elif sig.kind == "predict":
                # bytes used per minute: bad empties the free space in 0.9 of the horizon
                # (so it fires once the fit sees only the decline), safe in twice it.
                horizon_min = (rule.threshold or 1) * 60
                rate = 0.9 * 10.0 ** 13 / (horizon_min * (0.9 if bad_level else 2))
                values = [rate if p else 0.0 for p in step]
            else:
                assert levels is not None
                far, near, bad = levels
                if rule.signal == "http_p95_latency_seconds":
                    series += _latency_series(host, far, bad if bad_level else near, step, spacing)
                    continue
                values = [(bad if bad_level else near) if p else far for p in step]
            series += _series(rule.signal or "", host, values, spacing)
        return series

    fires = sig.kind in ("bool", "predict") or levels is not None
    if not fires:
        notes.append(f"{rule.alert}: threshold {rule.threshold:g} can never be crossed; only the silent case is tested")
    if sig.kind == "predict" and (rule.threshold or 1) * 60 * 0.85 < (end - warm):
        fires = False
        notes.append(f"{rule.alert}: horizon shorter than window + for; only the silent case is tested")
    tests = []
    if fires:
        alert_tests = []
        silent_until = fire - 1 if exact else warm + f - 1
        if silent_until >= 0:
            alert_tests.append({"eval_time": f"{silent_until}m", "alertname": rule.alert, "exp_alerts": []})
        alert_tests.append({"eval_time": f"{fire}m", "alertname": rule.alert,
                            "exp_alerts": [{"exp_labels": _expected_labels(rule, match)}]})
        tests.append({"interval": durations.format(spacing), "name": f"{rule.alert}: fires at minute {fire}",
                      "input_series": scenario(True), "alert_rule_test": alert_tests})
    silent_name = "silent while up" if sig.kind == "bool" else "silent just short of the threshold"
    if levels is not None or sig.kind in ("bool", "predict"):
        tests.append({"interval": durations.format(spacing), "name": f"{rule.alert}: {silent_name}",
                      "input_series": scenario(False),
                      "alert_rule_test": [{"eval_time": f"{end}m", "alertname": rule.alert, "exp_alerts": []}]})
    rules_doc = {"groups": [{"name": f"test-{rule.alert}", "rules": [alert_rule(rule, spec, annotations=False)]}]}
    tests_doc: dict = {"rule_files": [rule_file], "evaluation_interval": durations.format(EVAL_INTERVAL)}
    if reused and recording is not None:
        tests_doc["rule_files"] = [recording[0], rule_file]
        tests_doc["group_eval_order"] = [*recording[1], f"test-{rule.alert}"]
    tests_doc["tests"] = tests
    return Case(rule, rules_doc, tests_doc, notes)


class RecordingRulesError(ValueError):
    pass


def load_recording_rules(spec: Spec, path: str | Path | None = None) -> tuple[Path, list[str]] | None:
    """(file, group names) of the recording rules the spec's reused series need; None if no rule
    reads one. RecordingRulesError when the file is missing or does not record a series exactly
    as rulesync expects (the generated tests would prove nothing)."""
    needed = {}
    for r in spec.rules:
        rec = recorded_for(r, spec)
        if rec is not None:
            needed.setdefault(rec.record, (rec, r.alert))
    if not needed:
        return None
    p = Path(path) if path is not None else DEFAULT_RECORDING_RULES
    hint = "give --recording-rules PATH (fleetmon's prometheus/rules/recording.yml) or --no-recorded"
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise RecordingRulesError(f"recording rules {p}: {exc.strerror or exc} "
                                  f"(needed by {next(iter(needed.values()))[1]} and others); {hint}") from None
    except yaml.YAMLError as exc:
        raise RecordingRulesError(f"recording rules {p}: malformed YAML: {exc}") from None
    groups = [g for g in (doc or {}).get("groups") or [] if isinstance(g, dict)]
    found = {r.get("record"): " ".join(str(r.get("expr", "")).split())
             for g in groups for r in g.get("rules") or [] if isinstance(r, dict)}
    for name, (rec, alert) in sorted(needed.items()):
        if name not in found:
            raise RecordingRulesError(f"recording rules {p} have no `{name}` (read by {alert}); {hint}")
        if found[name] != " ".join(rec.expr.split()):
            raise RecordingRulesError(f"recording rules {p} record `{name}` as `{found[name]}`, not "
                                      f"`{rec.expr}` as rulesync expects (read by {alert}); {hint}")
    return p, [str(g.get("name")) for g in groups]


@dataclass
class TestReport:
    ok: bool
    rules_tested: int
    test_files: int
    failures: list[str]
    notes: list[str]


def run_tests(spec: Spec, workdir: str | Path | None = None, workers: int = 2, per_run: int = 100,
              recording_rules: str | Path | None = None) -> TestReport:
    """Generate and run every rule's tests (and user `tests:` cases); collect failures.

    Raises RecordingRulesError if rules read recorded series and the recording rules
    (``recording_rules``, default the shipped prometheus/rules/recording.yml) do not record them.
    """
    rec = load_recording_rules(spec, recording_rules)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rulesync-test-")
        workdir = tmp.name
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    files: list[Path] = []
    owner: dict[str, Rule] = {}
    recording = None
    try:
        if rec is not None:
            (wd / RECORDING_COPY).write_text(rec[0].read_text())
            recording = (RECORDING_COPY, rec[1])
        for i, rule in enumerate(spec.rules):
            rf = f"rule-{i:05d}.yml"
            case = build_case(rule, spec, rf, recording)
            if case is not None:
                (wd / rf).write_text(dump(case.rules_doc))
                tf = wd / f"test-{i:05d}.yml"
                tf.write_text(dump(case.tests_doc))
                files.append(tf)
                owner[tf.name] = rule
                notes.extend(case.notes)
            if rule.signal is None and not rule.tests:
                notes.append(f"{rule.file}:{rule.line} {rule.alert}: `expr:` rule without `tests:` is only "
                             "parsed, not tested")
            if rule.tests:
                urf = f"rule-{i:05d}-full.yml"
                (wd / urf).write_text(dump({"groups": [{"name": f"user-{rule.alert}",
                                                         "rules": [alert_rule(rule, spec)]}]}))
                cases = []
                for t in rule.tests:
                    t = dict(t)
                    t.setdefault("interval", "1m")
                    for at in t.get("alert_rule_test", []) or []:
                        at.setdefault("alertname", rule.alert)
                    cases.append(t)
                tf = wd / f"test-{i:05d}-user.yml"
                udoc: dict = {"rule_files": [urf], "evaluation_interval": "1m"}
                if recording is not None and recorded_for(rule, spec) is not None:
                    udoc["rule_files"] = [recording[0], urf]
                    udoc["group_eval_order"] = [*recording[1], f"user-{rule.alert}"]
                udoc["tests"] = cases
                tf.write_text(dump(udoc))
                files.append(tf)
                owner[tf.name] = rule
        failures: list[str] = []
        for batch, rc, out in promtool.test_rules(files, workers=workers, per_run=per_run):
            if rc != 0:
                failures.extend(_failures(batch, out, owner))
        return TestReport(not failures, len(spec.rules), len(files), failures, notes)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _failures(batch: list[Path], out: str, owner: dict[str, Rule]) -> list[str]:
    """Split promtool's combined output into one message per failing rule."""
    chunks: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Unit Testing:"):
            current = Path(line.split(":", 1)[1].strip()).name
            chunks[current] = []
        elif current:
            chunks[current].append(line)
    found = []
    for name, lines in chunks.items():
        text = "\n".join(lines).strip()
        if "FAILED" in text:
            r = owner.get(name)
            where = f"{r.file}:{r.line} {r.alert}" if r else name
            kind = "your tests: case" if name.endswith("-user.yml") else "generated test"
            found.append(f"{where}: {kind} failed:\n{text}")
    if not found:
        found.append(f"promtool failed:\n{out}")
    return found
