"""Scenario files for the host simulator: timed events that bend simulated hosts' metrics.

A scenario is YAML::

    version: 1
    events:
      - {type: cpu,       hosts: web-0042, at: 60s, duration: 10m, value: 95}
      - {type: disk_fill, hosts: "db-0007", at: 2m, duration: 5m, value: 98, mountpoint: /var/lib}
      - {type: http_5xx,  hosts: "web-*", at: 5m, duration: 2m, value: 30}
      - {type: memory,    hosts: "cache-*", at: 1m, duration: 3m, value: 92}
      - {type: host_down, hosts: app-0003, at: 3m, duration: 5m, deregister_after: 10m}

``hosts`` is a shell glob or a list of globs over host names; ``at``, ``duration`` and
``deregister_after`` are durations (``fleetmon.durations``: ``90s``, ``1h30m``, a number of
seconds); ``at`` counts from when the simulator starts (or from when the event is posted to
``/-/events``); ``value`` is a percent.
Parsing is pure: errors name the file, the event's index and the field.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetmon import durations

EVENT_TYPES = ("cpu", "memory", "disk_fill", "http_5xx", "host_down")
# Without a duration an event lasts until the simulator stops.
FOREVER = float("inf")


class ScenarioError(ValueError):
    """A scenario file or event is invalid; the message names file, event and field."""


@dataclass(frozen=True)
class Event:
    type: str
    hosts: tuple[str, ...]
    at: float
    duration: float = FOREVER
    value: float = 100.0
    mountpoint: str = "/"
    deregister_after: float | None = None
    name: str = ""

    @property
    def end(self) -> float:
        return self.at + self.duration

    def matches(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, pat) for pat in self.hosts)

    def to_dict(self, offset: float = 0.0) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "hosts": list(self.hosts), "at": self.at + offset,
                             "duration": None if self.duration == FOREVER else self.duration,
                             "value": self.value}
        if self.type == "disk_fill":
            d["mountpoint"] = self.mountpoint
        if self.type == "host_down":
            d["deregister_after"] = self.deregister_after
        if self.name:
            d["name"] = self.name
        return d


@dataclass
class Scenario:
    events: list[Event] = field(default_factory=list)
    source: str = "<scenario>"


def parse_duration(value: Any, where: str) -> float:
    """'90s', '5m', '1h30m', '1.5h', 30 -> seconds (``fleetmon.durations``). Raises ScenarioError
    naming ``where``."""
    try:
        return durations.parse(value)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def parse_event(raw: Any, where: str) -> Event:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: an event must be a mapping, got {type(raw).__name__}")
    known = {"type", "hosts", "at", "duration", "value", "mountpoint", "deregister_after", "name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    etype = raw.get("type")
    if etype not in EVENT_TYPES:
        raise ScenarioError(f"{where}.type: must be one of {', '.join(EVENT_TYPES)}, got {etype!r}")
    hosts = raw.get("hosts")
    if isinstance(hosts, str):
        hosts = [hosts]
    if not hosts or not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ScenarioError(f"{where}.hosts: a host name, glob or list of them is required")
    at = parse_duration(raw.get("at", 0), f"{where}.at")
    duration = FOREVER
    if raw.get("duration") is not None:
        duration = parse_duration(raw["duration"], f"{where}.duration")
        if duration <= 0:
            raise ScenarioError(f"{where}.duration: must be positive")
    value = 100.0
    if etype == "host_down":
        if "value" in raw:
            raise ScenarioError(f"{where}.value: host_down takes no value")
    else:
        if "value" not in raw and etype != "disk_fill":
            raise ScenarioError(f"{where}.value: required for {etype} (a percent, 0-100)")
        v = raw.get("value", 100)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
            raise ScenarioError(f"{where}.value: a percent between 0 and 100, got {v!r}")
        value = float(v)
    mountpoint = raw.get("mountpoint", "/")
    if etype != "disk_fill" and "mountpoint" in raw:
        raise ScenarioError(f"{where}.mountpoint: only disk_fill takes a mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
        raise ScenarioError(f"{where}.mountpoint: an absolute path, got {mountpoint!r}")
    dereg: float | None = None
    if "deregister_after" in raw:
        if etype != "host_down":
            raise ScenarioError(f"{where}.deregister_after: only host_down takes it")
        if raw["deregister_after"] not in (None, "never"):
            dereg = parse_duration(raw["deregister_after"], f"{where}.deregister_after")
    elif etype == "host_down":
        dereg = 600.0
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ScenarioError(f"{where}.name: must be a string")
    return Event(type=etype, hosts=tuple(hosts), at=at, duration=duration, value=value,
                 mountpoint=mountpoint, deregister_after=dereg, name=name)


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    if data is None:
        return Scenario([], source)
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: top level must be a mapping with 'events'")
    unknown = sorted(set(data) - {"version", "events"})
    if unknown:
        raise ScenarioError(f"{source}: unknown top-level field(s) {', '.join(unknown)}")
    if data.get("version", 1) != 1:
        raise ScenarioError(f"{source}: version: only 1 is supported, got {data.get('version')!r}")
    events = data.get("events") or []
    if not isinstance(events, list):
        raise ScenarioError(f"{source}: events: must be a list")
    return Scenario([parse_event(e, f"{source}: events[{i}]") for i, e in enumerate(events)], source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    return parse_scenario(data, str(path))
