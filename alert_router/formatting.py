"""Messages that fit their channel, built from stored Alertmanager notifications.

* SMS: one line, under 160 characters (ASCII "..." when cut, so it stays one GSM segment).
* push: a short title and a body of one line per alert plus the runbook link.
* email: every alert of the group with labels, annotations (values are in them),
  start/end times, runbook, dashboard and source links; alerts already notified in the
  group are listed too, and alerts Alertmanager truncated are counted.

Pure functions: alerts are the JSON dicts Alertmanager sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from .payload import parse_time

SMS_MAX = 159
PUSH_MAX_LINES = 10
HIDDEN_LABELS = ("notify", "rule_id")


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: str      # Apprise NotifyType value: info, success, warning, failure


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parse_time(text, "t")[1]
    except ValueError:
        return None


def _fmt_time(text: str | None, now: float | None = None) -> str:
    ts = _ts(text)
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is not None and now >= ts:
        return f"{stamp} ({_ago(now - ts)} ago)"
    return stamp


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def _name(a: dict) -> str:
    return a.get("labels", {}).get("alertname", "(unnamed alert)")


def _where(a: dict) -> str:
    labels = a.get("labels", {})
    return labels.get("instance") or labels.get("job") or ""


def _summary(a: dict) -> str:
    ann = a.get("annotations", {})
    s = ann.get("summary") or ann.get("message") or ann.get("description") or ""
    if s:
        return s
    return f"{_name(a)} on {_where(a)}" if _where(a) else _name(a)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


def notify_type_for(alerts: Sequence[dict]) -> str:
    if all(a.get("status") == "resolved" for a in alerts):
        return "success"
    sev = {a.get("labels", {}).get("severity", "") for a in alerts if a.get("status") == "firing"}
    if "critical" in sev:
        return "failure"
    if "warning" in sev:
        return "warning"
    return "info"


def _counts(alerts: Sequence[dict]) -> tuple[int, int]:
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    return firing, len(alerts) - firing


def _status_tag(alerts: Sequence[dict]) -> str:
    firing, resolved = _counts(alerts)
    parts = []
    if firing:
        parts.append(f"FIRING:{firing}")
    if resolved:
        parts.append(f"RESOLVED:{resolved}")
    return "[" + ", ".join(parts) + "]"


def _group_title(alerts: Sequence[dict], notif: dict) -> str:
    names = list(dict.fromkeys(_name(a) for a in alerts))
    head = names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1} more kinds"
    if len(alerts) == 1 and _where(alerts[0]):
        head += f" on {_where(alerts[0])}"
    sev = sorted({a.get("labels", {}).get("severity", "") for a in alerts} - {""})
    sev_txt = f" ({'/'.join(sev)})" if sev else ""
    return f"{_status_tag(alerts)} {head}{sev_txt}"


# ---------------------------------------------------------------------------- SMS

def sms(alerts: Sequence[dict], notif: dict, limit: int = SMS_MAX) -> Message:
    first = alerts[0]
    state = "RESOLVED" if first.get("status") == "resolved" else "FIRING"
    sev = first.get("labels", {}).get("severity", "")
    head = f"{state}{' ' + sev.upper() if sev and state == 'FIRING' else ''}: {_summary(first)}"
    where = _where(first)
    if where and where not in head:
        head += f" [{where}]"
    more = len(alerts) - 1 + int(notif.get("truncatedAlerts") or 0)
    tail = f" (+{more} more)" if more > 0 else ""
    text = _cut(_one_line(head), limit - len(tail)) + tail
    return Message(title="", body=text, notify_type=notify_type_for(alerts))


# ---------------------------------------------------------------------------- push

def push(alerts: Sequence[dict], notif: dict) -> Message:
    title = _cut(_one_line(_group_title(alerts, notif)), 120)
    lines = []
    for a in alerts[:PUSH_MAX_LINES]:
        state = "RESOLVED" if a.get("status") == "resolved" else "FIRING"
        lines.append(_cut(_one_line(f"{state}: {_summary(a)}"), 200))
    more = max(0, len(alerts) - PUSH_MAX_LINES) + int(notif.get("truncatedAlerts") or 0)
    if more > 0:
        lines.append(f"... and {more} more")
    ann = alerts[0].get("annotations", {})
    for key, label in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")):
        if ann.get(key):
            lines.append(f"{label}: {ann[key]}")
    return Message(title=title, body="\n".join(lines), notify_type=notify_type_for(alerts))


# ---------------------------------------------------------------------------- email

def _alert_block(a: dict, now: float) -> list[str]:
    state = "RESOLVED" if a.get("status") == "resolved" else "FIRING"
    labels = a.get("labels", {})
    ann = dict(a.get("annotations", {}))
    out = [f"== {state}: {_summary(a)} =="]
    out.append(f"  Alert:       {_name(a)}")
    if labels.get("severity"):
        out.append(f"  Severity:    {labels['severity']}")
    if _where(a):
        out.append(f"  Instance:    {_where(a)}")
    out.append(f"  Started:     {_fmt_time(a.get('startsAt'), now)}")
    if state == "RESOLVED":
        out.append(f"  Resolved:    {_fmt_time(a.get('endsAt'), now)}")
    desc = ann.pop("description", "")
    ann.pop("summary", None)
    if desc:
        out.append(f"  Description: {desc}")
    runbook = ann.pop("runbook_url", "")
    dashboard = ann.pop("dashboard_url", "")
    for k in sorted(ann):
        out.append(f"  {k}: {ann[k]}")
    out.append("  Labels:      " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                                            if k not in HIDDEN_LABELS))
    if runbook:
        out.append(f"  Runbook:     {runbook}")
    if dashboard:
        out.append(f"  Dashboard:   {dashboard}")
    if a.get("generatorURL"):
        out.append(f"  Source:      {a['generatorURL']}")
    out.append(f"  Fingerprint: {a.get('fingerprint', '')}")
    return out


def email(alerts: Sequence[dict], notif: dict, now: float | None = None) -> Message:
    now = time.time() if now is None else now
    title = _one_line(_group_title(alerts, notif))
    glabels = notif.get("groupLabels") or {}
    firing, resolved = _counts(alerts)
    lines = [
        f"{firing} firing, {resolved} resolved."
        + (f" Group: {', '.join(f'{k}={v}' for k, v in sorted(glabels.items()))}." if glabels else ""),
        "",
    ]
    for a in alerts:
        lines += _alert_block(a, now)
        lines.append("")
    sent = {a.get("fingerprint") for a in alerts}
    others = [a for a in notif.get("alerts", []) if a.get("fingerprint") not in sent]
    if others:
        lines.append(f"Also in this group, already notified ({len(others)}):")
        for a in others:
            state = "RESOLVED" if a.get("status") == "resolved" else "FIRING"
            lines.append(f"  - {state}: {_summary(a)} (since {_fmt_time(a.get('startsAt'))})")
        lines.append("")
    truncated = int(notif.get("truncatedAlerts") or 0)
    if truncated:
        lines.append(f"{truncated} more alerts in this group were left out by Alertmanager (max_alerts); "
                     "see Alertmanager for the full list.")
        lines.append("")
    ext = notif.get("externalURL") or ""
    if ext:
        lines.append(f"Alertmanager: {ext}")
        if glabels:
            flt = quote("{" + ",".join(f'{k}="{v}"' for k, v in sorted(glabels.items())) + "}")
            lines.append(f"Silence:      {ext.rstrip('/')}/#/silences/new?filter={flt}")
    receiver = notif.get("receiver")
    if receiver:
        lines.append(f"Receiver:     {receiver}")
    return Message(title=title, body="\n".join(lines).rstrip() + "\n", notify_type=notify_type_for(alerts))


def render(channel: str, alerts: Sequence[dict], notif: dict, sms_max: int = SMS_MAX,
           now: float | None = None) -> Message:
    if channel == "sms":
        return sms(alerts, notif, sms_max)
    if channel == "email":
        return email(alerts, notif, now)
    return push(alerts, notif)


# ---------------------------------------------------------------------------- digest

def digest(channel: str, batches: Sequence[tuple[dict, Sequence[dict]]], sms_max: int = SMS_MAX,
           window: float = 60.0) -> Message:
    """One message for many notifications, sent when a recipient is flooded."""
    alerts = [a for _, al in batches for a in al]
    firing, resolved = _counts(alerts)
    kinds = Counter(_name(a) for a in alerts)
    top = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in kinds.most_common(5))
    ntype = notify_type_for(alerts)
    if channel == "sms":
        text = f"DIGEST: {firing} firing, {resolved} resolved: {top}"
        return Message("", _cut(_one_line(text), sms_max), ntype)
    title = f"[DIGEST] {firing} firing, {resolved} resolved alerts ({len(batches)} notifications)"
    lines = [f"More than the allowed number of messages per {int(window)}s were due for this recipient, "
             "so these alerts are folded into one digest.", ""]
    limit = 200 if channel == "email" else PUSH_MAX_LINES
    for a in alerts[:limit]:
        state = "RESOLVED" if a.get("status") == "resolved" else "FIRING"
        sev = a.get("labels", {}).get("severity", "")
        line = f"{state} {sev} {_name(a)} {_where(a)}: {_summary(a)}"
        lines.append(_one_line(line) if channel == "email" else _cut(_one_line(line), 200))
        if channel == "email":
            rb = a.get("annotations", {}).get("runbook_url")
            if rb:
                lines.append(f"    runbook: {rb}")
    if len(alerts) > limit:
        lines.append(f"... and {len(alerts) - limit} more")
    return Message(title, "\n".join(lines) + "\n", ntype)
