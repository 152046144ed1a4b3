"""The Flask app in-process (flask test client) with real delivery to a local HTTP receiver."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from alert_router import create_app
from alert_router.config import Config, ConfigError, from_dict
from alert_router.delivery import backoff_delay
from tests.alert_router.conftest import TOKEN, write_router_files
from tests.harness.servers import wait_until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def make_app(tmp_path: Path):
    apps = []

    def make(recipients: dict, **config):
        cfg = write_router_files(tmp_path / f"app{len(apps)}", recipients, **config)
        app = create_app(cfg)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["alert_router"].close()


def store_of(app):
    return app.extensions["alert_router"].store


def test_token_required_nothing_stored(make_app, http_sink, payloads):
    app = make_app({"default": [f"json://127.0.0.1:{http_sink.port}/hook"]})
    c = app.test_client()
    body = payloads["am025_firing_single"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
        r = c.post("/api/v1/alerts", json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.json["field"] == "Authorization"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert c.get("/api/v1/deliveries").status_code == 401
    assert store_of(app).count("notifications") == 0 and store_of(app).count() == 0
    assert http_sink.requests == []
    text = c.get("/metrics").text
    assert 'alert_router_webhook_requests_total{code="401"} 5.0' in text


def test_token_rotation_is_picked_up(make_app, payloads, caplog):
    app = make_app({"default": ["json://127.0.0.1:1/hook"]})
    state = app.extensions["alert_router"]
    c = app.test_client()
    token_file = Path(state.cfg.token_file)
    token_file.write_text("rotated-token-2\n")
    os.utime(token_file, ns=(10**18, 10**18))
    wait_until(lambda: state.token == "rotated-token-2", timeout=10, what="token reloaded")
    assert c.get("/api/v1/deliveries", headers=AUTH).status_code == 401
    assert c.get("/api/v1/deliveries", headers={"Authorization": "Bearer rotated-token-2"}).status_code == 200
    token_file.write_text("")  # a bad rotation keeps the previous token
    os.utime(token_file, ns=(2 * 10**18, 2 * 10**18))
    wait_until(lambda: "keeping the previous bearer token" in caplog.text, timeout=10, what="bad token noticed")
    assert state.token == "rotated-token-2"


def test_bad_requests_get_4xx_naming_the_field(make_app, payloads):
    app = make_app({"default": ["json://127.0.0.1:1/hook"]}, max_body_bytes=20000)
    c = app.test_client()
    r = c.post("/api/v1/alerts", data=json.dumps(payloads["am025_firing_single"]), headers=AUTH,
               content_type="text/plain")
    assert r.status_code == 415 and r.json["field"] == "Content-Type"
    r = c.post("/api/v1/alerts", data="{not json", headers=AUTH, content_type="application/json")
    assert r.status_code == 400 and r.json["field"] == "$" and "line 1 column 2" in r.json["error"]
    r = c.post("/api/v1/alerts", data=b"\xff\xfe", headers=AUTH, content_type="application/json")
    assert r.status_code == 400
    r = c.post("/api/v1/alerts", data="[" * 100000 + "]" * 100000, headers=AUTH, content_type="application/json")
    assert r.status_code == 413 and r.json["field"] == "body"
    r = c.post("/api/v1/alerts", data="[" * 5000 + "]" * 5000, headers=AUTH, content_type="application/json")
    assert r.status_code == 400
    bad = copy.deepcopy(payloads["am025_grouped_firing_25_alerts"])
    bad["alerts"][7]["labels"]["severity"] = ["critical"]
    r = c.post("/api/v1/alerts", json=bad, headers=AUTH)
    assert r.status_code == 400 and r.json["field"] == "alerts[7].labels.severity"
    assert c.get("/nope").status_code == 404 and c.get("/nope").json["status"] == "error"
    assert c.get("/api/v1/alerts", headers=AUTH).status_code == 405
    assert store_of(app).count("notifications") == 0


def test_accept_deliver_push_and_query_deliveries(make_app, http_sink, payloads):
    app = make_app({"default": [f"json://127.0.0.1:{http_sink.port}/hook"],
                    "oncall": [f"ntfy://127.0.0.1:{http_sink.port}/fleet-oncall"]})
    c = app.test_client()
    doc = copy.deepcopy(payloads["am025_firing_single"])
    doc["alerts"][0]["labels"]["notify"] = "oncall"
    r = c.post("/api/v1/alerts", json=doc, headers=AUTH)
    assert r.status_code == 200 and r.json["stored"] == 1
    r = c.post("/api/v1/alerts", json=payloads["am025_no_endsAt_no_generatorURL_default_route"], headers=AUTH)
    assert r.status_code == 200 and r.json["stored"] == 1
    ntfy = http_sink.wait_for(lambda q: q["path"] == "/", timeout=20)[0]
    body = json.loads(ntfy["body"])
    assert body["topic"] == "fleet-oncall"
    assert body["title"].startswith("[FIRING:1] HighCPULoad on db-1:9100 (critical)")
    assert "FIRING: HighCPULoad on db-1:9100" in body["message"]
    assert "Runbook: https://runbooks.example.internal/HighCPULoad" in body["message"]
    hook = json.loads(http_sink.wait_for(lambda q: q["path"] == "/hook", timeout=20)[0]["body"])
    assert hook["title"].startswith("[FIRING:1] ResolveTimeoutDefault") and hook["type"] == "failure"
    wait_until(lambda: len(c.get("/api/v1/deliveries?status=delivered", headers=AUTH).json["deliveries"]) == 2,
               timeout=10, what="deliveries recorded")
    d = c.get("/api/v1/deliveries?alert=HighCPULoad", headers=AUTH).json["deliveries"]
    assert len(d) == 1 and d[0]["recipient"] == "oncall" and d[0]["channel"] == "push"
    assert d[0]["url"].startswith("ntfy://") and "fleet-oncall" not in d[0]["url"]  # masked
    assert c.get("/api/v1/deliveries?recipient=default", headers=AUTH).json["count"] == 1
    assert c.get("/api/v1/deliveries?status=dead", headers=AUTH).json["count"] == 0
    assert c.get("/api/v1/deliveries?status=bogus", headers=AUTH).json["field"] == "status"
    # Resending the group (Alertmanager does on every flush) delivers nothing again.
    r = c.post("/api/v1/alerts", json=doc, headers=AUTH)
    assert r.json == {**r.json, "stored": 0, "duplicates": 1}
    assert c.get("/healthz").json == {"status": "ok"}
    assert c.get("/readyz").status_code == 200
    metrics = c.get("/metrics").text
    for line in ('alert_router_deliveries_delivered_total{channel="push"} 2.0',
                 "alert_router_duplicates_suppressed_total 1.0",
                 'alert_router_queue_depth{channel="push"} 0.0',
                 'alert_router_receipt_to_delivery_seconds_count{channel="push"} 2.0',
                 'alert_router_alert_start_to_delivery_seconds_count{channel="push"} 2.0'):
        assert line in metrics, line


def test_metrics_pass_promtool(make_app, http_sink, payloads, tmp_path):
    import subprocess

    app = make_app({"default": [f"json://127.0.0.1:{http_sink.port}/hook"]})
    c = app.test_client()
    assert c.post("/api/v1/alerts", json=payloads["am025_grouped_mixed_10_resolved_15_firing"],
                  headers=AUTH).status_code == 200
    http_sink.wait_for(timeout=20)
    text = c.get("/metrics").text
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'alert_router_alerts_received_total{status="resolved"} 10.0' in text


def test_unroutable_alerts_are_counted_and_kept(make_app, payloads):
    app = make_app({"oncall": ["json://127.0.0.1:1/hook"]})  # no default group
    c = app.test_client()
    r = c.post("/api/v1/alerts", json=payloads["am025_firing_single"], headers=AUTH)
    assert r.status_code == 200 and r.json["unroutable"] == 1 and r.json["stored"] == 0
    assert store_of(app).count("notifications") == 1
    assert "alert_router_alerts_unroutable_total 1.0" in c.get("/metrics").text


def test_flood_protection_folds_into_digest(make_app, http_sink, payloads):
    app = make_app({"default": [f"json://127.0.0.1:{http_sink.port}/hook"]},
                   flood={"max_per_window": 2, "window": "1.5s"})
    c = app.test_client()
    base = payloads["am025_firing_single"]
    fps = []
    for i in range(7):
        doc = copy.deepcopy(base)
        doc["alerts"][0]["fingerprint"] = f"{i:016x}"
        doc["alerts"][0]["labels"]["instance"] = f"db-{i}:9100"
        doc["alerts"][0]["annotations"]["summary"] = f"HighCPULoad on db-{i}:9100"
        doc["groupKey"] = f"group-{i}"
        fps.append(doc["alerts"][0]["fingerprint"])
        assert c.post("/api/v1/alerts", json=doc, headers=AUTH).status_code == 200
    wait_until(lambda: c.get("/api/v1/deliveries?status=delivered", headers=AUTH).json["count"] == 7,
               timeout=20, what="all 7 alerts delivered")
    msgs = [json.loads(q["body"]) for q in http_sink.requests]
    digests = [m for m in msgs if m["title"].startswith("[DIGEST]")]
    assert digests, [m["title"] for m in msgs]
    assert len(msgs) < 7
    # Never more than 2 messages in any 1.5 s window (less a little for send time) ...
    times = sorted(q["received"] for q in http_sink.requests)
    for t in times:
        assert sum(t <= u < t + 1.2 for u in times) <= 2, times
    # ... and nothing dropped: every alert is in exactly one message.
    for i in range(7):
        assert sum(f"db-{i}:9100" in m["message"] for m in msgs) == 1, i
    assert 'alert_router_digests_total{channel="push"}' in c.get("/metrics").text


def test_recipients_hot_reload_and_bad_file_keeps_last_good(make_app, http_sink, payloads, tmp_path):
    app = make_app({"default": [f"json://127.0.0.1:{http_sink.port}/old"]})
    state = app.extensions["alert_router"]
    path = Path(state.recipients.path)
    path.write_text(yaml.safe_dump({"recipients": {"default": [f"json://127.0.0.1:{http_sink.port}/new"]}}))
    os.utime(path, ns=(10**18, 10**18))
    wait_until(lambda: state.recipients.current.groups["default"][0].endswith("/new"), timeout=10,
               what="recipients reloaded")
    path.write_text("recipients: [unclosed\n")
    os.utime(path, ns=(2 * 10**18, 2 * 10**18))
    wait_until(lambda: state.recipients.last_error, timeout=10, what="bad file noticed")
    assert state.recipients.current.groups["default"][0].endswith("/new")
    c = app.test_client()
    assert c.post("/api/v1/alerts", json=payloads["am025_firing_single"], headers=AUTH).status_code == 200
    http_sink.wait_for(lambda q: q["path"] == "/new", timeout=20)
    text = c.get("/metrics").text
    assert "alert_router_recipients_last_reload_successful 0.0" in text
    assert 'alert_router_recipients_reloads_total{result="failure"} 1.0' in text


def test_config_validation_and_backoff(tmp_path):
    assert from_dict({"retry": {"max_age": "6h"}}).retry.max_age == 21600
    assert from_dict({"retry": {"max_age": 2}}).retry.max_age == 2.0
    for bad in ({"listen": "nope"}, {"retry": {"initial_delay": "soon"}}, {"flood": {"max_per_window": 0}},
                {"severity_channels": {"critical": ["pager"]}}, {"typo_key": 1}):
        with pytest.raises(ConfigError):
            from_dict(bad, "router.yml")
    with pytest.raises(ConfigError, match="token_file is required"):
        create_app({"state_dir": str(tmp_path)})
    (tmp_path / "tok").write_text("t")
    with pytest.raises(ConfigError, match="recipients is required"):
        create_app({"state_dir": str(tmp_path), "token_file": str(tmp_path / "tok")})
    cfg = Config()
    lo = [backoff_delay(n, cfg, rng=lambda a, b: a) for n in range(1, 12)]
    hi = [backoff_delay(n, cfg, rng=lambda a, b: b) for n in range(1, 12)]
    assert lo[0] == 2.5 and hi[0] == 5.0 and lo[1] == 5.0
    assert hi[-1] == cfg.retry.max_delay and all(x <= y for x, y in zip(lo, lo[1:], strict=False))


def test_cannot_store_answers_503_and_stores_nothing(make_app, payloads):
    app = make_app({"default": ["json://127.0.0.1:1/hook"]})
    store = store_of(app)
    c = app.test_client()
    # The test client runs the request in this thread, on this thread's connection: make the
    # database "full" for it (SQLITE_FULL, as on a full disk).
    conn = store.conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    r = c.post("/api/v1/alerts", json=payloads["am025_grouped_firing_25_alerts"], headers=AUTH)
    assert r.status_code == 503 and r.json["status"] == "error"
    assert store.count("notifications") == 0 and store.count() == 0
    assert "alert_router_store_errors_total 1.0" in c.get("/metrics").text
    conn.execute("PRAGMA max_page_count=1073741823")
    r = c.post("/api/v1/alerts", json=payloads["am025_grouped_firing_25_alerts"], headers=AUTH)
    assert r.status_code == 200 and r.json["stored"] == 25


def test_severity_chooses_channels_email_sms_push(make_app, smtp_sink, http_sink, payloads):
    from tests.harness.servers import HttpSink

    with HttpSink(reply=b'{"result":{"message_id":1,"status":"ok"}}') as sms_gw:
        app = make_app({"oncall": [smtp_sink.mailto_url(),
                                   f"smseagle://smstoken123456@127.0.0.1:{sms_gw.port}/+15551234567",
                                   f"ntfy://127.0.0.1:{http_sink.port}/oncall"]},
                       severity_channels={"critical": ["email", "sms", "push"], "warning": ["email"]})
        c = app.test_client()
        crit = copy.deepcopy(payloads["am025_firing_single"])
        crit["alerts"][0]["labels"]["notify"] = "oncall"
        warn = copy.deepcopy(payloads["am025_grouped_firing_25_alerts"])
        warn["alerts"] = [a for a in warn["alerts"] if a["labels"]["severity"] == "warning"][:3]
        for a in warn["alerts"]:
            a["labels"]["notify"] = "oncall"
        assert c.post("/api/v1/alerts", json=crit, headers=AUTH).json["stored"] == 3
        assert c.post("/api/v1/alerts", json=warn, headers=AUTH).json["stored"] == 3  # email only
        sms = json.loads(sms_gw.wait_for(timeout=20)[0]["body"])["params"]
        assert sms["to"] == "+15551234567"
        assert sms["message"].startswith("FIRING CRITICAL: HighCPULoad on db-1:9100")
        assert len(sms["message"]) < 160 and "\n" not in sms["message"]
        smtp_sink.wait_for(timeout=20, count=2)
        http_sink.wait_for(timeout=20)
        wait_until(lambda: c.get("/api/v1/deliveries?status=delivered", headers=AUTH).json["count"] == 6,
                   timeout=20, what="6 deliveries")
        assert len(sms_gw.requests) == 1 and len(http_sink.requests) == 1 and len(smtp_sink.messages) == 2
        warn_mail = next(m for m in smtp_sink.messages if "DiskFull" in m["Subject"])
        assert warn_mail["Subject"].startswith("[FIRING:3] DiskFull (warning)")
        text = c.get("/metrics").text
        assert 'alert_router_deliveries_delivered_total{channel="sms"} 1.0' in text
        assert 'alert_router_deliveries_delivered_total{channel="email"} 4.0' in text


def test_readyz_reports_why_not_ready(tmp_path):
    cfg = write_router_files(tmp_path, {"default": ["json://127.0.0.1:1/hook"]})
    app = create_app(cfg, start_workers=False)
    try:
        r = app.test_client().get("/readyz")
        assert r.status_code == 503 and "delivery dispatcher is not running" in r.json["error"]
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        app.extensions["alert_router"].close()


def test_a_hung_recipient_does_not_delay_the_others(make_app, http_sink, payloads):
    import socket

    with socket.socket() as hung:  # accepts TCP connections but never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        app = make_app({"default": [f"json://127.0.0.1:{hung.getsockname()[1]}/hook?cto=30&rto=30",
                                    f"json://127.0.0.1:{http_sink.port}/ok"]})
        c = app.test_client()
        for name in ("am025_firing_single", "am025_truncated_firing_max_alerts_3"):
            assert c.post("/api/v1/alerts", json=payloads[name], headers=AUTH).status_code == 200
        # Both notifications reach the healthy recipient while the hung one is still on its first try.
        http_sink.wait_for(timeout=10, count=2)
        stuck = c.get("/api/v1/deliveries?status=sending", headers=AUTH).json["deliveries"]
        assert stuck and all(d["url"].startswith("json://") and d["attempts"] == 0 for d in stuck)
    # Closing the socket resets the hung connection: the send fails now and is rescheduled.
    wait_until(lambda: c.get("/api/v1/deliveries?status=sending", headers=AUTH).json["count"] == 0, timeout=10,
               what="hung send to fail")
