"""Stage 4: spec -> Prometheus 2.42 rule files and the router's recipients file (pure).

User values reach PromQL only as JSON-style quoted strings (a valid PromQL string literal),
so no label value can change the structure of an expression; user text reaches annotations
only with ``{{``/``}}`` made literal, except the documented placeholders.
"""

from __future__ import annotations

import json
import re

import yaml

from fleetmon import durations
from rulesync import HEADER
from rulesync.model import Rule, Spec
from rulesync.signals import HOST_LABELS, SIGNALS, Recorded
from rulesync.validate import PLACEHOLDER

VERSION_FILE = "fleetmon-version.rules.yml"  # matches rule_files globs *.yml and *.rules.yml
VERSION_GROUP = "fleetmon_rules_version"
VERSION_METRIC = "fleetmon_rules_bundle_info"


def quote(value: str) -> str:
    """A PromQL string literal for ``value``: JSON escaping is a subset of Go's, so it parses
    back to exactly ``value`` and a quote inside can never end the literal."""
    return json.dumps(value, ensure_ascii=False)


_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def regex_escape(value: str) -> str:
    """Escape RE2 metacharacters so a value matches only itself inside ``=~``."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def matchers(hosts: dict[str, list[str]]) -> list[str]:
    out = []
    for name in sorted(hosts):
        values = hosts[name]
        if len(values) == 1:
            out.append(f"{name}={quote(values[0])}")
        else:
            out.append(f"{name}=~{quote('|'.join(regex_escape(v) for v in values))}")
    return out


def number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _bare(name: str) -> str:
    """A signal's instant expression without any host selector."""
    return SIGNALS[name].bare()


def recorded_for(rule: Rule, spec: Spec) -> Recorded | None:
    """The recorded series a rule reads instead of a subquery, or None (today's expression).

    Only when that is exactly equivalent: reuse is on, the signal is a gauge aggregated over a
    window (avg/max/min; `last` stays the instant raw value, one evaluation fresher), its
    recorded expression equals the signal's, and the host selector uses only labels the
    recorded series keeps, and the window spans at least 4 scrape intervals.
    """
    if rule.signal is None or not spec.use_recorded:
        return None
    sig = SIGNALS[rule.signal]
    rec = sig.recorded
    if rec is None or sig.kind != "gauge" or rule.aggregation not in ("avg", "max", "min"):
        return None
    if _bare(rule.signal) != rec.expr or not set(rule.hosts) <= set(rec.keeps):
        return None
    # Shards evaluate at the scrape interval (shard.yml.tmpl's default): a window of 4 scrapes
    # holds at least two recorded points even at twice that, so it is never empty.
    if rule.window < 4 * spec.scrape_interval:
        return None
    return rec


def required_records(spec: Spec) -> dict[str, list[str]]:
    """{recorded series: alerts reading it} over the spec's rules."""
    out: dict[str, list[str]] = {}
    for r in spec.rules:
        rec = recorded_for(r, spec)
        if rec is not None:
            out.setdefault(rec.record, []).append(r.alert)
    return out


def signal_expr(rule: Rule, spec: Spec) -> str:
    """The value a built-in-signal rule compares with its threshold (no comparison)."""
    sig = SIGNALS[rule.signal or ""]
    ms = matchers(rule.hosts)
    sel0 = ",".join(ms)
    sel = "".join("," + m for m in ms)
    by = ", ".join(dict.fromkeys([*HOST_LABELS, *sorted(rule.hosts), *sig.extra_by]))
    step = durations.format(spec.scrape_interval)
    w = durations.format(rule.window)

    def tmpl(r: float) -> str:
        out = sig.template.format(sel0=sel0, sel=sel, by=by, r=durations.format(r), w=w,
                                  seconds=number((rule.threshold or 0) * 3600))
        if not ms:  # no user text in the expression: `up{}` -> `up` is safe to tidy
            out = re.sub(r"([A-Za-z_:][A-Za-z0-9_:]*)\{\}", r"\1", out)
        return out

    agg = rule.aggregation
    if sig.kind == "counter":
        if agg == "avg":
            return tmpl(rule.window)
        if agg == "last":
            return tmpl(spec.rate_interval)
        return f"{agg}_over_time(({tmpl(spec.rate_interval)})[{w}:{step}])"
    if sig.kind == "gauge":
        if agg == "last":
            return tmpl(0)
        rec = recorded_for(rule, spec)
        if rec is not None:  # no subquery: the shard already records this value every evaluation
            return f"{agg}_over_time({rec.record}{{{sel0}}}[{w}])" if ms else f"{agg}_over_time({rec.record}[{w}])"
        return f"{agg}_over_time(({tmpl(0)})[{w}:{step}])"
    return tmpl(0)


def condition(rule: Rule, spec: Spec) -> str:
    """The full alerting expression of a rule."""
    if rule.expr is not None:
        return rule.expr.strip()
    sig = SIGNALS[rule.signal or ""]
    if sig.kind == "bool":  # host_down
        up = signal_expr(rule, spec)
        w = durations.format(rule.window)
        return {
            "last": f"{up} == 0",
            "min": f"max_over_time({up}[{w}]) == 0",
            "avg": f"max_over_time({up}[{w}]) == 0",
            "max": f"min_over_time({up}[{w}]) == 0",
        }[rule.aggregation]
    if sig.kind == "predict":
        return f"{signal_expr(rule, spec)} < 0"
    return f"{signal_expr(rule, spec)} {rule.op} {number(rule.threshold or 0)}"


def template_literal(text: str) -> str:
    """Keep documented placeholders; make every other ``{{`` / ``}}`` print literally."""
    out = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        out.append(_escape_braces(text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_escape_braces(text[pos:]))
    return "".join(out)


def _escape_braces(text: str) -> str:
    return re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group(0) + '" }}', text)


def _describe(rule: Rule) -> tuple[str, str]:
    if rule.expr is not None:
        return (f"{rule.alert} on {{{{ $labels.instance }}}}",
                f"{rule.alert}: expression is true (value {{{{ $value }}}}).")
    sig = SIGNALS[rule.signal or ""]
    w = durations.format(rule.window)
    hold = f" for {durations.format(rule.for_)}" if rule.for_ else ""
    if sig.kind == "bool":
        return ("Host {{ $labels.instance }} is down",
                f"{{{{ $labels.instance }}}} did not answer its scrape ({rule.aggregation} over {w}){hold}.")
    if sig.kind == "predict":
        return (f"Disk {{{{ $labels.mountpoint }}}} on {{{{ $labels.instance }}}} will fill within "
                f"{number(rule.threshold or 0)} hours",
                f"Linear fit over {w} predicts {{{{ $labels.mountpoint }}}} full within "
                f"{number(rule.threshold or 0)} hours{hold}.")
    word = "above" if rule.op == ">" else "below"
    return (f"{rule.signal} {word} {number(rule.threshold or 0)} on {{{{ $labels.instance }}}}",
            f"{rule.signal} ({rule.aggregation} over {w}) is {{{{ $value | humanize }}}}, "
            f"{word} {number(rule.threshold or 0)}{hold}.")


def alert_rule(rule: Rule, spec: Spec, annotations: bool = True) -> dict:
    out: dict = {"alert": rule.alert, "expr": condition(rule, spec)}
    if rule.for_:
        out["for"] = durations.format(rule.for_)
    labels = {"severity": rule.severity, "notify": ",".join(rule.notify), "rule_id": rule.rule_id}
    # Prometheus expands templates in alert labels too; user label values stay literal.
    labels.update({k: _escape_braces(v) for k, v in rule.labels.items()})
    out["labels"] = labels
    if annotations:
        summary, description = _describe(rule)
        ann = {
            "summary": template_literal(rule.summary) if rule.summary is not None else summary,
            "description": template_literal(rule.description) if rule.description is not None else description,
        }
        for key in ("runbook_url", "dashboard_url"):
            if getattr(rule, key):
                ann[key] = template_literal(getattr(rule, key))
        out["annotations"] = ann
    return out


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 20,
                     default_flow_style=False)


def rule_file_text(group: str, rules: list[dict], source: str) -> str:
    body = dump({"groups": [{"name": group, "rules": rules}]})
    return f"{HEADER}\n# source: {source}\n{body}"


def file_name(source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", source)
    return f"{stem}.rules.yml"


def generate(spec: Spec) -> dict[str, str]:
    """{file name: text}: one rule file (one group) per source file, in input order."""
    by_source: dict[str, list[Rule]] = {}
    for r in spec.rules:
        by_source.setdefault(r.file, []).append(r)
    files: dict[str, str] = {}
    for path, rules in by_source.items():
        source = rules[0].source
        name = file_name(source)
        n = 2
        while name in files:
            name = file_name(f"{source}-{n}")
            n += 1
        group = "rulesync-" + name[: -len(".rules.yml")]
        files[name] = rule_file_text(group, [alert_rule(r, spec) for r in rules], path.rsplit("/", 1)[-1])
    return files


def version_file_text(version: str) -> str:
    """A one-rule group whose series shows the loaded bundle version in /api/v1/rules.

    A separate group, so changing the version never renames (and resets) the alert groups.
    """
    rule = {"record": VERSION_METRIC, "expr": "vector(1)", "labels": {"version": version}}
    return f"{HEADER}\n{dump({'groups': [{'name': VERSION_GROUP, 'rules': [rule]}]})}"


def recipients_text(spec: Spec) -> str:
    return f"{HEADER}\n{dump({'recipients': {k: list(v) for k, v in sorted(spec.recipients.items())}})}"
