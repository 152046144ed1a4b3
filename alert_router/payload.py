"""Parsing and validation of Alertmanager webhook payloads (version "4").

Every field Alertmanager 0.25 sends is understood; fields added by newer versions are
ignored. Validation collects the first problem with the exact field path
(``alerts[3].labels.severity``) so a 400 tells the sender what to fix. Nothing here does
I/O: the HTTP layer turns :class:`PayloadError` into a 4xx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ALERTS = 10_000
MAX_FINGERPRINT = 64
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)
_FINGERPRINT = re.compile(r"^[0-9A-Za-z]+$")
STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """A payload that is not a valid Alertmanager webhook; ``field`` is the JSON path."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str                  # as sent (RFC 3339)
    starts_at_ts: float | None      # epoch seconds, None for Go's zero time
    ends_at: str
    ends_at_ts: float | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "(unnamed alert)")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def state_key(self) -> str:
        """Identity of this alert *state*: delivered once per recipient.

        A firing state is the alert's fingerprint and start; its ``endsAt`` is left out
        because Prometheus keeps pushing it forward while the alert fires. A resolved state
        adds its end, so a resolve is a new state but the same resolve resent is not.
        """
        if self.status == "resolved":
            return f"{self.fingerprint}|resolved|{self.starts_at_ts}|{self.ends_at_ts}"
        return f"{self.fingerprint}|firing|{self.starts_at_ts}"


@dataclass(frozen=True)
class Notification:
    version: str
    receiver: str
    status: str
    alerts: list[Alert]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    group_key: str
    truncated_alerts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def receiver_name(self) -> str:
        """Alertmanager 0.25 regex-escapes the receiver name (``team\\.db``); undo it."""
        return re.sub(r"\\(.)", r"\1", self.receiver)

    def to_json(self) -> dict[str, Any]:
        """The normalised payload as stored in the queue (the same shape Alertmanager sends)."""
        return {
            "version": self.version, "receiver": self.receiver, "status": self.status,
            "alerts": [
                {"status": a.status, "labels": a.labels, "annotations": a.annotations,
                 "startsAt": a.starts_at, "endsAt": a.ends_at, "generatorURL": a.generator_url,
                 "fingerprint": a.fingerprint}
                for a in self.alerts
            ],
            "groupLabels": self.group_labels, "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations, "externalURL": self.external_url,
            "groupKey": self.group_key, "truncatedAlerts": self.truncated_alerts,
        }


def parse_time(value: Any, where: str) -> tuple[str, float | None]:
    """RFC 3339 (Go's format, up to nanoseconds) -> (text, epoch seconds or None for year 1)."""
    if not isinstance(value, str):
        raise PayloadError(where, "must be an RFC 3339 timestamp string")
    m = _RFC3339.match(value)
    if not m:
        raise PayloadError(where, f"not an RFC 3339 timestamp: {value[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "0")[:6].ljust(6, "0")
    tz = m.group(8)
    if year <= 1:
        return value, None  # Go's zero time: "not set" (firing alerts' endsAt)
    try:
        dt = datetime(year, month, day, hour, minute, min(second, 59), int(frac), tzinfo=UTC)
    except ValueError as exc:
        raise PayloadError(where, f"invalid date/time: {exc}") from None
    ts = dt.timestamp()
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        ts -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return value, ts


def _str_map(obj: Any, where: str, required: bool = False, non_empty: bool = False) -> dict[str, str]:
    if obj is None and not required:
        return {}
    if not isinstance(obj, dict):
        raise PayloadError(where, "must be an object of string values")
    for k, v in obj.items():
        if not isinstance(v, str):
            raise PayloadError(f"{where}.{k}", "must be a string")
        if not k:
            raise PayloadError(where, "empty key")
    if non_empty and not obj:
        raise PayloadError(where, "must not be empty")
    return dict(obj)


def _string(obj: dict, key: str, where: str, required: bool = True, default: str = "") -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise PayloadError(f"{where}{key}", "is required")
        return default
    v = obj[key]
    if not isinstance(v, str):
        raise PayloadError(f"{where}{key}", "must be a string")
    return v


def _status(obj: dict, where: str) -> str:
    s = _string(obj, "status", where)
    if s not in STATUSES:
        raise PayloadError(f"{where}status", f"must be one of {', '.join(STATUSES)}")
    return s


def parse_alert(obj: Any, where: str) -> Alert:
    if not isinstance(obj, dict):
        raise PayloadError(where, "must be an object")
    p = where + "."
    status = _status(obj, p)
    labels = _str_map(obj.get("labels"), p + "labels", required=True, non_empty=True)
    annotations = _str_map(obj.get("annotations"), p + "annotations")
    if "startsAt" not in obj:
        raise PayloadError(p + "startsAt", "is required")
    starts_at, starts_ts = parse_time(obj["startsAt"], p + "startsAt")
    ends_raw = obj.get("endsAt", "0001-01-01T00:00:00Z")
    ends_at, ends_ts = parse_time(ends_raw, p + "endsAt")
    generator = _string(obj, "generatorURL", p, required=False)
    fp = _string(obj, "fingerprint", p)
    if not fp or len(fp) > MAX_FINGERPRINT or not _FINGERPRINT.match(fp):
        raise PayloadError(p + "fingerprint", f"must be 1-{MAX_FINGERPRINT} letters or digits")
    if status == "resolved" and ends_ts is None:
        raise PayloadError(p + "endsAt", "a resolved alert needs its end time")
    return Alert(status, labels, annotations, starts_at, starts_ts, ends_at, ends_ts, generator, fp)


def parse_notification(obj: Any) -> Notification:
    """Validate a decoded JSON body; raise :class:`PayloadError` naming the first bad field."""
    if not isinstance(obj, dict):
        raise PayloadError("$", "the body must be a JSON object")
    version = _string(obj, "version", "")
    status = _status(obj, "")
    receiver = _string(obj, "receiver", "")
    group_key = _string(obj, "groupKey", "")
    external = _string(obj, "externalURL", "", required=False)
    alerts_raw = obj.get("alerts")
    if not isinstance(alerts_raw, list):
        raise PayloadError("alerts", "is required and must be a list")
    if not alerts_raw:
        raise PayloadError("alerts", "must not be empty")
    if len(alerts_raw) > MAX_ALERTS:
        raise PayloadError("alerts", f"more than {MAX_ALERTS} alerts; set max_alerts in Alertmanager")
    alerts = [parse_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts_raw)]
    truncated = obj.get("truncatedAlerts", 0)
    if truncated is None:
        truncated = 0
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    known = {"version", "status", "receiver", "groupKey", "externalURL", "alerts", "truncatedAlerts",
             "groupLabels", "commonLabels", "commonAnnotations"}
    return Notification(
        version=version, receiver=receiver, status=status, alerts=alerts,
        group_labels=_str_map(obj.get("groupLabels"), "groupLabels"),
        common_labels=_str_map(obj.get("commonLabels"), "commonLabels"),
        common_annotations=_str_map(obj.get("commonAnnotations"), "commonAnnotations"),
        external_url=external, group_key=group_key, truncated_alerts=truncated,
        extra={k: v for k, v in obj.items() if k not in known},
    )
