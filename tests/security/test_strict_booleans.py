"""Every boolean in every config file is `true` or `false`; anything else is an error naming
the key. The bug this guards: `allow_unauthenticated: "false"` turned authentication off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alert_router.config import ConfigError as RouterConfigError
from alert_router.config import load_config
from exporter.config import ConfigError as ExporterConfigError
from exporter.config import parse_config
from rulesync.pipeline import compile_paths
from tests.alert_router.conftest import write_router_files

REPO = Path(__file__).resolve().parents[2]
NOT_BOOLEANS = ['"false"', "'true'", "yes", "no", "on", "off", "1", "0", "False", "TRUE", "y", "~"]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_router_allow_unauthenticated_only_true_or_false(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "router.yml"
    conf.write_text(f"listen: 127.0.0.1:9849\nallow_unauthenticated: {value}\n")
    with pytest.raises(RouterConfigError) as exc:
        load_config(conf)
    assert str(exc.value).startswith(f"{conf}:2: allow_unauthenticated: must be true or false"), exc.value


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False)])
def test_router_real_booleans(tmp_path: Path, value: str, expected: bool) -> None:
    conf = tmp_path / "router.yml"
    conf.write_text(f"allow_unauthenticated: {value}\n")
    assert load_config(conf).allow_unauthenticated is expected


def test_router_quoted_false_keeps_serve_from_starting(tmp_path: Path) -> None:
    """The reported bug end to end: the process refuses the config instead of serving unauthenticated."""
    cfg = write_router_files(tmp_path, {"default": ["json://127.0.0.1:9/x"]})
    del cfg["token_file"]
    conf = tmp_path / "router.yml"
    conf.write_text(yaml.safe_dump(cfg) + 'allow_unauthenticated: "false"\n')
    p = subprocess.run([sys.executable, "-m", "alert_router.cli", "serve", "--config", str(conf)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "allow_unauthenticated: must be true or false" in p.stderr


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_exporter_collector_flags(value: str) -> None:
    with pytest.raises(ExporterConfigError) as exc:
        parse_config(f"collectors:\n  cpu:\n    enabled: {value}\n", "exporter.yml")
    assert "exporter.yml:3: collectors.cpu.enabled: must be true or false" in str(exc.value)
    if value == "~":
        return  # `cpu: ~` means "default options", which is fine
    with pytest.raises(ExporterConfigError) as exc:
        parse_config(f"collectors:\n  cpu: {value}\n", "exporter.yml")
    assert "exporter.yml:2: collectors.cpu:" in str(exc.value)


def test_exporter_real_booleans() -> None:
    cfg = parse_config("collectors:\n  cpu: false\n  meminfo:\n    enabled: true\n", "exporter.yml")
    assert cfg.collectors["cpu"] == {"enabled": False} and cfg.collectors["meminfo"] == {"enabled": True}


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_rulesync_use_recorded(tmp_path: Path, value: str) -> None:
    src = tmp_path / "rules.yaml"
    src.write_text(f"version: 1\nuse_recorded: {value}\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n"
                   f"    above: 80\n    notify: [g]\nrecipients:\n  g: [mailto://g@example.test]\n")
    spec, _files, problems = compile_paths([src])
    assert spec is None
    assert any(p.line == 2 and p.field == "use_recorded" and "must be true or false" in p.message
               for p in problems), [str(p) for p in problems]
