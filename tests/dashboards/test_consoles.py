"""The console pages (prometheus/consoles) served by the global Prometheus, in real headless
Chromium: they load without JavaScript errors or failed requests, every graph draws data,
the fleet and host pages link to each other and the range can be changed. `make screenshots` saves the screenshots docs/dashboards.md shows."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.dashboards.cdp import Chromium, Page
from tests.dashboards.conftest import HOST, HOST_LABELS
from tests.harness.servers import wait_until

REPO = Path(__file__).resolve().parents[2]
# Screenshots go to a temp dir, so a test run leaves the checkout clean; `make screenshots`
# points FLEETMON_SCREENSHOTS at docs/screenshots to refresh the ones docs/dashboards.md shows.
SCREENSHOTS_ENV = "FLEETMON_SCREENSHOTS"

# True once every graph of the page holds an SVG line with points, and none shows an error.
ALL_GRAPHS_DRAWN = """(() => {
  const graphs = [...document.querySelectorAll('.fleetmon-graph')];
  if (document.querySelectorAll('.prom_graph_error').length) return false;
  return graphs.length > 0 && graphs.every(g =>
    [...g.querySelectorAll('svg path')].some(p => /\\d+(\\.\\d+)?,\\d/.test(p.getAttribute('d') || '')));
})()"""
ERRORS_SHOWN = "[...document.querySelectorAll('.prom_graph_error')].map(e => e.textContent)"
# The test's data is minutes old: screenshots use a 30-second range so the lines are visible.
SHORT_RANGE = "#pctc" + urllib.parse.quote(json.dumps({"duration": 30, "endTime": 0}))


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get(SCREENSHOTS_ENV)
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium"))
    chromium.start(timeout=60)
    yield chromium
    chromium.stop()


@pytest.fixture
def page(browser):
    p = browser.new_page()
    yield p
    p.close()


def wait_for_data(fleet) -> None:
    """The newest recorded series the pages graph (rates, histograms) are on the global."""
    glob = fleet["global"]
    for expr in (f'instance:http_request_duration_seconds:p99_5m{{instance="{HOST}"}} >= 0',
                 'datacenter_role:http_5xx_ratio:p95 >= 0', "datacenter_role:syslog_errors_rate5m:max >= 0",
                 f'instance:disk_written_bytes:rate5m{{instance="{HOST}"}} >= 0'):
        glob.wait_for_query(expr, timeout=60)


def load_until_drawn(page: Page, url: str) -> None:
    def drawn() -> bool:
        page.navigate(url)
        return wait_until(lambda: page.eval(ALL_GRAPHS_DRAWN), timeout=8, what="graphs drawn") \
            if page.eval("document.querySelectorAll('.fleetmon-graph').length") else False
    try:
        wait_until(drawn, timeout=40, interval=1, what=f"every graph of {url} drawn")
    except TimeoutError:
        raise AssertionError(f"{url}: graphs not drawn; errors shown: {page.eval(ERRORS_SHOWN)}; "
                             f"browser errors: {page.errors}") from None


def browser_errors(page: Page) -> list[str]:
    # Chromium asks every site for /favicon.ico; the classic UI has none at the root.
    return [e for e in page.errors if "favicon.ico" not in e]


def test_fleet_page(fleet, page, shots):
    wait_for_data(fleet)
    url = f"{fleet['global'].url}/consoles/fleet.html"
    load_until_drawn(page, url)
    assert browser_errors(page) == []
    assert page.eval("document.querySelectorAll('.fleetmon-graph').length") >= 6
    # The busiest-hosts table links to the host page, keeping the selected range.
    hrefs = page.eval("[...document.querySelectorAll('a.fleetmon-host-link')].map(a => a.href)")
    assert any(h.split("#")[0].endswith(f"/consoles/host.html?instance={HOST}") for h in hrefs), hrefs
    up = page.eval("document.querySelector('#fleet-hosts-up').textContent")
    assert "1" in up
    load_until_drawn(page, url + SHORT_RANGE)
    page.screenshot(shots / "console-fleet.png")
    assert (shots / "console-fleet.png").stat().st_size > 20_000


def test_host_page_and_links_between_pages(fleet, page, shots):
    wait_for_data(fleet)
    glob = fleet["global"]
    url = f"{glob.url}/consoles/host.html?instance={HOST}"
    load_until_drawn(page, url)
    assert browser_errors(page) == []
    assert page.eval("document.querySelectorAll('.fleetmon-graph').length") >= 10
    assert page.eval("document.querySelector('#scraped-by').textContent").strip() == "s0/a"
    load_until_drawn(page, url + SHORT_RANGE)
    page.screenshot(shots / "console-host.png")
    assert (shots / "console-host.png").stat().st_size > 20_000

    # Pick a range: the URL hash carries it, the time control shows it, graphs redraw.
    page.eval("document.querySelector('a.fleetmon-range[data-seconds=\"21600\"]').click()")
    wait_until(lambda: page.eval("document.readyState") == "complete"
               and "pctc" in page.eval("window.location.hash"), timeout=20, what="range applied")
    wait_until(lambda: page.eval(ALL_GRAPHS_DRAWN), timeout=20, what="graphs redrawn over 6h")
    pctc = json.loads(urllib.parse.unquote(page.eval("window.location.hash"))[len("#pctc"):])
    assert pctc["duration"] == 21600
    assert page.eval("document.querySelector('#prom_graph_duration').value") == "6h"

    # The host page links back to its fleet group, carrying the range.
    href = page.eval("document.querySelector('#fleet-link').href")
    assert f"fleet.html?datacenter={HOST_LABELS['datacenter']}&role={HOST_LABELS['role']}" in href
    assert "#pctc" in href
    page.eval("document.querySelector('#fleet-link').click()")
    wait_until(lambda: "fleet.html" in page.eval("window.location.pathname")
               and page.eval("document.readyState") == "complete", timeout=20, what="fleet page")
    wait_until(lambda: page.eval(ALL_GRAPHS_DRAWN), timeout=20, what="fleet graphs drawn")
    assert page.eval("document.querySelector('#prom_graph_duration').value") == "6h"
    assert HOST_LABELS["datacenter"] in page.eval("document.querySelector('h1').textContent")
    assert browser_errors(page) == []


def test_console_index_links_both_pages(fleet):
    r = requests.get(f"{fleet['global'].url}/consoles/index.html", timeout=10)
    assert r.status_code == 200
    assert 'href="fleet.html"' in r.text and 'href="host.html"' in r.text


def test_host_list_and_hostile_parameters(fleet, page):
    glob = fleet["global"]
    page.navigate(f"{glob.url}/consoles/host.html")
    rows = page.eval("[...document.querySelectorAll('#host-list a.fleetmon-host-link')].map(a => a.textContent)")
    assert HOST in rows
    # A parameter cannot leave the PromQL string: quotes and braces are stripped.
    page.navigate(f"{glob.url}/consoles/host.html?instance=" + urllib.parse.quote(HOST + "'}) or vector(1) #"))
    assert page.eval("document.querySelector('h1').textContent").startswith("Host web-test-1")
    assert browser_errors(page) == []
