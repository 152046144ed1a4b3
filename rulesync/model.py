"""Stage 2: the validated, typed spec the generator works from.

Durations are seconds (parsed and written back by :mod:`fleetmon.durations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
