"""Fixtures for rulesync tests: a real Prometheus that loads rules from a directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TESTDATA = Path(__file__).parent / "testdata"
RECORDING = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "recording.yml"


@pytest.fixture
def rules_prometheus(prometheus_factory, tmp_path: Path) -> Callable:
    """``rules_prometheus(name, scrape_configs=None)`` -> (PrometheusServer, rules_dir).

    Evaluates rules every second and loads ``rules_dir/*.rules.yml``.
    """

    def make(name: str = "prom", scrape_configs: list[dict] | None = None):
        rules_dir = tmp_path / f"{name}-rules"
        rules_dir.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_dir / "*.rules.yml")],
            "scrape_configs": scrape_configs or [],
        }
        prom = prometheus_factory(config, name=name, workdir=tmp_path / name)
        return prom, rules_dir

    return make
