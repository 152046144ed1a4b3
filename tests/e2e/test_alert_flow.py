"""Threshold crossed in a simulated host's data -> Prometheus alert -> Alertmanager ->
alert-router -> email in a real SMTP server; and the resolved message after it."""

from __future__ import annotations

from tests.harness.servers import SmtpSink


def about(msg, alert: str, host: str, state: str) -> bool:
    body = SmtpSink.body(msg)
    return (f"== {state}:" in body and f"Alert:       {alert}" in body and f"Instance:    {host}" in body)


def test_cpu_over_threshold_emails_then_resolves(fleet):
    fleet.sim.post_event({"type": "cpu", "hosts": "web-0002", "at": 0, "duration": "30s", "value": 95})
    # The firing rule is the rulesync-compiled one, loaded through ZooKeeper by the sidecar.
    firing = fleet.smtp.wait_for(lambda m: about(m, "HighCpuUsage", "web-0002", "FIRING"), timeout=60)
    assert "HighCpuUsage" in firing[0]["Subject"] and "web-0002" in firing[0]["Subject"]
    assert firing[0]["To"] == "oncall@example.test"
    # Prometheus agrees on what fired, and on nothing else.
    alerts = fleet.prom.query('ALERTS{alertname="HighCpuUsage"}')
    assert {a["metric"]["instance"] for a in alerts} == {"web-0002"}
    assert alerts[0]["metric"]["role"] == "web" and alerts[0]["metric"]["rule_id"] == "HighCpuUsage"
    # The scenario ends after 30 s; the 20 s average falls back under 80% and the alert resolves.
    fleet.smtp.wait_for(lambda m: about(m, "HighCpuUsage", "web-0002", "RESOLVED"), timeout=60)
    assert not any(about(m, "HighCpuUsage", h, "FIRING") for m in fleet.smtp.messages
                   for h in ("web-0001", "web-0003", "db-0001"))


def test_dead_host_emails_host_down(fleet):
    fleet.sim.post_event({"type": "host_down", "hosts": "app-0001", "at": 0, "deregister_after": "never"})
    fleet.prom.wait_for_query('up{instance="app-0001"} == 0', timeout=20)
    msg = fleet.smtp.wait_for(lambda m: about(m, "HostDown", "app-0001", "FIRING"), timeout=40)[0]
    assert "app-0001" in msg["Subject"]
    assert "role=app" in SmtpSink.body(msg)
    # Only the dead host: the others are still scraped.
    assert {a["metric"]["instance"] for a in fleet.prom.query('ALERTS{alertname="HostDown"}')} == {"app-0001"}
