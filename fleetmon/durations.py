"""Durations: the one grammar every fleetmon file and flag accepts.

It is Prometheus's (``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``, ``500ms``), so a value copied from a
rule's ``for:`` or a scrape interval means the same everywhere, plus two forms our own settings
always took: a plain number of seconds (YAML ``30`` or the text ``"30"``) and a decimal amount of a
single unit (``1.5h``). Units go from largest to smallest, each at most once; a negative or empty
duration is refused. ``format()`` writes the shortest Prometheus spelling back (``5400`` ->
``1h30m``), which is what rulesync puts in generated rules.
"""

from __future__ import annotations

import re
from typing import Any

# Largest unit first; Prometheus's own order and sizes (a year is 365 days).
UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
_NUM = r"\d+(?:\.\d+)?"
_COMPOUND = re.compile("".join(rf"(?:(?P<{u}>\d+){u})?" for u, _ in UNITS))
_SINGLE = re.compile(rf"(?P<n>{_NUM})(?P<u>ms|[ywdhms])")
_PLAIN = re.compile(_NUM)
_SIZE = dict(UNITS)
EXAMPLE = "30s, 5m, 1h30m or a number of seconds"


def parse(value: Any) -> float:
    """``value`` in seconds: ``"1h30m"`` -> 5400.0, ``90`` -> 90.0, ``"1.5h"`` -> 5400.0.

    ValueError (saying what was expected, with the value) for anything else, including booleans
    (YAML ``true`` is not a duration) and negative numbers.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration like {EXAMPLE}, got {value!r}")
    if isinstance(value, int | float):
        if value < 0 or value != value:  # NaN
            raise ValueError(f"must not be negative, got {value!r}")
        return float(value)
    text = str(value).strip()
    if _PLAIN.fullmatch(text):
        return float(text)
    m = _SINGLE.fullmatch(text)
    if m:
        return float(m["n"]) * _SIZE[m["u"]]
    m = _COMPOUND.fullmatch(text)
    if text and m:
        return float(sum(int(n) * _SIZE[u] for u, n in m.groupdict().items() if n))
    raise ValueError(f"expected a duration like {EXAMPLE}, got {value!r}")


def is_duration(value: Any) -> bool:
    """True when ``parse(value)`` would succeed (the schemas' ``format: duration``)."""
    try:
        parse(value)
    except ValueError:
        return False
    return True


def format(seconds: float) -> str:  # noqa: A001 - the module's other half: durations.format()
    """Seconds -> the shortest Prometheus duration text (300 -> ``5m``, 0 -> ``0s``)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)
