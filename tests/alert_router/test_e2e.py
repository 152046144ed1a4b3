"""End to end with real parts: Alertmanager 0.25 -> `alert-router serve` -> Apprise -> aiosmtpd / HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.alert_router.conftest import TOKEN, load_payload
from tests.harness.servers import SmtpSink, free_port, wait_until


def _now(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def am_config(router, token_path) -> dict:
    return {
        "route": {"receiver": "router", "group_by": ["alertname", "notify"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "router", "webhook_configs": [{
            "url": f"{router.url}/api/v1/alerts", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_path)}},
        }]}],
    }


def alert(instance: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": "HighCPU", "instance": instance, "severity": "critical", "notify": "oncall",
                   "datacenter": "dc1", **labels},
        "annotations": {"summary": f"CPU above 80% on {instance}", "description": "5m average CPU is 93.2%",
                        "runbook_url": "https://runbooks.example.test/HighCPU",
                        "dashboard_url": "https://grafana.example.test/d/host?var-instance=" + instance},
        "startsAt": _now(-30),
        "generatorURL": "http://prometheus.example.test/graph?g0.expr=cpu",
    }


def test_alertmanager_to_email_and_push(router_factory, alertmanager_factory, smtp_sink, http_sink):
    router = router_factory({
        "oncall": [smtp_sink.mailto_url(to="oncall@example.test"),
                   f"ntfy://127.0.0.1:{http_sink.port}/fleet-oncall"],
        "default": [smtp_sink.mailto_url(to="ops@example.test")],
    })
    am = alertmanager_factory(am_config(router, router.workdir / "token"))
    am.post_alerts([alert("web-1:9100")])

    msg = smtp_sink.wait_for(lambda m: "web-1" in m["Subject"], timeout=30)[0]
    assert msg["Subject"].startswith("[FIRING:1] HighCPU on web-1:9100 (critical)")
    assert msg["To"] == "oncall@example.test"
    body = smtp_sink.body(msg)
    for text in ("== FIRING: CPU above 80% on web-1:9100 ==", "Description: 5m average CPU is 93.2%",
                 "datacenter=dc1", "Runbook:     https://runbooks.example.test/HighCPU",
                 "Dashboard:   https://grafana.example.test/d/host?var-instance=web-1:9100",
                 "Source:      http://prometheus.example.test/graph?g0.expr=cpu", f":{am.port}/#/silences/new?filter="):
        assert text in body, text
    push = json.loads(http_sink.wait_for(lambda r: True, timeout=30)[0]["body"])
    assert push["topic"] == "fleet-oncall" and push["title"].startswith("[FIRING:1] HighCPU on web-1:9100")

    # A second host joins the notified group: Alertmanager resends the whole group; only the
    # new alert is delivered (the first is listed as already notified).
    am.post_alerts([alert("web-1:9100"), alert("web-2:9100")])
    msg2 = smtp_sink.wait_for(lambda m: "web-2" in m["Subject"], timeout=30)[0]
    assert "Also in this group, already notified (1):" in smtp_sink.body(msg2)

    # Resolve the first one.
    resolved = alert("web-1:9100")
    resolved["endsAt"] = _now(-1)
    am.post_alerts([resolved, alert("web-2:9100")])
    msg3 = smtp_sink.wait_for(lambda m: m["Subject"].startswith("[RESOLVED:1]"), timeout=30)[0]
    assert "== RESOLVED: CPU above 80% on web-1:9100 ==" in smtp_sink.body(msg3)
    assert "Resolved:" in smtp_sink.body(msg3)

    wait_until(lambda: len(router.deliveries(status="delivered")) == 6, timeout=20, what="6 deliveries")
    # Every alert state once per URL: 3 emails, 3 pushes, no duplicate from the resends.
    assert len(smtp_sink.messages) == 3 and len(http_sink.requests) == 3
    assert router.metric("alert_router_duplicates_suppressed_total") >= 2
    assert router.metric("alert_router_alert_start_to_delivery_seconds_count", channel="email") == 2
    assert TOKEN not in router.log_path.read_text()


def test_sigkill_after_accept_then_delivered_exactly_once(router_factory):
    smtp_port = free_port()
    sink = SmtpSink(port=smtp_port)  # not started: the mail server is down when the router accepts
    router = router_factory({"default": [sink.mailto_url()]})
    payload = load_payload("am025_grouped_firing_25_alerts.json")
    r = router.post(payload)
    assert r.status_code == 200 and r.json()["stored"] == 25
    wait_until(lambda: router.metric("alert_router_delivery_attempts_failed_total") >= 1, timeout=20,
               what="a failed attempt")
    router.kill()  # SIGKILL: no chance to clean up
    with sink:
        router.start(timeout=30)
        msgs = sink.wait_for(lambda m: "DiskFull" in m["Subject"], timeout=30)
        wait_until(lambda: len(router.deliveries(status="delivered")) == 25, timeout=20, what="25 delivered")
        assert len(sink.messages) == 1 and msgs[0]["Subject"].startswith("[FIRING:25] DiskFull")
        assert all(d["attempts"] >= 2 for d in router.deliveries())
        # Alertmanager's retry of the same notification after the restart adds nothing.
        assert router.post(payload).json()["duplicates"] == 25
        assert router.metric("alert_router_queue_depth") == 0
        assert len(sink.messages) == 1


def test_smtp_down_then_back(router_factory):
    sink = SmtpSink(port=free_port())
    router = router_factory({"default": [sink.mailto_url()]})
    assert router.post(load_payload("am025_firing_single.json")).status_code == 200
    wait_until(lambda: router.metric("alert_router_deliveries_retried_total", channel="email") >= 3,
               timeout=30, what="three retries while SMTP is down")
    pending = router.deliveries(status="pending")
    assert len(pending) == 1 and pending[0]["last_error"].startswith("failure")
    with sink:
        sink.wait_for(lambda m: "HighCPULoad" in m["Subject"], timeout=30)
        wait_until(lambda: router.deliveries(status="delivered"), timeout=10, what="delivered")
    assert len(sink.messages) == 1
    assert router.metric("alert_router_deliveries_dead_lettered_total") == 0


def test_dead_letter_after_retry_period(router_factory):
    router = router_factory({"default": [f"json://127.0.0.1:{free_port()}/down"]},
                            retry={"initial_delay": "0.2s", "max_delay": "0.5s", "max_age": "2s"})
    assert router.post(load_payload("am025_firing_single.json")).status_code == 200
    wait_until(lambda: router.deliveries(status="dead"), timeout=20, what="dead letter")
    assert router.metric("alert_router_deliveries_dead_lettered_total", channel="push") == 1
    log = router.log_path.read_text()
    assert "DEAD LETTER: 1 alert state(s) [HighCPULoad]" in log
    assert "/down" not in log  # the URL is masked


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]]


def test_shipped_alertmanager_config(router_factory, alertmanager_factory, smtp_sink, tmp_path, router_pki):
    import subprocess

    import yaml

    from tests.alert_router.conftest import REPO

    shipped = REPO / "prometheus" / "alertmanager.yml"
    check = subprocess.run(["amtool", "check-config", str(shipped)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    cfg = yaml.safe_load(shipped.read_text())
    route = cfg["route"]
    # Every firing -> delivered path under a minute: a new group waits group_wait, an alert
    # joining a notified group (and every resolve) waits at most group_interval.
    assert _seconds(route["group_wait"]) <= 15 and _seconds(route["group_interval"]) <= 30
    hooks = cfg["receivers"][0]["webhook_configs"]
    assert len(hooks) >= 2  # router HA: every member posts to every router
    for hook in hooks:
        assert hook["send_resolved"] is True and hook["http_config"]["authorization"]["type"] == "Bearer"
        assert hook["url"].startswith("https://") and hook["url"].endswith(":9849/api/v1/alerts")
        assert hook["http_config"]["tls_config"]["ca_file"]  # the router's CA, not the system bundle

    # The same file, pointed at a test router over HTTPS, really delivers.
    router = router_factory({"default": [smtp_sink.mailto_url()]}, tls=True)
    for hook in cfg["receivers"][0]["webhook_configs"]:  # one per router (router HA): both to this one
        hook["url"] = f"{router.url}/api/v1/alerts"
        hook["http_config"]["authorization"]["credentials_file"] = str(router.workdir / "token")
        hook["http_config"]["tls_config"]["ca_file"] = str(router_pki["ca"].cert)
    am = alertmanager_factory(cfg)
    am.post_alerts([alert("db-7:9100", notify="")])  # started 30 s ago: no group_wait
    msg = smtp_sink.wait_for(lambda m: "db-7" in m["Subject"], timeout=30)[0]
    assert msg["Subject"].startswith("[FIRING:1] HighCPU on db-7:9100")


def test_ha_pair_both_sending_delivers_once(router_factory, alertmanager_factory, smtp_sink):
    router = router_factory({"oncall": [smtp_sink.mailto_url()]})
    # Two Alertmanagers that do not gossip: both notify, as an HA pair does when a peer's
    # notification log has not replicated yet.
    ams = [alertmanager_factory(am_config(router, router.workdir / "token")) for _ in range(2)]
    same = alert("db-3:9100")
    for am in ams:
        am.post_alerts([same])
    smtp_sink.wait_for(lambda m: "db-3" in m["Subject"], timeout=30)
    wait_until(lambda: router.metric("alert_router_webhook_requests_total", code="200") >= 2, timeout=30,
               what="both Alertmanagers notified")
    assert router.metric("alert_router_duplicates_suppressed_total") >= 1
    wait_until(lambda: router.deliveries(status="delivered"), timeout=10, what="delivered")
    assert len(router.deliveries()) == 1
    assert len(smtp_sink.messages) == 1


def test_router_down_when_alertmanager_notifies(router_factory, alertmanager_factory, smtp_sink):
    import requests

    router = router_factory({"oncall": [smtp_sink.mailto_url()]}, start=False)
    am = alertmanager_factory(am_config(router, router.workdir / "token"))
    am.post_alerts([alert("db-9:9100")])

    def am_failures() -> float:
        text = requests.get(f"{am.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("alertmanager_notification_requests_failed_total{") and "webhook" in line)

    wait_until(lambda: am_failures() >= 1, timeout=30, what="Alertmanager failing to reach the router")
    router.start(timeout=30)
    smtp_sink.wait_for(lambda m: "db-9" in m["Subject"], timeout=60)
    wait_until(lambda: router.deliveries(status="delivered"), timeout=10, what="delivered")
    assert len(smtp_sink.messages) == 1
