"""Stage 3: check loaded documents and build the typed spec, collecting every problem.

Nothing here stops at the first mistake: each check appends a Problem with the file,
line, field path and a hint, and the CLI maps the list to an exit code.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from rulesync import promtool
from rulesync.load import Document, LocatedDict, LocatedList
from rulesync.model import Rule, Spec, format_duration, parse_duration
from rulesync.problems import Problem
from rulesync.signals import SIGNALS

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
GROUP_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
SEVERITIES = ("critical", "warning", "info")
AGGREGATIONS = ("avg", "max", "min", "last")
RESERVED_LABELS = {"alertname", "severity", "notify", "rule_id", "instance"}
PLACEHOLDER = re.compile(
    r"\{\{\s*(?:\$labels\.[a-zA-Z_][a-zA-Z0-9_]*"
    r"|\$value(?:\s*\|\s*(?:humanize|humanize1024|humanizePercentage|humanizeDuration))?)\s*\}\}")
# Labels the built-in signals match or aggregate on themselves; a host selector on them would
# silently change what is measured (`mode` on CPU) or select nothing.
SIGNAL_LABELS = {"mode", "cpu", "le", "status", "severity", "level", "method", "job"}
# ${file:...} and ${NAME}: what the alert router would expand (and $$ escapes nothing there).
SECRET_REF = re.compile(r"\$\{[^}]*\}")
TOP_FIELDS = ("version", "rules", "recipients", "scrape_interval", "use_recorded")
RULE_FIELDS = ("alert", "id", "metric", "expr", "aggregation", "window", "above", "below", "for", "hosts",
               "severity", "notify", "summary", "description", "runbook_url", "dashboard_url", "labels",
               "tests")


# Words people reach for, and the field they mean.
ALIASES = {"threshold": "above", "treshold": "above", "name": "alert", "signal": "metric", "query": "expr",
           "duration": "for", "selector": "hosts", "host": "hosts", "recipients": "notify", "agg": "aggregation",
           "range": "window", "level": "severity"}


def _nearest(word: str, names: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), list(names), n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"one of: {', '.join(names)}"


def _nearest_field(word: str, names: tuple[str, ...]) -> str:
    alias = difflib.get_close_matches(str(word), list(ALIASES), n=1, cutoff=0.8)
    if alias and ALIASES[alias[0]] in names and str(word) not in names:
        target = ALIASES[alias[0]]
        return f"did you mean {target}{' / below' if target == 'above' else ''}?"
    return _nearest(word, names)


class _Checker:
    def __init__(self, doc: Document, scrape_interval: float | None):
        self.doc = doc
        self.problems: list[Problem] = []
        self.scrape_override = scrape_interval
        self.use_recorded: bool | None = None  # the file's `use_recorded`, if set

    def err(self, line: int, fld: str, msg: str, hint: str = "", severity: str = "error") -> None:
        self.problems.append(Problem(severity, self.doc.path, line, fld, msg, hint))

    # -- scalar helpers: return None (and record a problem) when the type is wrong
    def string(self, m: LocatedDict, key: str, fld: str, required: bool = False) -> str | None:
        if key not in m or m[key] is None:
            if required:
                self.err(m.line, fld, f"missing required field {key!r}", f"add `{key}:`")
            return None
        v = m[key]
        if not isinstance(v, str):
            self.err(m.line_of(key), fld, f"expected a string, got {type(v).__name__} {v!r}",
                     "quote the value")
            return None
        return v

    def number(self, m: LocatedDict, key: str, fld: str) -> float | None:
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(float(v)):
            self.err(m.line_of(key), fld, f"expected a number, got {type(v).__name__} {v!r}",
                     "write a plain number without quotes or units, e.g. 80")
            return None
        return float(v)

    def duration(self, m: LocatedDict, key: str, fld: str) -> float | None:
        v = m[key]
        if not isinstance(v, str):
            self.err(m.line_of(key), fld, f"expected a duration string, got {type(v).__name__} {v!r}",
                     "write a duration with a unit, e.g. 5m or 30s")
            return None
        try:
            return parse_duration(v)
        except ValueError as exc:
            self.err(m.line_of(key), fld, str(exc), "use units ms, s, m, h, d, w, y, e.g. 5m")
            return None

    def check(self) -> tuple[list[Rule], dict[str, tuple[list[str], int]], float]:
        data = self.doc.data
        rules: list[Rule] = []
        recipients: dict[str, tuple[list[str], int]] = {}
        if not isinstance(data, LocatedDict):
            self.err(getattr(data, "line", 1), "", "the file must be a mapping with `version` and `rules`",
                     "start with `version: 1` then `rules:`")
            return rules, recipients, self.scrape_override or 15.0
        for key in data:
            if key not in TOP_FIELDS:
                self.err(data.line_of(key), str(key), f"unknown top-level field {key!r}",
                         _nearest_field(key, TOP_FIELDS))
        if "version" not in data:
            self.err(data.line, "version", "missing `version`", "add `version: 1` at the top")
        elif data["version"] != 1 or isinstance(data["version"], bool):
            self.err(data.line_of("version"), "version", f"unsupported version {data['version']!r}",
                     "this rulesync reads `version: 1`")
        scrape = 15.0
        if "scrape_interval" in data:
            s = self.duration(data, "scrape_interval", "scrape_interval")
            if s is not None:
                if s <= 0:
                    self.err(data.line_of("scrape_interval"), "scrape_interval", "must be positive")
                else:
                    scrape = s
        if self.scrape_override:
            scrape = self.scrape_override
        if "use_recorded" in data:
            if isinstance(data["use_recorded"], bool):
                self.use_recorded = data["use_recorded"]
            else:
                self.err(data.line_of("use_recorded"), "use_recorded",
                         f"must be true or false, not {data['use_recorded']!r}",
                         "`use_recorded: false` compiles without fleetmon's recording rules")
        recipients = self.check_recipients(data)
        raw_rules = data.get("rules")
        if raw_rules is None:
            if "recipients" not in data:  # a recipients-only file is fine
                self.err(data.line, "rules", "missing `rules` list", "add `rules:` with at least one rule")
        elif not isinstance(raw_rules, LocatedList):
            self.err(data.line_of("rules"), "rules", f"expected a list, got {type(raw_rules).__name__}",
                     "each rule starts with `- alert: Name`")
        else:
            for i, raw in enumerate(raw_rules):
                r = self.check_rule(raw, f"rules[{i}]", raw_rules.line_of(i), scrape)
                if r is not None:
                    rules.append(r)
        return rules, recipients, scrape

    def check_recipients(self, data: LocatedDict) -> dict[str, tuple[list[str], int]]:
        out: dict[str, tuple[list[str], int]] = {}
        rec = data.get("recipients")
        if rec is None:
            return out
        if not isinstance(rec, LocatedDict):
            self.err(data.line_of("recipients"), "recipients", "expected a mapping of group name to URLs",
                     'e.g. `oncall: ["mailto://..."]`')
            return out
        for name, urls in rec.items():
            fld = f"recipients.{name}"
            line = rec.line_of(name)
            if not isinstance(name, str) or not GROUP_NAME.match(name):
                self.err(line, fld, f"bad recipient group name {name!r}",
                         "use letters, digits, '_', '.', '-' (no commas: notify joins names with commas)")
                continue
            if isinstance(urls, str):
                urls = [urls]
            if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
                self.err(line, fld, "expected a non-empty list of Apprise URL strings",
                         '`oncall: ["mailto://...", "ntfy://..."]` (no secrets: those go in the router'"'"'s local_recipients)')
                continue
            lines = rec[name].lines if isinstance(rec[name], LocatedList) else [line] * len(urls)
            for i, u in enumerate(urls):
                ref = SECRET_REF.search(u)
                if ref:
                    # The router expands these from its own files and environment: a reference
                    # written by a rule author could send the router's secrets to any URL.
                    self.err(lines[i], f"{fld}[{i}]",
                             f"secret reference {ref.group(0)} is not allowed in rules YAML",
                             "name the group here without secrets and define its secret-bearing URLs in the "
                             "alert router's local_recipients file (docs/security.md)")
                elif "://" not in u:
                    self.err(lines[i], f"{fld}[{i}]", "not an Apprise URL (scheme://...)",
                             "e.g. mailto://user@example.com")
            out[name] = (list(urls), line)
        return out

    def check_rule(self, raw: Any, fld: str, line: int, scrape: float) -> Rule | None:
        if not isinstance(raw, LocatedDict):
            self.err(line, fld, f"a rule must be a mapping, got {type(raw).__name__}", "start it with `- alert: Name`")
            return None
        ok = True
        if isinstance(raw.get("alert"), str):
            fld = f"rules[{raw['alert']}]"
        for key in raw:
            if key not in RULE_FIELDS:
                self.err(raw.line_of(key), f"{fld}.{key}", f"unknown field {key!r}", _nearest_field(key, RULE_FIELDS))
                ok = False
        alert = self.string(raw, "alert", f"{fld}.alert", required=True)
        if alert is not None and not ALERT_NAME.match(alert):
            self.err(raw.line_of("alert"), f"{fld}.alert", f"bad alert name {alert!r}",
                     "letters, digits and '_' only, not starting with a digit")
            ok = False
        if alert is None:
            return None
        stem = self.doc.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        rule = Rule(alert=alert, rule_id=alert, file=self.doc.path, line=raw.line, source=stem)
        fld = f"rules[{alert}]"
        if "id" in raw:
            rid = self.string(raw, "id", f"{fld}.id")
            if rid is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]+", rid):
                self.err(raw.line_of("id"), f"{fld}.id", f"bad id {rid!r}", "letters, digits, '_', '.', ':', '-'")
                ok = False
            elif rid:
                rule.rule_id = rid
        has_metric, has_expr = "metric" in raw, "expr" in raw
        if has_metric == has_expr:
            self.err(raw.line, fld, "give exactly one of `metric` (a built-in signal) or `expr` (PromQL)",
                     f"built-in signals: {', '.join(SIGNALS)}")
            ok = False
        if has_metric:
            ok &= self.check_signal_rule(raw, fld, rule, scrape)
        elif has_expr:
            expr = self.string(raw, "expr", f"{fld}.expr")
            if expr is None or not expr.strip():
                if expr is not None:
                    self.err(raw.line_of("expr"), f"{fld}.expr", "empty expression", "write a PromQL condition")
                ok = False
            rule.expr = expr
            for key in ("aggregation", "window", "above", "below", "hosts"):
                if key in raw:
                    self.err(raw.line_of(key), f"{fld}.{key}", f"`{key}` only applies to built-in signals",
                             "with `expr:` write the whole condition and matchers in PromQL")
                    ok = False
        if "for" in raw:
            f = self.duration(raw, "for", f"{fld}.for")
            if f is None:
                ok = False
            else:
                rule.for_ = f
        sev = raw.get("severity", "warning")
        if sev not in SEVERITIES:
            self.err(raw.line_of("severity"), f"{fld}.severity", f"unknown severity {sev!r}", _nearest(sev, SEVERITIES))
            ok = False
        else:
            rule.severity = sev
        notify = raw.get("notify", [])
        if isinstance(notify, str):
            notify = [notify]
        if not isinstance(notify, list) or not all(isinstance(n, str) and GROUP_NAME.match(n) for n in notify):
            self.err(raw.line_of("notify"), f"{fld}.notify", f"expected a list of recipient group names, got {notify!r}",
                     "e.g. `notify: [oncall, dba]`")
            ok = False
        else:
            rule.notify = list(dict.fromkeys(notify))
            if not notify:
                self.err(raw.line_of("notify") if "notify" in raw else raw.line, f"{fld}.notify",
                         "no recipients: this alert notifies nobody", "add `notify: [group]`", "warning")
        for key in ("summary", "description", "runbook_url", "dashboard_url"):
            if key in raw:
                text = self.string(raw, key, f"{fld}.{key}")
                if text is None:
                    ok = False
                    continue
                setattr(rule, key, text)
                literal = PLACEHOLDER.sub("", text)
                if "{{" in literal or "}}" in literal:
                    self.err(raw.line_of(key), f"{fld}.{key}", "template text other than the documented "
                             "placeholders is shown literally, not executed",
                             "only {{ $labels.NAME }} and {{ $value }} (optionally | humanize...) expand",
                             "warning")
        if "labels" in raw:
            labels = raw["labels"]
            if not isinstance(labels, LocatedDict):
                self.err(raw.line_of("labels"), f"{fld}.labels", "expected a mapping of label name to value")
                ok = False
            else:
                for k, v in labels.items():
                    lf = f"{fld}.labels.{k}"
                    if not isinstance(k, str) or not LABEL_NAME.match(k) or k.startswith("__"):
                        self.err(labels.line_of(k), lf, f"bad label name {k!r}",
                                 "letters, digits and '_', not starting with a digit or '__'")
                        ok = False
                    elif k in RESERVED_LABELS:
                        self.err(labels.line_of(k), lf, f"label {k!r} is set by rulesync", "use another name")
                        ok = False
                    elif not isinstance(v, str):
                        self.err(labels.line_of(k), lf, f"label value must be a string, got {v!r}", "quote it")
                        ok = False
                    else:
                        rule.labels[k] = v
        if "tests" in raw:
            tests = raw["tests"]
            if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
                self.err(raw.line_of("tests"), f"{fld}.tests", "expected a list of promtool test cases",
                         "each with input_series and alert_rule_test, see rulesync/README.md")
                ok = False
            else:
                rule.tests = [_plain(t) for t in tests]
        # A rule with errors still takes part in the cross-file checks (duplicates,
        # recipients); any error anywhere keeps the spec from being built.
        return rule

    def check_signal_rule(self, raw: LocatedDict, fld: str, rule: Rule, scrape: float) -> bool:
        ok = True
        name = raw["metric"]
        sig = SIGNALS.get(name) if isinstance(name, str) else None
        if sig is None:
            self.err(raw.line_of("metric"), f"{fld}.metric", f"unknown signal {name!r}",
                     _nearest(str(name), list(SIGNALS)) + " (or use `expr:` with PromQL)")
            return False
        rule.signal = name
        agg = raw.get("aggregation", "last" if sig.kind == "bool" else "avg")
        if agg not in sig.aggregations:
            self.err(raw.line_of("aggregation"), f"{fld}.aggregation", f"aggregation {agg!r} not supported for {name}",
                     _nearest(str(agg), sig.aggregations))
            ok = False
        else:
            rule.aggregation = agg
        if "window" in raw:
            w = self.duration(raw, "window", f"{fld}.window")
            if w is None:
                ok = False
            elif w < 2 * scrape:
                self.err(raw.line_of("window"), f"{fld}.window",
                         f"window {raw['window']} is shorter than two scrape intervals ({format_duration(2 * scrape)})",
                         f"use at least {format_duration(2 * scrape)}: a shorter window holds one sample or none")
                ok = False
            else:
                rule.window = w
        dirs = [d for d in ("above", "below") if d in raw]
        if not sig.directions:
            if dirs:
                self.err(raw.line_of(dirs[0]), f"{fld}.{dirs[0]}", f"{name} takes no threshold",
                         "remove it: the rule fires when the host is down")
                ok = False
        elif len(dirs) != 1:
            self.err(raw.line, fld, "give exactly one of `above` or `below`", f"e.g. `above: 80` ({sig.unit})")
            ok = False
        elif dirs[0] not in sig.directions:
            self.err(raw.line_of(dirs[0]), f"{fld}.{dirs[0]}", f"{name} only supports {' / '.join(sig.directions)}",
                     f"use `{sig.directions[0]}:`")
            ok = False
        else:
            d = dirs[0]
            v = self.number(raw, d, f"{fld}.{d}")
            if v is None:
                ok = False
            elif sig.unit == "percent" and not 0 <= v <= 100:
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} is outside 0-100 for a percentage",
                         "write percent as 0-100, e.g. 80 for 80%")
                ok = False
            elif sig.unit == "ratio" and not 0 <= v <= 1:
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} is outside 0-1 for a ratio",
                         "write 5% as 0.05")
                ok = False
            elif v < 0 or math.isinf(v):
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} can never be reached by {name}", "use a finite value >= 0")
                ok = False
            else:
                rule.op = ">" if d == "above" else "<"
                rule.threshold = v
        if "hosts" in raw:
            hosts = raw["hosts"]
            if not isinstance(hosts, LocatedDict):
                self.err(raw.line_of("hosts"), f"{fld}.hosts", "expected a mapping of host label to value(s)",
                         "e.g. `hosts: {role: web, datacenter: [dc1, dc2]}`")
                return False
            for k, v in hosts.items():
                hf = f"{fld}.hosts.{k}"
                line = hosts.line_of(k)
                if not isinstance(k, str) or not LABEL_NAME.match(k) or k.startswith("__"):
                    self.err(line, hf, f"bad label name {k!r}",
                             "label names are letters, digits and '_', not starting with a digit or '__'")
                    ok = False
                    continue
                if k in SIGNAL_LABELS:
                    self.err(line, hf, f"label {k!r} is part of what the signal measures, not a host label",
                             "select hosts by instance, datacenter, role, env or another target label; "
                             "use `expr:` for anything else")
                    ok = False
                    continue
                values = v if isinstance(v, list) else [v]
                if not values or not all(isinstance(x, str) for x in values):
                    self.err(line, hf, f"expected a string or a list of strings, got {v!r}",
                             "quote values such as numbers: role: \"42\"")
                    ok = False
                    continue
                rule.hosts[k] = list(dict.fromkeys(values))
        return ok


def _plain(obj: Any) -> Any:
    """Located containers -> plain dict/list (for re-dumping user test cases)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def validate(docs: list[Document], scrape_interval: float | None = None,
             check_expr: bool = True, use_recorded: bool | None = None) -> tuple[Spec | None, list[Problem]]:
    """Check every document; return the spec (None if any error) and every problem found.

    ``use_recorded`` (the CLI's --recorded/--no-recorded) overrides the files' `use_recorded`;
    otherwise reuse is on unless a file sets `use_recorded: false`.
    """
    file_recorded = True
    problems: list[Problem] = []
    rules: list[Rule] = []
    recipients: dict[str, list[str]] = {}
    rec_where: dict[str, str] = {}
    scrape = scrape_interval or 15.0
    for doc in docs:
        problems.extend(doc.problems)
        if doc.problems and doc.data is None:
            continue
        ch = _Checker(doc, scrape_interval)
        r, rec, scrape = ch.check()
        if ch.use_recorded is False:
            file_recorded = False
        problems.extend(ch.problems)
        rules.extend(r)
        for name, (urls, line) in rec.items():
            if name in recipients and recipients[name] != urls:
                problems.append(Problem("error", doc.path, line, f"recipients.{name}",
                                        f"group {name!r} is also defined differently at {rec_where[name]}",
                                        "define each recipient group once"))
            recipients[name] = urls
            rec_where[name] = f"{doc.path}:{line}"
    seen: dict[str, Rule] = {}
    seen_id: dict[str, Rule] = {}
    for r in rules:
        if r.alert in seen:
            o = seen[r.alert]
            problems.append(Problem("error", r.file, r.line, f"rules[{r.alert}].alert",
                                    f"duplicate alert name {r.alert!r} (first at {o.file}:{o.line})",
                                    "give each rule its own name"))
        seen.setdefault(r.alert, r)
        if r.rule_id in seen_id and seen_id[r.rule_id] is not r and r.alert not in (seen_id[r.rule_id].alert,):
            problems.append(Problem("error", r.file, r.line, f"rules[{r.alert}].id", f"duplicate rule id {r.rule_id!r}",
                                    "ids must be unique"))
        seen_id.setdefault(r.rule_id, r)
        for n in r.notify:
            if n not in recipients:
                problems.append(Problem("error", r.file, r.line, f"rules[{r.alert}].notify",
                                        f"recipient group {n!r} is used but not defined",
                                        _nearest(n, list(recipients)) if recipients else "add it under `recipients:`"))
    if check_expr:
        problems.extend(check_expressions([r for r in rules if r.expr]))
    problems.sort(key=lambda p: (p.file, p.line))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return Spec(rules=rules, recipients=recipients, scrape_interval=scrape, files=[d.path for d in docs],
                use_recorded=file_recorded if use_recorded is None else use_recorded), problems


def check_expressions(rules: list[Rule]) -> list[Problem]:
    """Parse every `expr:` with promtool in one run; map its messages back to the rules."""
    if not rules:
        return []
    try:
        errors = promtool.check_exprs([r.expr or "" for r in rules])
    except (promtool.PromtoolMissing, OSError) as exc:
        r = rules[0]
        return [Problem("error", r.file, r.line, f"rules[{r.alert}].expr", f"cannot check `expr:` rules: {exc}",
                        "install promtool (Debian package prometheus) or set PROMTOOL")]
    out = []
    for idx, msg in errors.items():
        r = rules[idx]
        out.append(Problem("error", r.file, r.line, f"rules[{r.alert}].expr", f"invalid PromQL: {msg}",
                           "fix the expression (checked with promtool check rules)"))
    return out
