"""`rulesync apply --rules-dir --prometheus` and the agent's sync() against a real Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from rulesync import HEADER
from rulesync.agent import loaded_version_on_disk, sync
from rulesync.cli import main
from tests.harness.servers import free_port, wait_until

HOSTILE = 'idle-1"} or vector(1) or up{x="'

RULES = {
    "version": 1,
    "scrape_interval": "1s",
    "recipients": {"oncall": ["mailto://oncall@example.test"]},
    "rules": [
        {"alert": "HostDown", "metric": "host_down", "hosts": {"role": "web"}, "severity": "critical",
         "notify": ["oncall"], "labels": {"team": "db {{ $labels.instance }}"},
         "summary": 'Down {{ $labels.instance }} {{ printf "%s" "pwned" }}'},
        {"alert": "HostDownLiteral", "metric": "host_down", "hosts": {"role": ["db.*", "none"]},
         "notify": ["oncall"]},
        {"alert": "InjectedInstance", "metric": "host_down", "hosts": {"instance": HOSTILE}, "notify": ["oncall"]},
        {"alert": "InjectedRole", "metric": "host_down", "hosts": {"role": ["web\"} or vector(1) or up{x=\"", "x"]},
         "notify": ["oncall"]},
    ],
}


@pytest.fixture
def idle_exporter():
    """A real exporter (prometheus_client) that is up and idle."""
    reg = CollectorRegistry()
    Gauge("idle_gauge", "An idle host's only metric.", registry=reg).set(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=reg)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def _firing(prom) -> list[dict]:
    return [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]


def _apply(src: Path, rules_dir: Path, url: str):
    return CliRunner().invoke(main, ["apply", str(src), "--rules-dir", str(rules_dir), "--prometheus", url,
                                     "--timeout", "20", "--recipients-out", str(src.parent / "recipients.yaml")],
                              catch_exceptions=False)


def test_local_apply_loads_rules_escapes_input_and_keeps_old_rules_on_rejection(
        rules_prometheus, idle_exporter, tmp_path: Path) -> None:
    scrape = [{"job_name": "fleet", "scrape_interval": "1s", "static_configs": [
        {"targets": [idle_exporter], "labels": {"instance": "idle-1", "role": "web", "datacenter": "dc1",
                                               "env": "test"}},
        {"targets": [f"127.0.0.1:{free_port()}"], "labels": {"instance": "dead-1", "role": "web",
                                                             "datacenter": "dc1", "env": "test"}},
        # Regex metacharacters in a "one of" list are literal: "db.*" must not match "dbX".
        {"targets": [f"127.0.0.1:{free_port()}"], "labels": {"instance": "dead-2", "role": "db.*"}},
        {"targets": [f"127.0.0.1:{free_port()}"], "labels": {"instance": "dead-3", "role": "dbX"}},
    ]}]
    prom, rules_dir = rules_prometheus("local", scrape)
    # Every target scraped once before the rules arrive, so one evaluation sees them all.
    prom.wait_for_query('count(up{job="fleet"})', lambda res: res and res[0]["value"][1] == "4", timeout=30)
    src = tmp_path / "rules.yaml"
    src.write_text(yaml.safe_dump(RULES, sort_keys=False))

    r = _apply(src, rules_dir, prom.url)
    assert r.exit_code == 0, r.output
    version = loaded_version_on_disk(rules_dir)
    assert yaml.safe_load((tmp_path / "recipients.yaml").read_text()) == {
        "recipients": {"oncall": ["mailto://oncall@example.test"]}}
    assert version and f"version {version} loaded" in r.output
    names = {rule["name"] for g in prom.rules() for rule in g["rules"]}
    assert {"HostDown", "InjectedInstance", "InjectedRole", "fleetmon_rules_bundle_info"} <= names

    # The dead host fires; the same evaluation of the same group leaves the idle host silent.
    alerts = wait_until(lambda: [a for a in _firing(prom) if a["labels"]["alertname"] == "HostDown"],
                        timeout=30, what="HostDown to fire")
    assert [a["labels"]["instance"] for a in alerts] == ["dead-1"]
    a = alerts[0]
    assert a["labels"]["notify"] == "oncall" and a["labels"]["rule_id"] == "HostDown"
    assert a["labels"]["datacenter"] == "dc1" and a["labels"]["severity"] == "critical"
    # Documented placeholder expanded, user template text shown literally (not executed).
    assert a["annotations"]["summary"] == 'Down dead-1 {{ printf "%s" "pwned" }}'
    assert a["labels"]["team"] == "db {{ $labels.instance }}"  # labels never expand
    assert not [a for a in _firing(prom) if a["labels"]["alertname"].startswith("Injected")]
    literal = [a["labels"]["instance"] for a in _firing(prom) if a["labels"]["alertname"] == "HostDownLiteral"]
    assert literal == ["dead-2"]
    # The generated expression selects nothing, while the value pasted raw would fire for idle-1.
    expr = next(rule["query"] for g in prom.rules() for rule in g["rules"] if rule["name"] == "InjectedInstance")
    assert prom.query(expr) == []
    raw = prom.query(f'up{{instance="{HOSTILE}"}} == 0')
    assert raw, "control: the unescaped value changes the query and matches the idle host"

    # A bad bundle (it cannot come from `compile`) is stopped by promtool before the rules dir.
    before = {p.name: p.read_text() for p in rules_dir.iterdir()}
    bad = {"bad.rules.yml": f"{HEADER}\ngroups:\n- name: bad\n  rules:\n  - alert: Bad\n    expr: sum(up\n"}
    res = sync(rules_dir, bad, "badversion1", prom.url, timeout=10)
    assert not res.ok and res.loaded_version == version
    assert "rejected by promtool" in res.error and "unclosed left parenthesis" in res.error
    assert {p.name: p.read_text() for p in rules_dir.iterdir()} == before

    # Without the pre-check Prometheus itself rejects the reload: files restored, reason reported.
    res = sync(rules_dir, bad, "badversion2", prom.url, precheck=False, timeout=10)
    assert not res.ok and res.loaded_version == version
    assert "HTTP 500" in res.error and "unclosed left parenthesis" in res.error
    assert {p.name: p.read_text() for p in rules_dir.iterdir()} == before
    metrics = requests.get(f"{prom.url}/metrics", timeout=5).text
    assert "prometheus_config_last_reload_successful 1" in metrics
    names = {rule["name"] for g in prom.rules() for rule in g["rules"]}
    assert "Bad" not in names and "HostDown" in names
    assert any(rule.get("labels", {}).get("version") == version for g in prom.rules() for rule in g["rules"])

    # Removing a rule from the source removes it from Prometheus on the next apply.
    RULES2 = dict(RULES, rules=RULES["rules"][:1])
    src.write_text(yaml.safe_dump(RULES2, sort_keys=False))
    r = _apply(src, rules_dir, prom.url)
    assert r.exit_code == 0, r.output
    names = {rule["name"] for g in prom.rules() for rule in g["rules"]}
    assert "InjectedInstance" not in names and "HostDown" in names


def test_local_apply_usage_and_validation_errors(tmp_path: Path) -> None:
    src = tmp_path / "r.yaml"
    src.write_text("version: 1\nrules:\n  - alert: A\n    metric: cpu\n    above: 1\n")
    r = CliRunner().invoke(main, ["apply", str(src), "--rules-dir", str(tmp_path / "d")])
    assert r.exit_code == 2 and "needs both --rules-dir and --prometheus" in r.output
    r = CliRunner().invoke(main, ["apply", str(src), "--rules-dir", str(tmp_path / "d"),
                                  "--prometheus", "http://127.0.0.1:1"])
    assert r.exit_code == 1 and "unknown signal 'cpu'" in r.output
    assert not (tmp_path / "d").exists()
