"""The committed Grafana JSON and provisioning are exactly what `make dashboards` builds, and
are shaped as Grafana 10/11 loads them from /etc/grafana/provisioning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory) -> Path:
    """`python -m grafana.build` (what `make dashboards` runs) into a temp dir."""
    out = tmp_path_factory.mktemp("grafana-build")
    r = subprocess.run([sys.executable, "-m", "grafana.build", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def generated_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for sub in ("dashboards", "provisioning")
            for p in (root / sub).rglob("*") if p.is_file()}


def test_committed_files_are_not_stale(fresh_build: Path):
    built = generated_files(fresh_build)
    assert built == generated_files(GRAFANA), "generated file set differs: run `make dashboards`"
    stale = [rel for rel in sorted(built) if (fresh_build / rel).read_bytes() != (GRAFANA / rel).read_bytes()]
    assert not stale, f"stale generated files (run `make dashboards` and commit): {stale}"


def test_a_second_build_changes_nothing(fresh_build: Path):
    r = subprocess.run([sys.executable, "-m", "grafana.build", "--out", str(fresh_build)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_bad_shard_flag_is_a_usage_error(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "grafana.build", "--out", str(tmp_path), "--shard", "s0"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "NAME=http(s)://HOST:PORT" in r.stderr
    assert not (tmp_path / "dashboards").exists()


def test_custom_data_sources(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "grafana.build", "--out", str(tmp_path),
                        "--global-url", "http://global:9090", "--shard", "eu-1=http://eu1:9090"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((tmp_path / "provisioning/datasources/fleetmon.yml").read_text())
    assert [(d["uid"], d["url"]) for d in doc["datasources"]] == [
        ("fleetmon-global", "http://global:9090"), ("fleetmon-shard-eu-1", "http://eu1:9090")]


def test_datasource_provisioning_shape():
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/fleetmon.yml").read_text())
    assert doc["apiVersion"] == 1
    ds = doc["datasources"]
    assert sum(d["isDefault"] for d in ds) == 1
    assert len({d["uid"] for d in ds}) == len({d["name"] for d in ds}) == len(ds)
    for d in ds:
        assert d["type"] == "prometheus" and d["access"] == "proxy" and d["url"].startswith("http")
        assert d["jsonData"]["timeInterval"] == "15s"
    # The dashboards' default data source is the provisioned global one.
    default = next(d for d in ds if d["isDefault"])
    for path in (GRAFANA / "dashboards").glob("*.json"):
        var = next(v for v in json.loads(path.read_text())["templating"]["list"] if v["name"] == "datasource")
        assert var["type"] == "datasource" and var["query"] == "prometheus"
        assert var["current"]["value"] == default["uid"] and var["current"]["text"] == default["name"]


def test_dashboard_provider_shape():
    doc = yaml.safe_load((GRAFANA / "provisioning/dashboards/fleetmon.yml").read_text())
    assert doc["apiVersion"] == 1
    (p,) = doc["providers"]
    assert p["type"] == "file" and p["options"]["path"].startswith("/")


@pytest.mark.parametrize("name", ["fleet-overview.json", "host-detail.json", "fleetmon.json"])
def test_dashboard_json_shape(name: str):
    d = json.loads((GRAFANA / "dashboards" / name).read_text())
    assert d["uid"].startswith("fleetmon-") and len(d["uid"]) <= 40
    assert d["title"] and isinstance(d["schemaVersion"], int)
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps another panel"
                cells.add((x, y))
        if p["type"] != "row":
            assert p.get("targets"), f"{p['title']!r} has no query"


def test_host_dashboard_has_every_panel_the_issue_lists():
    d = json.loads((GRAFANA / "dashboards" / "host-detail.json").read_text())
    titles = " | ".join(p["title"].lower() for p in d["panels"])
    for word in ("cpu by mode", "memory", "swap", "filesystem usage", "disk i/o", "network", "load",
                 "syslog messages by severity", "http requests by status", "5xx ratio", "latency quantiles",
                 "web server error log", "scraped by"):
        assert word in titles, word
    assert any(v["name"] == "host" for v in d["templating"]["list"])


def test_data_links_point_at_shipped_dashboards():
    dashboards = [json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")]
    uids = {d["uid"] for d in dashboards}
    links = [link["url"] for d in dashboards for p in d["panels"]
             for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])]
    assert links, "the top-N panels link to the host dashboard"
    for url in links:
        uid = url.split("/d/", 1)[1].split("/", 1)[0]
        assert uid in uids, url
        assert "var-host=${__field.labels.instance}" in url
