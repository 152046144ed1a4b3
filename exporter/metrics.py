"""A small metric family type and a fast text-format renderer.

prometheus_client's ``generate_latest`` escapes and sorts every label of every sample;
the host collectors produce a few hundred samples per scrape with known-safe label
names, so they build ``Family`` objects and render them here. Families from
prometheus_client (the textfile parser, process metrics) are converted with
``from_client``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def escape_value(value: str) -> str:
    """Escape a label value for the text format."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def format_value(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Family:
    """One metric family: a name, a type, a HELP sentence and samples.

    ``add(values, value)`` appends a sample whose label values line up with
    ``labels``; ``add_sample(suffix, labels_dict, value)`` is for histogram series.
    """

    __slots__ = ("name", "type", "help", "labels", "samples")

    def __init__(self, name: str, mtype: str, help_text: str, labels: Sequence[str] = ()):
        assert mtype in _TYPES, mtype
        self.name = name
        self.type = mtype
        self.help = help_text
        self.labels = tuple(labels)
        # (sample name suffix, label string without braces, value)
        self.samples: list[tuple[str, str, float]] = []

    def add(self, values: Sequence[str] = (), value: float = 0.0) -> Family:
        if values:
            ls = ",".join([f'{k}="{escape_value(str(v))}"' for k, v in zip(self.labels, values, strict=True)])
        else:
            ls = ""
        self.samples.append(("", ls, value))
        return self

    def add_labels(self, labels: dict[str, str], value: float, suffix: str = "") -> Family:
        ls = ",".join(f'{k}="{escape_value(str(v))}"' for k, v in labels.items())
        self.samples.append((suffix, ls, value))
        return self

    def render(self, out: list[str]) -> None:
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {self.name} {help_text}\n# TYPE {self.name} {self.type}\n")
        name = self.name
        for suffix, ls, value in self.samples:
            if ls:
                out.append(f"{name}{suffix}{{{ls}}} {format_value(value)}\n")
            else:
                out.append(f"{name}{suffix} {format_value(value)}\n")


def render(families: Iterable[Family]) -> bytes:
    """The Prometheus text exposition (version 0.0.4) of ``families``."""
    out: list[str] = []
    for fam in families:
        if fam.samples:  # as client_golang: a family with no samples is not written at all
            fam.render(out)
    # File names are bytes on Linux; a non-UTF-8 one (surrogate-escaped by Python) must not
    # fail the scrape.
    return "".join(out).encode("utf-8", "backslashreplace")


def from_client(metric) -> Family:  # noqa: ANN001 - prometheus_client.Metric
    """Convert a prometheus_client ``Metric`` (as parsed or collected) to a Family."""
    mtype = metric.type
    name = metric.name
    if mtype == "counter":
        name = name + "_total" if not name.endswith("_total") else name
    elif mtype == "info":
        name, mtype = name + "_info", "gauge"
    elif mtype in ("unknown",):
        mtype = "untyped"
    elif mtype not in _TYPES:
        mtype = "untyped"
    fam = Family(name, mtype, metric.documentation or f"Metric {name}.")
    base = metric.name  # histogram/summary samples extend it with _bucket, _sum, _count
    for s in metric.samples:
        if s.name.endswith("_created"):
            continue
        if s.name == name:
            suffix = ""
        elif s.name.startswith(base):
            fam_name = base if mtype in ("histogram", "summary") else name
            suffix = s.name[len(fam_name):]
        else:
            suffix = ""
        fam.add_labels(dict(s.labels), s.value, suffix)
    return fam
