"""Stage 2: the validated, typed spec the generator works from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """A Prometheus duration ("5m", "1h30m", "90s") in seconds; ValueError if malformed."""
    m = _DURATION.match(text or "")
    if not text or not m or text == "":
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m")
    return sum(int(m.group(i)) * u for i, u in zip(range(2, 15, 2), _UNITS, strict=True) if m.group(i))


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest Prometheus duration text (300 -> "5m", 0 -> "0s")."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


@dataclass
class Rule:
    alert: str
    rule_id: str
    file: str
    line: int
    source: str  # stem of the source file: names the generated group and file
    signal: str | None = None
    expr: str | None = None
    aggregation: str = "avg"
    window: float = 300.0
    op: str | None = None  # ">" (above) or "<" (below)
    threshold: float | None = None
    for_: float = 0.0
    hosts: dict[str, list[str]] = field(default_factory=dict)
    severity: str = "warning"
    notify: list[str] = field(default_factory=list)
    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    tests: list[dict] = field(default_factory=list)


@dataclass
class Spec:
    rules: list[Rule]
    recipients: dict[str, list[str]]
    scrape_interval: float = 15.0
    files: list[str] = field(default_factory=list)
    use_recorded: bool = True  # reuse fleetmon's recorded series where exactly equal

    @property
    def rate_interval(self) -> float:
        """Range for rate() when the window itself is not used: 4 scrapes, at least 1m."""
        return max(4 * self.scrape_interval, 60.0)
