"""The data files fleetmon ships (Prometheus templates and rules, console templates, Grafana JSON).

They live in the repo's top-level ``prometheus/`` and ``grafana/`` folders and are installed as
the packages ``fleetmon.prometheus`` and ``fleetmon.grafana`` (setup.py). Every command finds
them here through importlib.resources, so a wheel installed anywhere works the same as a
checkout, and an editable install reads the checkout's files directly.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

PROMETHEUS = "fleetmon.prometheus"
GRAFANA = "fleetmon.grafana"


def prometheus_file(*parts: str) -> Traversable:
    """A file or folder of ``prometheus/``, e.g. ``prometheus_file("rules", "recording.yml")``."""
    return importlib.resources.files(PROMETHEUS).joinpath(*parts)


def grafana_file(*parts: str) -> Traversable:
    """A file or folder of ``grafana/``, e.g. ``grafana_file("dashboards")``."""
    return importlib.resources.files(GRAFANA).joinpath(*parts)


def real_path(res: Traversable) -> Path:
    """A filesystem path for a resource another process must open (promtool, Prometheus).

    Wheels and editable installs are unpacked on disk, so this is the file itself; a zipped
    install is not supported (it would need a copy that outlives the process).
    """
    if isinstance(res, Path):
        return res
    with contextlib.suppress(TypeError, AttributeError):
        path = Path(str(res))
        if path.exists():
            return path
    raise FileNotFoundError(f"{res}: fleetmon's data files must be installed unpacked (not zipped)")
