"""Each harness fixture proven against the real server it starts."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import requests
from kazoo.client import KazooState
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from fleetmon.zk import make_client
from tests.harness import EXPOSITION, HttpServer, free_port, wait_until


def test_zookeeper_standalone_creates_znode(zk_client, zk_root):
    zk_client.create(f"{zk_root}/hello", b"world", makepath=True)
    data, stat = zk_client.get(f"{zk_root}/hello")
    assert data == b"world"
    assert stat.version == 0


def test_zookeeper_ensemble_survives_leader_loss(zk_ensemble):
    client = make_client(zk_ensemble.hosts, role="admin")
    client.start(timeout=20)
    try:
        client.create("/ens/a", b"1", makepath=True)
        leader = zk_ensemble.leader()
        leader.kill()
        # The two survivors elect a new leader and the data is still there.
        new_leader = zk_ensemble.leader()
        assert new_leader is not leader
        wait_until(lambda: client.state == KazooState.CONNECTED, timeout=30, what="kazoo reconnect")
        assert client.retry(client.get, "/ens/a")[0] == b"1"
        client.retry(client.set, "/ens/a", b"2")
        assert client.get("/ens/a")[0] == b"2"
    finally:
        client.stop()
        client.close()


def test_prometheus_scrapes_a_target_and_query_returns_its_value(prometheus_factory):
    registry = CollectorRegistry()
    Gauge("harness_probe_value", "A value the harness test exposes.", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prom = prometheus_factory({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "probe", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        })
        result = prom.wait_for_query("harness_probe_value", timeout=30)
        assert float(result[0]["value"][1]) == 42.0
        assert result[0]["metric"]["job"] == "probe"
        assert prom.reload().status_code == 200
        assert prom.targets()[0]["health"] == "up"
    finally:
        server.shutdown()


def test_alertmanager_accepts_an_alert_via_its_api(alertmanager_factory):
    am = alertmanager_factory({
        "route": {"receiver": "null"},
        "receivers": [{"name": "null"}],
    })
    am.post_alerts([{"labels": {"alertname": "HarnessProbe", "instance": "h1"},
                     "annotations": {"summary": "probe"}}])
    alerts = wait_until(lambda: am.alerts(), timeout=10, what="alert listed")
    assert alerts[0]["labels"]["alertname"] == "HarnessProbe"
    assert alerts[0]["status"]["state"] == "active"


def test_smtp_sink_records_messages(smtp_sink):
    msg = EmailMessage()
    msg["From"] = "a@example.test"
    msg["To"] = "b@example.test"
    msg["Subject"] = "harness probe"
    msg.set_content("hello from the harness")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as s:
        s.send_message(msg)
    got = smtp_sink.wait_for(lambda m: m["Subject"] == "harness probe", timeout=10)
    assert "hello from the harness" in smtp_sink.body(got[0])
    assert smtp_sink.envelopes[0]["to"] == ["b@example.test"]


def test_http_sink_records_posts(http_sink):
    r = requests.post(f"{http_sink.url}/topic", data=b"payload", timeout=5)
    assert r.status_code == 200
    req = http_sink.wait_for(timeout=5)[0]
    assert req["path"] == "/topic" and req["body"] == b"payload"


def test_http_server_answers_from_its_respond_and_records_only_when_asked():
    body = {"text": "a 1\n"}
    with HttpServer(respond=lambda req: (200, EXPOSITION, body["text"].encode())) as served:
        assert requests.get(f"{served.url}/metrics", timeout=5).text == "a 1\n"
        body["text"] = "a 2\n"  # the body is read per request: a test switches it
        r = requests.get(f"{served.url}/metrics", timeout=5)
        assert r.text == "a 2\n" and r.headers["Content-Type"] == EXPOSITION
        assert served.requests == []
    with HttpServer(record=True, respond=lambda req: (404, "text/plain", b"")) as served:
        assert requests.put(f"{served.url}/x", data=b"1", timeout=5).status_code == 404
        assert served.wait_for(lambda r: r["method"] == "PUT", timeout=5)[0]["body"] == b"1"
