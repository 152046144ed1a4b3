"""Stage 3: check loaded documents and build the typed spec, collecting every problem.

Two passes, neither stopping at the first mistake. The file's shape (types, required and
unknown keys, enums, durations, name patterns) is declared once, in
``docs/schemas/rules.schema.json``, and checked by :func:`fleetmon.schema.check`; each of its
problems becomes a Problem with the line (``fleetmon.yamldoc.line_at``), the field as users
name it (``rules[HighCpu].above``), the value found and the schema's hint. What a schema cannot
say stays here: thresholds against the signal's unit, windows against the scrape interval,
options a signal does not take, names unique across files, recipient groups defined, secret
references and PromQL (promtool). The CLI maps the list to an exit code.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from typing import Any

from fleetmon import durations, schema
from fleetmon.secrets import scrub
from fleetmon.yamldoc import keyname, line_at, value_at
from rulesync import promtool
from rulesync.load import Document, LocatedDict, LocatedList
from rulesync.model import Rule, Spec
from rulesync.problems import Problem
from rulesync.signals import SIGNALS

SCHEMA = "rules"
PLACEHOLDER = re.compile(
    r"\{\{\s*(?:\$labels\.[a-zA-Z_][a-zA-Z0-9_]*"
    r"|\$value(?:\s*\|\s*(?:humanize|humanize1024|humanizePercentage|humanizeDuration))?)\s*\}\}")
RESERVED_LABELS = {"alertname", "severity", "notify", "rule_id", "instance"}
# Labels the built-in signals match or aggregate on themselves; a host selector on them would
# silently change what is measured (`mode` on CPU) or select nothing.
SIGNAL_LABELS = {"mode", "cpu", "le", "status", "severity", "level", "method", "job"}
# ${file:...} and ${NAME}: what the alert router would expand (and $$ escapes nothing there).
SECRET_REF = re.compile(r"\$\{[^}]*\}")
# Words people reach for, and the field they mean.
ALIASES = {"threshold": "above", "treshold": "above", "name": "alert", "signal": "metric", "query": "expr",
           "duration": "for", "selector": "hosts", "host": "hosts", "recipients": "notify", "agg": "aggregation",
           "range": "window", "level": "severity"}
_MISSING = object()


def _nearest(word: str, names: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), list(names), n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"one of: {', '.join(names)}"


def _nearest_field(word: str, names: tuple[str, ...]) -> str:
    alias = difflib.get_close_matches(str(word), list(ALIASES), n=1, cutoff=0.8)
    if alias and ALIASES[alias[0]] in names and str(word) not in names:
        target = ALIASES[alias[0]]
        return f"did you mean {target}{' / below' if target == 'above' else ''}?"
    return _nearest(word, names)


# -- pass 1: the schema ------------------------------------------------------------------------

def _resolve(node: Any) -> dict[str, Any]:
    return schema.resolve(SCHEMA, node)


def _child(node: dict[str, Any], step: Any) -> dict[str, Any] | None:
    return schema.child(SCHEMA, node, step)


def _rule_field(name: str) -> dict[str, Any]:
    return _resolve(schema.subschema(SCHEMA, ("rules", 0))["properties"][name])


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    return value_at(data, path, _MISSING)


def _show(value: Any) -> str:
    """What was found: ``str '80'``, ``int 5``, ``nothing``, ``a list [...]``."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        text = repr(_plain(value))
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"a {'mapping' if isinstance(value, dict) else 'list'} {text}"
    return f"{type(value).__name__} {value!r}"


def _kind(value: Any) -> str:
    """What was found, without the value itself: ``a str``, ``a mapping``, ``nothing``."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def field_name(data: Any, path: tuple[Any, ...]) -> str:
    """The field as rulesync names it: a rule by its alert name (``rules[HighCpu].window``)."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rule = _at(data, path[:2])
        if isinstance(rule, dict) and isinstance(rule.get("alert"), str):
            rest = keyname(path[2:])
            return f"rules[{rule['alert']}]" + (rest if not rest or rest.startswith("[") else "." + rest)
    return keyname(path)


def _convert(path_name: str, data: Any, sp: schema.SchemaProblem) -> Problem:
    """One SchemaProblem as a Problem: a missing key, an unknown key or a bad value."""
    path = sp.path
    nodes = [schema.subschema(SCHEMA) or {}]
    for step in path[:-1]:
        nodes.append(_child(nodes[-1], step) or {})
    parent = _at(data, path[:-1]) if path else _MISSING
    fld, line = field_name(data, path), line_at(data, path)
    # Recipient URLs carry credentials (mailtos://user:password@host): under `recipients` a
    # problem names the kind of value it found, never the value, and a key is scrubbed (a URL
    # pasted where a group name goes).
    secret = bool(path) and path[0] == "recipients"
    if secret:
        fld = scrub(fld)
    if isinstance(parent, dict):
        key, owner = path[-1], nodes[-1]
        if key not in parent:
            sub = _child(owner, key) or {}
            hint = f"add `{key}: {sub['const']}`" if "const" in sub else f"add `{key}:`"
            return Problem("error", path_name, line, fld, f"missing required field {key!r}", hint)
        if owner.get("additionalProperties") is False and _child(owner, key) is None:
            hint = owner.get("x-unknown-hint") or _nearest_field(key, tuple(owner.get("properties", ())))
            shown = repr(scrub(str(key))) if secret else repr(key)
            return Problem("error", path_name, line, fld, f"{owner.get('x-unknown', 'unknown key')} {shown}", hint)
    node = (_child(nodes[-1], path[-1]) if path else nodes[0]) or {}
    value = _at(data, path)
    hint = node.get("x-hint", "")
    if "enum" in node and isinstance(value, str):
        near = _nearest(value, node["enum"])
        if near.startswith("did you mean") or not all(str(v) in sp.message for v in node["enum"]):
            hint = near + (f" ({hint})" if hint else "")
    # A name for the problem ("unknown signal", "bad alert name") is followed by the value, like
    # an unknown key; a sentence ("expected a number") reads on with what was found.
    if secret:
        msg = f"{sp.message}, got {_kind(value)}"
    elif path and sp.message.startswith(("unknown ", "bad ", "unsupported ")):
        msg = f"{sp.message} {value!r}"
    else:
        msg = f"{sp.message}, got {_show(value)}"
    return Problem("error", path_name, line, fld, msg, hint)


def _string_keys(node: Any) -> Any:
    """``node`` with every mapping key a string, as JSON Schema sees keys (YAML allows ``1:``);
    the same object when nothing changes, so a normal file is only scanned, never copied."""
    if isinstance(node, dict):
        pairs: list[tuple[str, Any]] | None = None
        for i, (k, v) in enumerate(node.items()):
            v2 = _string_keys(v) if isinstance(v, dict | list) else v
            if pairs is None and (v2 is not v or not isinstance(k, str)):
                pairs = list(node.items())[:i]
            if pairs is not None:
                pairs.append((str(k), v2))
        if pairs is None:
            return node
        out = LocatedDict(pairs)
        out.line = getattr(node, "line", 0)
        out.lines = {str(k): n for k, n in getattr(node, "lines", {}).items()}
        return out
    if isinstance(node, list):
        items: list[Any] | None = None
        for i, v in enumerate(node):
            v2 = _string_keys(v) if isinstance(v, dict | list) else v
            if items is None and v2 is not v:
                items = node[:i]
            if items is not None:
                items.append(v2)
        if items is None:
            return node
        seq = LocatedList(items)
        seq.line = getattr(node, "line", 0)
        seq.lines = list(getattr(node, "lines", []))
        return seq
    return node


def check_structure(path: str, data: Any) -> tuple[list[Problem], set[tuple[Any, ...]]]:
    """Every way ``data`` (a loaded rules file) breaks docs/schemas/rules.schema.json, and the
    paths holding a problem (each problem's path and every prefix of it)."""
    found = schema.check(SCHEMA, data)
    flawed = {sp.path[:i] for sp in found for i in range(len(sp.path) + 1)}
    return [_convert(path, data, sp) for sp in found], flawed


# -- pass 2: what the schema cannot say --------------------------------------------------------

class _Checker:
    """Builds the typed rules from a file and checks them; the schema pass has already
    reported every value of the wrong shape (``flawed`` holds their paths), so such a value is
    skipped here without a second problem (the spec is refused either way)."""

    def __init__(self, doc: Document, data: Any, scrape_interval: float | None,
                 flawed: set[tuple[Any, ...]] | None = None):
        self.doc = doc
        self.data = data
        self.flawed = flawed or set()
        self.problems: list[Problem] = []
        self.scrape_override = scrape_interval
        self.use_recorded: bool | None = None  # the file's `use_recorded`, if set

    def err(self, line: int, fld: str, msg: str, hint: str = "", severity: str = "error") -> None:
        self.problems.append(Problem(severity, self.doc.path, line, fld, msg, hint))

    def check(self) -> tuple[list[Rule], dict[str, tuple[list[str], int]], float]:
        data = self.data
        rules: list[Rule] = []
        recipients: dict[str, tuple[list[str], int]] = {}
        if not isinstance(data, LocatedDict):
            return rules, recipients, self.scrape_override or 15.0
        scrape = 15.0
        s = _duration(data.get("scrape_interval"))
        if s is not None:
            if s <= 0:
                self.err(data.line_of("scrape_interval"), "scrape_interval", "must be positive")
            else:
                scrape = s
        if self.scrape_override:
            scrape = self.scrape_override
        if isinstance(data.get("use_recorded"), bool):
            self.use_recorded = data["use_recorded"]
        recipients = self.check_recipients(data)
        raw_rules = data.get("rules")
        if isinstance(raw_rules, LocatedList):
            for i, raw in enumerate(raw_rules):
                r = self.check_rule(raw, i, scrape)
                if r is not None:
                    rules.append(r)
        return rules, recipients, scrape

    def check_recipients(self, data: LocatedDict) -> dict[str, tuple[list[str], int]]:
        out: dict[str, tuple[list[str], int]] = {}
        rec = data.get("recipients")
        if not isinstance(rec, LocatedDict):
            return out
        for name, urls in rec.items():
            fld = f"recipients.{name}"
            line = rec.line_of(name)
            bare = isinstance(urls, str)
            if bare:
                urls = [urls]
            if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
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
                elif bare and "://" not in u:
                    # The schema checks list items; one bare URL is a string it cannot tell apart.
                    self.err(lines[i], f"{fld}[{i}]", "not an Apprise URL (scheme://...)",
                             "e.g. mailto://user@example.com")
            out[name] = (list(urls), line)
        return out

    def check_rule(self, raw: Any, index: int, scrape: float) -> Rule | None:
        if not isinstance(raw, LocatedDict) or not isinstance(raw.get("alert"), str):
            return None
        alert = raw["alert"]
        stem = self.doc.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        rule = Rule(alert=alert, rule_id=alert, file=self.doc.path, line=raw.line, source=stem)
        fld = f"rules[{alert}]"
        if isinstance(raw.get("id"), str) and raw["id"]:
            rule.rule_id = raw["id"]
        has_metric, has_expr = "metric" in raw, "expr" in raw
        if has_metric == has_expr:
            self.err(raw.line, fld, "give exactly one of `metric` (a built-in signal) or `expr` (PromQL)",
                     f"built-in signals: {', '.join(SIGNALS)}")
        if has_metric:
            self.check_signal_rule(raw, index, fld, rule, scrape)
        elif has_expr:
            expr = raw["expr"]
            if isinstance(expr, str):
                if not expr.strip():
                    self.err(raw.line_of("expr"), f"{fld}.expr", "empty expression", "write a PromQL condition")
                else:
                    rule.expr = expr
            for key in ("aggregation", "window", "above", "below", "hosts"):
                if key in raw:
                    self.err(raw.line_of(key), f"{fld}.{key}", f"`{key}` only applies to built-in signals",
                             "with `expr:` write the whole condition and matchers in PromQL")
        f = _duration(raw.get("for"))
        if f is not None:
            rule.for_ = f
        sev = raw.get("severity", "warning")
        if isinstance(sev, str):
            rule.severity = sev
        notify = raw.get("notify", [])
        if isinstance(notify, str):
            notify = [notify]
        if ("rules", index, "notify") not in self.flawed and isinstance(notify, list):
            rule.notify = list(dict.fromkeys(notify))
            if not notify:
                self.err(raw.line_of("notify") if "notify" in raw else raw.line, f"{fld}.notify",
                         "no recipients: this alert notifies nobody", "add `notify: [group]`", "warning")
        for key in ("summary", "description", "runbook_url", "dashboard_url"):
            text = raw.get(key)
            if not isinstance(text, str):
                continue
            setattr(rule, key, text)
            literal = PLACEHOLDER.sub("", text)
            if "{{" in literal or "}}" in literal:
                self.err(raw.line_of(key), f"{fld}.{key}", "template text other than the documented "
                         "placeholders is shown literally, not executed",
                         "only {{ $labels.NAME }} and {{ $value }} (optionally | humanize...) expand",
                         "warning")
        labels = raw.get("labels")
        if isinstance(labels, LocatedDict):
            for k, v in labels.items():
                if k in RESERVED_LABELS:
                    self.err(labels.line_of(k), f"{fld}.labels.{k}", f"label {k!r} is set by rulesync",
                             "use another name")
                elif isinstance(v, str):
                    rule.labels[k] = v
        tests = raw.get("tests")
        if isinstance(tests, list) and all(isinstance(t, dict) for t in tests):
            rule.tests = [_plain(t) for t in tests]
        # A rule with errors still takes part in the cross-file checks (duplicates,
        # recipients); any error anywhere keeps the spec from being built.
        return rule

    def check_signal_rule(self, raw: LocatedDict, index: int, fld: str, rule: Rule, scrape: float) -> None:
        name = raw["metric"]
        sig = SIGNALS.get(name) if isinstance(name, str) else None
        if sig is None:  # not a signal: the schema's enum reported it
            return
        rule.signal = name
        agg = raw.get("aggregation", "last" if sig.kind == "bool" else "avg")
        if agg in sig.aggregations:
            rule.aggregation = agg
        elif agg in _rule_field("aggregation")["enum"]:  # others: the schema reported them
            self.err(raw.line_of("aggregation"), f"{fld}.aggregation", f"aggregation {agg!r} not supported for {name}",
                     _nearest(str(agg), sig.aggregations))
        w = _duration(raw.get("window"))
        if w is not None:
            if w < 2 * scrape:
                self.err(raw.line_of("window"), f"{fld}.window",
                         f"window {raw['window']} is shorter than two scrape intervals ({durations.format(2 * scrape)})",
                         f"use at least {durations.format(2 * scrape)}: a shorter window holds one sample or none")
            else:
                rule.window = w
        dirs = [d for d in ("above", "below") if d in raw]
        if not sig.directions:
            if dirs:
                self.err(raw.line_of(dirs[0]), f"{fld}.{dirs[0]}", f"{name} takes no threshold",
                         "remove it: the rule fires when the host is down")
        elif len(dirs) != 1:
            self.err(raw.line, fld, "give exactly one of `above` or `below`", f"e.g. `above: 80` ({sig.unit})")
        elif dirs[0] not in sig.directions:
            self.err(raw.line_of(dirs[0]), f"{fld}.{dirs[0]}", f"{name} only supports {' / '.join(sig.directions)}",
                     f"use `{sig.directions[0]}:`")
        else:
            d = dirs[0]
            v = raw[d]
            if isinstance(v, bool) or not isinstance(v, int | float):
                pass  # the schema reported it
            elif math.isnan(v):
                self.err(raw.line_of(d), f"{fld}.{d}", f"expected a number, got float {v!r}",
                         "write a plain number without quotes or units, e.g. 80")
            elif sig.unit == "percent" and not 0 <= v <= 100:
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} is outside 0-100 for a percentage",
                         "write percent as 0-100, e.g. 80 for 80%")
            elif sig.unit == "ratio" and not 0 <= v <= 1:
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} is outside 0-1 for a ratio",
                         "write 5% as 0.05")
            elif v < 0 or math.isinf(v):
                self.err(raw.line_of(d), f"{fld}.{d}", f"{v:g} can never be reached by {name}", "use a finite value >= 0")
            else:
                rule.op = ">" if d == "above" else "<"
                rule.threshold = float(v)
        hosts = raw.get("hosts")
        if isinstance(hosts, LocatedDict):
            for k, v in hosts.items():
                if ("rules", index, "hosts", k) in self.flawed:
                    continue
                if k in SIGNAL_LABELS:
                    self.err(hosts.line_of(k), f"{fld}.hosts.{k}",
                             f"label {k!r} is part of what the signal measures, not a host label",
                             "select hosts by instance, datacenter, role, env or another target label; "
                             "use `expr:` for anything else")
                    continue
                rule.hosts[k] = list(dict.fromkeys(v if isinstance(v, list) else [v]))


def _duration(value: Any) -> float | None:
    """Seconds for a duration string the schema accepts, None for anything else (reported there)."""
    return _seconds(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=256)
def _seconds(text: str) -> float | None:
    # A thousand rules use a handful of spellings ("5m", "0s"): parse each once.
    try:
        return durations.parse(text)
    except ValueError:
        return None


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
        data = _string_keys(doc.data)
        found, flawed = check_structure(doc.path, data)
        problems.extend(found)
        ch = _Checker(doc, data, scrape_interval, flawed)
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
