"""Built-in signals reading fleetmon's recorded series (prometheus/rules/recording.yml):
when it happens, when it falls back, the generated promtool tests, and a real Prometheus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from rulesync import promtool
from rulesync.cli import main
from rulesync.generate import _bare, recorded_for
from rulesync.pipeline import compile_paths
from rulesync.signals import SIGNALS
from rulesync.testgen import RECORDING_COPY, RecordingRulesError, run_tests
from tests.harness.servers import free_port, wait_until
from tests.rulesync.conftest import RECORDING

REC = "instance:memory_usage:percent"
RAW = "100 * (1 - node_memory_MemAvailable_bytes{SEL} / node_memory_MemTotal_bytes{SEL})"


def _spec_file(tmp_path: Path, rules: list[dict], **top) -> Path:
    src = tmp_path / "r.yaml"
    src.write_text(yaml.safe_dump({"version": 1, **top, "rules": rules,
                                   "recipients": {"ops": ["mailto://ops@example.test"]}}, sort_keys=False))
    return src


def _exprs(src: Path, **kw) -> dict[str, str]:
    spec, files, problems = compile_paths([src], **kw)
    assert spec is not None, [str(p) for p in problems]
    return {r["alert"]: r["expr"] for r in yaml.safe_load(files[src.stem + ".rules.yml"])["groups"][0]["rules"]}


def _mem(alert: str, **kw) -> dict:
    out = {"alert": alert, "metric": "memory_usage_percent", "window": "10m", "above": 90, "notify": ["ops"], **kw}
    return {k: v for k, v in out.items() if v is not None}


def test_reuse_only_where_exactly_equivalent(tmp_path: Path) -> None:
    src = _spec_file(tmp_path, [
        _mem("Avg", hosts={"role": "web", "datacenter": ["dc1", "dc2"]}),
        _mem("Max", aggregation="max"),
        _mem("MinBelow", aggregation="min", below=5, above=None),
        _mem("Last", aggregation="last"),
        _mem("CustomLabel", hosts={"team": "db"}),  # not a label the recorded series keeps
        _mem("ShortWindow", window="45s"),  # under 4 scrapes: a window could miss every point
        {"alert": "Swap", "metric": "swap_usage_percent", "window": "10m", "above": 50, "notify": ["ops"]},
        {"alert": "Disk", "metric": "disk_usage_percent", "window": "10m", "above": 50, "notify": ["ops"]},
        {"alert": "Load", "metric": "load_per_core", "window": "10m", "above": 2, "notify": ["ops"]},
        {"alert": "Cpu", "metric": "cpu_usage_percent", "window": "5m", "above": 80, "notify": ["ops"]},
    ])
    e = _exprs(src)
    assert e["Avg"] == f'avg_over_time({REC}{{datacenter=~"dc1|dc2",role="web"}}[10m]) > 90'
    assert e["Max"] == f"max_over_time({REC}[10m]) > 90"
    assert e["MinBelow"] == f"min_over_time({REC}[10m]) < 5"
    # Fallbacks: today's expression, unchanged.
    assert e["Last"] == RAW.replace("{SEL}", "") + " > 90"
    assert e["CustomLabel"] == "avg_over_time((" + RAW.replace("{SEL}", '{team="db"}') + ")[10m:15s]) > 90"
    assert e["ShortWindow"].startswith("avg_over_time((100 * (1 - node_memory_MemAvailable_bytes")
    # Swap and disk are recorded exactly as the alerts compute them (fleetmon.signals), load and
    # CPU through other intermediate series: only the former are read from the recording.
    assert e["Swap"] == "avg_over_time(instance:swap_usage:percent[10m]) > 50"
    assert e["Disk"] == "avg_over_time(instance_mountpoint:disk_usage:percent[10m]) > 50"
    for name in ("Load", "Cpu"):
        assert "instance:" not in e[name], e[name]

    # Off in the file, or on the command line (which wins over the file).
    off = _exprs(src, use_recorded=False)
    assert off["Avg"] == ("avg_over_time((" + RAW.replace("{SEL}", '{datacenter=~"dc1|dc2",role="web"}')
                          + ")[10m:15s]) > 90")
    assert not any(REC in x for x in off.values())
    src2 = tmp_path / "off.yaml"
    src2.write_text(src.read_text().replace("version: 1\n", "version: 1\nuse_recorded: false\n"))
    assert not any(REC in x for x in _exprs(src2).values())
    assert _exprs(src2, use_recorded=True)["Max"] == f"max_over_time({REC}[10m]) > 90"
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compile", str(src), "--out", str(out), "--no-recorded"])
    assert r.exit_code == 0, r.output
    assert REC not in (out / "r.rules.yml").read_text()

    bad = tmp_path / "bad.yaml"
    bad.write_text(src.read_text().replace("version: 1\n", "version: 1\nuse_recorded: 'yes'\n"))
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 1 and "bad.yaml:2: error: use_recorded: must be true or false" in r.output


def test_recorded_definitions_match_the_shipped_recording_rules() -> None:
    """Reuse is only exact while recording.yml records each series as the signal computes it."""
    doc = yaml.safe_load(RECORDING.read_text())
    found = {r["record"]: (g["name"], " ".join(r["expr"].split())) for g in doc["groups"] for r in g["rules"]
             if "record" in r}
    reused = [s for s in SIGNALS.values() if s.recorded]
    assert [s.name for s in reused] == ["memory_usage_percent", "swap_usage_percent", "disk_usage_percent",
                                        "inode_usage_percent"]
    for s in reused:
        assert s.recorded is not None
        assert found[s.recorded.record] == (s.recorded.group, s.recorded.expr)
        assert _bare(s.name) == s.recorded.expr


def test_generated_promtool_tests_prove_the_reused_form(tmp_path: Path) -> None:
    rules = []
    for agg in ("avg", "max", "min"):
        for window in ("1m", "2m", "10m"):
            rules.append(_mem(f"A_{agg}_{window}", aggregation=agg, window=window, hosts={"role": "web"},
                              **{"for": "2m"}))
            rules.append(_mem(f"B_{agg}_{window}", aggregation=agg, window=window, above=None, below=10))
    src = _spec_file(tmp_path, rules)
    spec, _, problems = compile_paths([src])
    assert spec is not None, [str(p) for p in problems]
    assert all(recorded_for(r, spec) for r in spec.rules)
    keep = tmp_path / "keep"
    rep = run_tests(spec, workdir=keep)
    assert rep.ok and rep.test_files == len(rules), rep.failures
    t0 = yaml.safe_load((keep / "test-00000.yml").read_text())
    assert t0["rule_files"] == [RECORDING_COPY, "rule-00000.yml"]
    assert t0["group_eval_order"][-1] == "test-A_avg_1m" and "fleetmon.host.system" in t0["group_eval_order"]
    assert (keep / RECORDING_COPY).read_text() == RECORDING.read_text()

    # Not vacuous: without the recording rules the same test fails (the alert never fires).
    t0["rule_files"] = ["rule-00000.yml"]
    t0["group_eval_order"] = ["test-A_avg_1m"]
    (keep / "test-00000.yml").write_text(yaml.safe_dump(t0))
    rc, out = promtool.run(["test", "rules", str(keep / "test-00000.yml")])
    assert rc != 0 and "FAILED" in out

    # A recording rules file that does not record the series as rulesync expects is refused.
    with pytest.raises(RecordingRulesError, match="no such file|No such file"):
        run_tests(spec, recording_rules=tmp_path / "missing.yml")
    changed = tmp_path / "changed.yml"
    changed.write_text(RECORDING.read_text().replace(
        "expr: 100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        "expr: 100 * (1 - node_memory_MemFree_bytes / node_memory_MemTotal_bytes)"))
    with pytest.raises(RecordingRulesError, match="record `instance:memory_usage:percent` as"):
        run_tests(spec, recording_rules=changed)
    r = CliRunner().invoke(main, ["test", str(src), "--recording-rules", str(changed)])
    assert r.exit_code == 1 and "not `100 * (1 - node_memory_MemAvailable_bytes" in r.output
    # --no-recorded needs no recording rules at all.
    r = CliRunner().invoke(main, ["test", str(src), "--no-recorded", "--recording-rules", str(changed)])
    assert r.exit_code == 0, r.output


@pytest.fixture
def memory_hosts():
    """Two real exporters (prometheus_client) reporting node_memory_*: one at 95 %, one at 50 %."""
    servers = []
    for avail in (0.05, 0.5):
        reg = CollectorRegistry()
        Gauge("node_memory_MemTotal_bytes", "Memory total.", registry=reg).set(8 * 2**30)
        Gauge("node_memory_MemAvailable_bytes", "Memory available.", registry=reg).set(avail * 8 * 2**30)
        port = free_port()
        server, _ = start_http_server(port, addr="127.0.0.1", registry=reg)
        servers.append((server, f"127.0.0.1:{port}"))
    yield [addr for _, addr in servers]
    for server, _ in servers:
        server.shutdown()
        server.server_close()


def test_real_prometheus_fires_the_reused_memory_alert(prometheus_factory, memory_hosts, tmp_path: Path) -> None:
    rules_dir, rec_dir = tmp_path / "rules", tmp_path / "recording"
    rules_dir.mkdir()
    rec_dir.mkdir()
    labels = {"datacenter": "dc1", "role": "web", "env": "test"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.rules.yml"), str(rec_dir / "*.yml")],
        "scrape_configs": [{"job_name": "fleet", "static_configs": [
            {"targets": [memory_hosts[0]], "labels": {"instance": "hot-1", **labels}},
            {"targets": [memory_hosts[1]], "labels": {"instance": "cool-1", **labels}}]}],
    }
    prom = prometheus_factory(config, name="recorded")
    src = _spec_file(tmp_path, [_mem("MemoryHigh", window="5s", above=80, hosts={"role": "web"},
                                     severity="critical")], scrape_interval="1s")

    def apply(*extra: str):
        return CliRunner().invoke(main, ["apply", str(src), "--rules-dir", str(rules_dir), "--prometheus", prom.url,
                                         "--timeout", "20", *extra], catch_exceptions=False)

    # A Prometheus without fleetmon's recording rules: refused, nothing written.
    r = apply()
    assert r.exit_code == 1, r.output
    assert "does not load the recording rule(s) instance:memory_usage:percent" in r.output
    assert "--no-recorded" in r.output and list(rules_dir.iterdir()) == []

    # With recording.yml loaded the same rules apply, read the recorded series, and fire for
    # the host over the threshold only.
    shutil.copy(RECORDING, rec_dir / "recording.yml")
    assert prom.reload().status_code == 200
    r = apply()
    assert r.exit_code == 0, r.output
    query = next(rule["query"] for g in prom.rules() for rule in g["rules"] if rule["name"] == "MemoryHigh")
    assert query == f'avg_over_time({REC}{{role="web"}}[5s]) > 80'
    alerts = wait_until(lambda: [a for a in prom.api("alerts")["alerts"]
                                 if a["labels"]["alertname"] == "MemoryHigh" and a["state"] == "firing"],
                        timeout=30, what="MemoryHigh to fire")
    assert [a["labels"]["instance"] for a in alerts] == ["hot-1"]
    assert alerts[0]["labels"]["rule_id"] == "MemoryHigh" and alerts[0]["labels"]["job"] == "fleet"
    assert abs(float(alerts[0]["value"]) - 95) < 0.01
    # The quiet host is evaluated (its recorded value is there, 50 %), just under the threshold.
    cool = prom.wait_for_query(f'avg_over_time({REC}{{instance="cool-1"}}[5s])', timeout=10)
    assert abs(float(cool[0]["value"][1]) - 50) < 0.01
    assert [x["metric"]["instance"] for x in prom.query(query)] == ["hot-1"]
    assert not [a for a in prom.api("alerts")["alerts"] if a["labels"]["instance"] == "cool-1"]

    # --no-recorded compiles the subquery form, which needs no recording rules.
    r = apply("--no-recorded")
    assert r.exit_code == 0, r.output
    query = next(rule["query"] for g in prom.rules() for rule in g["rules"] if rule["name"] == "MemoryHigh")
    assert REC not in query and "[5s:1s]" in query
