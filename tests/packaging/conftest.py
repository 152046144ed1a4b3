"""Build fleetmon's sdist and wheel once per session (``python -m build``, sdist then the wheel
from the sdist, as PyPA does) and install the wheel into a fresh virtualenv outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who never saw the checkout: no PYTHONPATH, no virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                         capture_output=True, text=True, timeout=300, env=clean_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels, sdists = list(out.glob("fleetmon-*.whl")), list(out.glob("fleetmon-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="session")
def installed(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel and its core dependencies only."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env())
    res = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(dists["wheel"])],
                         capture_output=True, text=True, timeout=300, env=clean_env(), cwd=venv)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return venv / "bin"
