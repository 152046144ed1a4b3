"""No panel ships that shows "No data": every panel query and every variable query of every
dashboard in grafana/dashboards/ returns data from the real, complete fleetmon pipeline of
conftest.py's ``fleet`` fixture (exporter with log traffic -> discovery sidecar -> shard
Prometheus with our rules -> fleet-discovery global -> global Prometheus, plus the alert
router and a rulesync bundle).

Queries run on the global Prometheus, the dashboards' default data source, with variables
replaced by values their own variable queries returned, and Grafana's
$__rate_interval/$__interval/$__range by what Grafana would use for the provisioned 15 s
scrape interval. A query passes when it returns at least one finite value.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest
import requests

from tests.dashboards.conftest import HOST, HOST_LABELS
from tests.harness.servers import PrometheusServer, wait_until

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                  "${__rate_interval}": "1m", "${__interval}": "15s", "${__range}": "1h"}
DATA_TIMEOUT = 60.0


# ----------------------------------------------------------------------------- dashboards

def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    for macro, v in GRAFANA_MACROS.items():
        expr = expr.replace(macro, v)
    for name, v in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", v).replace("$" + name, v)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unresolved variables {leftover} in {expr!r}"
    return expr


def label_values(prom: PrometheusServer, query: str) -> list[str]:
    """Grafana's Prometheus ``label_values(selector, label)`` / ``label_values(label)``."""
    m = re.fullmatch(r"\s*label_values\((?:(.+),\s*)?(\w+)\)\s*", query)
    assert m, f"unsupported variable query {query!r}"
    selector, label = m.groups()
    params = {"match[]": selector} if selector else {}
    r = requests.get(f"{prom.url}/api/v1/label/{label}/values", params=params, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


def finite_values(prom: PrometheusServer, expr: str, instant: bool) -> list[float]:
    if instant:
        data = prom.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [float(result[1])]
        values = [float(s["value"][1]) for s in result]
    else:
        end = time.time()
        data = prom.api("query_range", query=expr, start=end - 120, end=end, step=2)
        values = [float(v) for s in data["result"] for _, v in s["values"]]
    return [v for v in values if math.isfinite(v)]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_of_the_dashboard_returns_data(fleet, path: Path):
    prom = fleet["global"]
    dashboard = json.loads(path.read_text())
    deadline = time.monotonic() + DATA_TIMEOUT

    # Variables first, in order, each query using the values chosen before it.
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        q = substitute(q, values)
        found = wait_until(lambda q=q: label_values(prom, q), timeout=max(1.0, deadline - time.monotonic()),
                           interval=0.5, what=f"variable {var['name']}: {q}")
        preferred = {"host": HOST, "datacenter": HOST_LABELS["datacenter"], "role": HOST_LABELS["role"]}
        values[var["name"]] = preferred.get(var["name"]) if preferred.get(var["name"]) in found else found[0]

    failures = []
    checked = 0
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("hide") or not target.get("expr"):
                continue
            expr = substitute(target["expr"], values)
            instant = bool(target.get("instant")) and not target.get("range")

            def has_data(expr=expr, instant=instant):
                return finite_values(prom, expr, instant)
            try:
                wait_until(has_data, timeout=max(0.5, deadline - time.monotonic()), interval=0.5,
                           what=f"data for {expr}")
            except TimeoutError:
                failures.append(f"{panel['title']!r} [{target.get('refId')}]: {expr}")
            checked += 1
    assert checked >= 5, f"{path.name}: only {checked} queries found"
    assert not failures, f"{path.name}: panels with no data:\n" + "\n".join(failures)


def test_dashboards_exist_and_use_only_the_datasource_variable():
    assert {p.name for p in DASHBOARDS} == {"fleet-overview.json", "host-detail.json", "fleetmon.json"}
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for panel in all_panels(d):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            for t in panel.get("targets", []):
                assert t["datasource"]["uid"] == "${datasource}"


def test_federation_carries_the_shard_label_the_host_panel_shows(fleet):
    res = fleet["global"].query(f'max by (shard, replica) (instance:up:bool{{instance="{HOST}"}})')
    assert [(r["metric"]["shard"], r["metric"]["replica"]) for r in res] == [("s0", "a")]


def test_the_global_holds_a_fraction_of_each_hosts_raw_series(fleet):
    """Only recorded series cross: far fewer per host on the global than the raw ones."""
    federated = fleet["global"].query(f'count({{instance="{HOST}", shard="s0"}})')
    raw = fleet["shard"].query(f'count({{instance="{HOST}", job="fleet", __name__!~".+:.+"}})')
    n_fed, n_raw = float(federated[0]["value"][1]), float(raw[0]["value"][1])
    print(f"series per host: {n_raw:.0f} raw on the shard, {n_fed:.0f} federated to the global")
    assert 20 <= n_fed < n_raw / 2
