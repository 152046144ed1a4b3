"""`rulesync apply / status / diff` through ZooKeeper to two real Prometheus shards with agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fleetmon.zk import make_client
from rulesync import HEADER, bundle, publish
from rulesync.agent import RuleAgent
from rulesync.cli import main
from tests.harness.servers import free_port, wait_until
from tests.rulesync.conftest import RECORDING

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rules.yaml"


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def rule_names(prom) -> set[str]:
    return {r["name"] for g in prom.rules() for r in g["rules"]}


def loaded_version(prom) -> str | None:
    for g in prom.rules():
        for r in g["rules"]:
            if r["name"] == "fleetmon_rules_bundle_info":
                return r["labels"]["version"]
    return None


@pytest.fixture
def two_shards(rules_prometheus, zk_server, zk_root):
    """Two shards, each a real Prometheus + RuleAgent on its own kazoo session, registered
    the way the discovery sidecar registers them."""
    started = []
    for shard in ("a", "b"):
        prom, rules_dir = rules_prometheus(f"shard-{shard}")
        # Every shard loads fleetmon's recording rules (shard.yml.tmpl's shard-rules/).
        (rules_dir / "fleetmon-recording.rules.yml").write_text(RECORDING.read_text())
        assert prom.reload().status_code == 200
        client = make_client(zk_server.hosts, role="sidecar")
        client.start(timeout=15)
        client.create(f"{zk_root}/shards/{shard}/r0", json.dumps(
            {"shard": shard, "replica": "r0", "prometheus_url": prom.url}).encode(), ephemeral=True, makepath=True)
        agent = RuleAgent(client, zk_root, shard, "r0", rules_dir, prom.url, verify_timeout=20)
        agent.start()
        started.append((prom, rules_dir, client, agent))
    yield started
    for _, _, client, agent in started:
        agent.stop()
        client.stop()
        client.close()


def test_apply_to_two_shards_status_diff_and_rejected_bundle(two_shards, zk_server, zk_root, zk_client,
                                                            tmp_path: Path) -> None:
    zk = ["--zk", zk_server.hosts, "--root", zk_root]
    r = cli("apply", str(EXAMPLE), *zk, "--timeout", "60")
    assert r.exit_code == 0, r.output
    version = publish.published(zk_client, zk_root).version
    assert "a/r0: loaded" in r.output and "b/r0: loaded" in r.output and f"all 2 shard replica(s) on {version}" in r.output
    for prom, rules_dir, _, _ in two_shards:
        assert {"HighCpuUsage", "HostDown", "ManyRootLogins"} <= rule_names(prom)
        assert "instance:memory_usage:percent" in (rules_dir / "rules.rules.yml").read_text()
        assert loaded_version(prom) == version
        assert (rules_dir / "rules.rules.yml").read_text().startswith(HEADER)

    st = cli("status", *zk)
    assert st.exit_code == 0, st.output
    assert f"published: {version}" in st.output
    assert st.output.count(f"loaded {version}") == 2

    # diff: one rule changed, one removed, one added.
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["rules"] = [r for r in doc["rules"] if r["alert"] != "HostDown"]
    doc["rules"][0]["above"] = 85
    doc["rules"].append({"alert": "SwapHeavy", "metric": "swap_usage_percent", "above": 50, "notify": ["oncall"]})
    changed = tmp_path / "rules.yaml"
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    d = cli("diff", str(changed), *zk)
    assert d.exit_code == 0, d.output
    assert "+ SwapHeavy" in d.output and "~ HighCpuUsage" in d.output and "- HostDown" in d.output
    assert "~ MemoryPressure" not in d.output

    # A broken bundle (as if written by hand or by a buggy tool) is refused by every shard:
    # promtool's message comes back through ZooKeeper and the old rules stay loaded.
    bad = bundle.make({"rules.rules.yml": f"{HEADER}\ngroups:\n- name: x\n  rules:\n  - alert: Broken\n"
                                          f"    expr: rate(up[5m]\n"})
    publish.publish(zk_client, zk_root, bad)
    res = publish.wait_for(zk_client, zk_root, bad.version, timeout=30)
    assert not res.ok and sorted(res.failed) == ["a/r0", "b/r0"]
    for err in res.failed.values():
        assert "rejected by promtool" in err and "unclosed left parenthesis" in err
    for prom, _, _, _ in two_shards:
        assert loaded_version(prom) == version and "HighCpuUsage" in rule_names(prom)
        assert "Broken" not in rule_names(prom)
    st = cli("status", *zk)
    assert st.exit_code == 1 and "unclosed left parenthesis" in st.output and st.output.count("BEHIND") == 2

    # A corrupt znode is reported, not crashed on.
    zk_client.set(f"{zk_root}/rules/bundle", b"garbage")
    def status_error(shard: str) -> str:
        return json.loads(zk_client.get(f"{zk_root}/rules/status/{shard}/r0")[0]).get("error") or ""

    wait_until(lambda: all("bad bundle" in status_error(s) for s in "ab"), timeout=20,
               what="agents to report the corrupt bundle")

    # The fixed rules go through; apply waits for both again.
    r = cli("apply", str(changed), *zk, "--timeout", "60")
    assert r.exit_code == 0, r.output
    for prom, _, _, _ in two_shards:
        names = rule_names(prom)
        assert "SwapHeavy" in names and "HostDown" not in names


def test_apply_is_compare_and_set(zk_server, zk_root, zk_client, tmp_path: Path) -> None:
    """Two people applying at once: the one whose comparison is stale gets an error, exit 1,
    and the other's bundle stays published (no live shards here, so apply returns at once)."""
    zk = ["--zk", zk_server.hosts, "--root", zk_root]
    doc = yaml.safe_load(EXAMPLE.read_text())
    mine, theirs = tmp_path / "mine.yaml", tmp_path / "theirs.yaml"
    mine.write_text(yaml.safe_dump(doc, sort_keys=False))
    doc["rules"][0]["above"] = 95
    theirs.write_text(yaml.safe_dump(doc, sort_keys=False))

    d = cli("diff", str(mine), *zk)
    assert d.exit_code == 0 and "znode version -1" in d.output, d.output
    first = cli("apply", str(theirs), *zk, "--expect-znode-version", "-1")
    assert first.exit_code == 0, first.output
    theirs_version = publish.published(zk_client, zk_root).version
    # I reviewed the diff against "nothing published": my apply must not overwrite theirs.
    late = cli("apply", str(mine), *zk, "--expect-znode-version", "-1")
    assert late.exit_code == 1
    assert "NOT published" in late.output and "someone else applied in between" in late.output
    assert theirs_version in late.output
    assert publish.published(zk_client, zk_root).version == theirs_version

    d = cli("diff", str(mine), *zk)
    assert "znode version 0" in d.output and "~ HighCpuUsage" in d.output, d.output
    ok = cli("apply", str(mine), *zk, "--expect-znode-version", "0")
    assert ok.exit_code == 0, ok.output
    assert publish.published(zk_client, zk_root).version != theirs_version
    # Without the option apply compares with what it reads itself, just before publishing.
    again = cli("apply", str(theirs), *zk)
    assert again.exit_code == 0 and "replacing" in again.output and "(znode version 1)" in again.output

    # The race itself, on two real sessions: both read version N, both publish with it.
    other = make_client(zk_server.hosts, role="publisher")
    other.start(timeout=15)
    try:
        _, n1 = publish.published_with_version(zk_client, zk_root)
        _, n2 = publish.published_with_version(other, zk_root)
        assert n1 == n2 == 2
        b1 = bundle.make({"one.rules.yml": f"{HEADER}\ngroups: []\n"})
        b2 = bundle.make({"two.rules.yml": f"{HEADER}\ngroups: []\n"})
        assert publish.publish(zk_client, zk_root, b1, expected_version=n1) == 3
        with pytest.raises(publish.PublishConflict, match="znode version 2.*bundle " + b1.version):
            publish.publish(other, zk_root, b2, expected_version=n2)
    finally:
        other.stop()
        other.close()
    assert publish.published(zk_client, zk_root).version == b1.version


def test_apply_refuses_before_publishing_to_a_shard_without_recording_rules(
        rules_prometheus, zk_server, zk_root, zk_client) -> None:
    prom, _ = rules_prometheus("bare")  # no recording.yml: the example's memory rule would be silent
    zk_client.create(f"{zk_root}/shards/bare/r0", json.dumps(
        {"shard": "bare", "replica": "r0", "prometheus_url": prom.url}).encode(), ephemeral=True, makepath=True)
    zk = ["--zk", zk_server.hosts, "--root", zk_root]
    r = cli("apply", str(EXAMPLE), *zk, "--timeout", "1")
    assert r.exit_code == 1
    assert "NOT published" in r.output and "bare/r0" in r.output
    assert "does not load the recording rule(s) instance:memory_usage:percent" in r.output
    assert not zk_client.exists(publish.bundle_path(zk_root))
    # Compiled without reuse it is published (and, with no agent here, times out waiting).
    r = cli("apply", str(EXAMPLE), *zk, "--timeout", "1", "--no-recorded")
    assert r.exit_code == 1 and "timed out after 1s" in r.output and "bare/r0" in r.output
    assert "instance:memory_usage:percent" not in publish.published(zk_client, zk_root).files["rules.rules.yml"]


def test_apply_times_out_naming_the_silent_shard(zk_server, zk_root, zk_client) -> None:
    # A live shard replica with no agent never reports.
    zk_client.create(f"{zk_root}/shards/c/r9", b"{}", ephemeral=True, makepath=True)
    r = cli("apply", str(EXAMPLE), "--zk", zk_server.hosts, "--root", zk_root, "--timeout", "1")
    assert r.exit_code == 1
    assert "timed out after 1s" in r.output and "c/r9" in r.output


def test_apply_without_zookeeper_fails_cleanly() -> None:
    r = cli("apply", str(EXAMPLE), "--zk", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert r.exit_code == 1 and "cannot connect to ZooKeeper" in r.output


def test_discovery_sidecar_runs_the_agent(rules_prometheus, zk_server, zk_root, zk_client, tmp_path: Path) -> None:
    """`fleet-discovery run --rules-dir --prometheus-url` (a subprocess) loads the published rules."""
    prom, rules_dir = rules_prometheus("sidecar")
    (rules_dir / "fleetmon-recording.rules.yml").write_text(RECORDING.read_text())
    assert prom.reload().status_code == 200
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from discovery.cli import main; main()", "run", "--zk", zk_server.hosts,
         "--root", zk_root, "--shard", "s1", "--replica", "r1", "--output", str(tmp_path / "targets.json"),
         "--listen", "", "--prometheus-url", prom.url, "--rules-dir", str(rules_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: zk_client.exists(f"{zk_root}/shards/s1/r1"), timeout=30, what="sidecar to register")
        r = cli("apply", str(EXAMPLE), "--zk", zk_server.hosts, "--root", zk_root, "--timeout", "60")
        assert r.exit_code == 0, r.output
        assert "s1/r1: loaded" in r.output
        assert "HighCpuUsage" in rule_names(prom)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
