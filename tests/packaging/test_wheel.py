"""The wheel works outside the checkout: every console script's main paths run from a temp dir
in a fresh virtualenv, reading the shipped data files (Prometheus templates, recording rules,
console templates, Grafana JSON) from the installed package."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

import requests
import yaml

from tests.harness.servers import ProcessExited, free_port, wait_until
from tests.packaging.conftest import REPO, clean_env

LINES = re.compile(r'^fleetmon_log_lines_total\{log="syslog"\} 1(\.0)?$', re.M)
SHIPPED = [
    "fleetmon/prometheus/shard.yml.tmpl", "fleetmon/prometheus/global.yml", "fleetmon/prometheus/alertmanager.yml",
    "fleetmon/prometheus/rules/recording.yml", "fleetmon/prometheus/rules/fleet.yml",
    "fleetmon/prometheus/consoles/index.html", "fleetmon/prometheus/console_libraries/fleetmon.lib",
    "fleetmon/grafana/dashboards/fleet-overview.json", "fleetmon/grafana/provisioning/datasources/fleetmon.yml",
]


def repo_packages() -> set[str]:
    """Every Python package of the components, as the wheel must carry it."""
    out = set()
    for top in ("fleetmon", "exporter", "discovery", "rulesync", "alert_router", "simulator"):
        for init in (REPO / top).rglob("__init__.py"):
            out.add(str(init.relative_to(REPO)))
    return out


def test_wheel_and_sdist_carry_code_and_data(dists):
    names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    missing = [n for n in [*SHIPPED, *sorted(repo_packages())] if n not in names]
    assert not missing, missing
    assert not [n for n in names if n.startswith(("tests/", "bench/", "prometheus/", "grafana/"))]
    # Every shipped file is the checkout's file, byte for byte (copied, not linked).
    with zipfile.ZipFile(dists["wheel"]) as z:
        for n in SHIPPED:
            assert z.read(n) == (REPO / n.split("/", 1)[1]).read_bytes(), n
    with tarfile.open(dists["sdist"]) as t:
        members = {m.name.partition("/")[2] for m in t.getmembers()}
        assert not [m for m in t.getmembers() if m.issym() or m.islnk()]
    assert {"setup.py", "setup.cfg", "prometheus/shard.yml.tmpl", "grafana/dashboards/host-detail.json"} <= members


def run(bin_dir: Path, cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=clean_env(), capture_output=True,
                         text=True, timeout=240)
    if ok:
        assert res.returncode == 0, f"{args}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
    return res


def test_core_install_is_outside_the_checkout_without_extras(installed, tmp_path):
    code = ("import json, exporter, fleetmon.resources as r, importlib.util as u; print(json.dumps("
            "[exporter.__file__, str(r.prometheus_file('shard.yml.tmpl')),"
            " [bool(u.find_spec(m)) for m in ('aiosmtpd', 'grafana_foundation_sdk', 'pytest')]]))")
    res = run(installed, tmp_path, "python", "-c", code)
    mod, tmpl, extras = json.loads(res.stdout)
    venv = installed.parent
    assert Path(mod).is_relative_to(venv) and Path(tmpl).is_relative_to(venv)
    assert extras == [False, False, False]  # [stack], [dashboards] and [test] stay out of the core


def test_rulesync_validate_compile_test_from_the_wheel(installed, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_bytes((REPO / "examples" / "rules.yaml").read_bytes())
    out = run(installed, tmp_path, "rulesync", "validate", "rules.yaml")
    assert out.stdout.startswith("ok: ") and "rule(s)" in out.stdout
    run(installed, tmp_path, "rulesync", "compile", "rules.yaml", "--out", "compiled")
    assert list((tmp_path / "compiled").glob("*.rules.yml")) and (tmp_path / "compiled" / "recipients.yaml").exists()
    # promtool unit tests, some of them against the shipped recording rules (package data).
    res = run(installed, tmp_path, "rulesync", "test", "rules.yaml", "--keep", "kept")
    assert res.stdout.startswith("ok: ") and " 0 failing" in res.stdout
    assert (tmp_path / "kept" / "recording-rules.yml").read_bytes() == \
        (REPO / "prometheus" / "rules" / "recording.yml").read_bytes()
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - alert: X\n    metric: no_such_signal\n")
    res = run(installed, tmp_path, "rulesync", "validate", "bad.yaml", ok=False)
    assert res.returncode != 0 and "bad.yaml" in res.stdout + res.stderr


def test_discovery_render_config_from_the_wheel(installed, tmp_path):
    res = run(installed, tmp_path, "fleet-discovery", "render-config", "--shard", "s1", "--replica", "a",
              "--targets-file", "targets.json", "--alertmanager", "127.0.0.1:9093")
    cfg = yaml.safe_load(res.stdout)
    assert cfg["global"]["external_labels"] == {"shard": "s1", "replica": "a"}
    (tmp_path / "prometheus.yml").write_text(res.stdout)
    check = subprocess.run(["promtool", "check", "config", "--syntax-only", "prometheus.yml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_exporter_check_config_and_scrape_from_the_wheel(installed, tmp_path):
    port = free_port()
    log = tmp_path / "syslog"
    log.write_text("Nov 30 09:00:00 h1 kernel: [1.0] oops\n")
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump({
        "listen": f"127.0.0.1:{port}", "logs": [{"path": str(log), "type": "syslog", "name": "syslog",
                                                  "start_at": "beginning"}],
        "tailing": {"state_file": str(tmp_path / "offsets.json")}}))
    run(installed, tmp_path, "fleet-exporter", "check-config", "--config", "exporter.yml")
    (tmp_path / "broken.yml").write_text("listen: [\n")
    res = run(installed, tmp_path, "fleet-exporter", "check-config", "--config", "broken.yml", ok=False)
    assert res.returncode != 0 and "broken.yml" in res.stdout + res.stderr
    with open(tmp_path / "exporter.log", "wb") as out:
        proc = subprocess.Popen([str(installed / "fleet-exporter"), "--config", "exporter.yml"], cwd=tmp_path,
                                env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        def scraped() -> str:
            if proc.poll() is not None:
                raise ProcessExited((tmp_path / "exporter.log").read_text())
            r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            return r.text if r.status_code == 200 and LINES.search(r.text) else ""
        body = wait_until(scraped, timeout=60, interval=0.3, what="a scrape of the installed exporter")
        assert "node_cpu_seconds_total" in body and "node_memory_MemAvailable_bytes" in body
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_alert_router_serves_from_the_wheel(installed, tmp_path):
    port = free_port()
    (tmp_path / "recipients.yaml").write_text(
        "recipients:\n  oncall: ['mailto://127.0.0.1:1?from=a@example.test&to=b@example.test&mode=insecure']\n")
    token = tmp_path / "token"
    token.write_text("t0ken-for-the-wheel-test\n")
    token.chmod(0o600)
    args = ["--listen", f"127.0.0.1:{port}", "--recipients", "recipients.yaml", "--token-file", "token",
            "--state-dir", "state"]
    with open(tmp_path / "router.log", "wb") as out:
        proc = subprocess.Popen([str(installed / "alert-router"), "serve", *args], cwd=tmp_path, env=clean_env(),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            if proc.poll() is not None:
                raise ProcessExited((tmp_path / "router.log").read_text())
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        wait_until(healthy, timeout=60, interval=0.3, what="/healthz of the installed alert-router")
        # The webhook refuses a request without the token: the real app, not a stub.
        assert requests.post(f"http://127.0.0.1:{port}/api/v1/alerts", json={}, timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
