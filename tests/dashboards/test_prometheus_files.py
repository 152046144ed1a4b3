"""Every rule file and Prometheus config under prometheus/ passes promtool.

Rule files: ``promtool check rules``; the recording rules' unit tests: ``promtool test
rules``; every Prometheus config (the global one, and any other team's shard config or
template, rendered with sample values first): ``promtool check config``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "rules" / "tests").glob("*.yml"))

# Sample values for the placeholders config templates use (${VAR}, $VAR, {{ var }}).
SAMPLE_VALUES = {
    "shard": "shard-0", "replica": "a", "fleetmon_shard": "shard-0", "fleetmon_replica": "a",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def is_prometheus_config(path: Path) -> bool:
    """A Prometheus server config (not a rule file, an Alertmanager config or a fragment)."""
    try:
        doc = yaml.safe_load(render(path.read_text()))
    except yaml.YAMLError:
        return False
    return isinstance(doc, dict) and "scrape_configs" in doc


def render(text: str) -> str:
    def value(name: str) -> str:
        return SAMPLE_VALUES.get(name.strip().lower(), "sample")

    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}", lambda m: value(m.group(1)), text)
    return re.sub(r"\{\{\s*\.?([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}", lambda m: value(m.group(1)), text)


def config_files() -> list[Path]:
    found = []
    for path in sorted(PROM.rglob("*")):
        if not path.is_file() or "rules" in path.relative_to(PROM).parts:
            continue
        if path.suffix in (".yml", ".yaml") or path.name.endswith((".yml.tmpl", ".yml.j2", ".yaml.tmpl")):
            if is_prometheus_config(path):
                found.append(path)
    return found


def test_rule_files_exist():
    names = {p.name for p in RULE_FILES}
    assert {"recording.yml", "fleet.yml", "global-alerts.yml"} <= names
    assert RULE_TESTS, "the recording rules need promtool unit tests"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path):
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    # Prometheus 2.42 ignores a second YAML document silently: keep one per file.
    assert len(list(yaml.safe_load_all(path.read_text()))) == 1


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path):
    r = promtool("test", "rules", path.name, cwd=path.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_recording_rule_has_a_unit_test_or_an_aggregate_test():
    """Each recorded family of the host indicators that rulesync may reuse is unit-tested."""
    tested = "\n".join(p.read_text() for p in RULE_TESTS)
    for name in ("instance:cpu_usage:percent", "instance:memory_usage:percent", "instance:swap_usage:percent",
                 "instance_mountpoint:disk_usage:percent", "instance_mountpoint:inode_usage:percent",
                 "instance:load_per_core:ratio", "instance:http_requests:rate5m",
                 "instance:http_5xx:ratio_rate5m", "instance:syslog_errors:rate5m",
                 "instance:webserver_errors:rate5m", "instance:up:bool",
                 "datacenter_role:hosts_up:count", "datacenter_role:hosts_down:count"):
        assert f"expr: {name}" in tested, f"{name} has no promtool unit test"


def test_global_config_is_found():
    assert PROM / "global.yml" in config_files()


def render_with_owner(path: Path, out_dir: Path) -> str | None:
    """Render a template with the tool that owns it, as production does; None if none does."""
    if path.name == "shard.yml.tmpl":
        from tests.dashboards.procs import console_script, script_env

        r = subprocess.run([*console_script("fleet-discovery"), "render-config", "--shard", "shard-0",
                            "--replica", "a", "--targets-file", str(out_dir / "targets.json"),
                            "--rules-dir", str(out_dir / "rules"), "--alertmanager", "127.0.0.1:9093",
                            "--template", str(path)],
                           capture_output=True, text=True, timeout=60, env=script_env())
        assert r.returncode == 0, f"fleet-discovery render-config failed: {r.stderr}"
        return r.stdout
    return None


@pytest.mark.parametrize("path", config_files(), ids=lambda p: str(p.relative_to(PROM)))
def test_promtool_check_config(path: Path, tmp_path: Path):
    text = path.read_text()
    rendered = render_with_owner(path, tmp_path) or render(text)
    if rendered != text:
        # A template: check its rendering in a copy of prometheus/, so that the files it names
        # (rule files, file_sd) resolve as they would beside it.
        copy = tmp_path / "prometheus"
        shutil.copytree(PROM, copy)
        target = copy / path.relative_to(PROM)
        target.write_text(rendered)
        r = promtool("check", "config", str(target))
    else:
        r = promtool("check", "config", str(path))
    assert r.returncode == 0, f"{path}: {r.stdout}{r.stderr}"
