"""Messages fit their channel: one-line SMS < 160 chars, push title+body, complete email."""

from __future__ import annotations

import copy

from alert_router import formatting


def test_sms_is_one_line_under_160_for_every_payload(payloads):
    for name, doc in payloads.items():
        msg = formatting.sms(doc["alerts"], doc)
        assert "\n" not in msg.body, name
        assert 0 < len(msg.body) < 160, name
        assert msg.body.isascii()


def test_sms_long_text_is_cut_and_counts_more(payloads):
    doc = copy.deepcopy(payloads["am025_truncated_firing_max_alerts_3"])
    doc["alerts"][0]["annotations"]["summary"] = "disk\nfull " * 60
    msg = formatting.sms(doc["alerts"], doc)
    assert len(msg.body) < 160 and "\n" not in msg.body
    assert msg.body.startswith("FIRING CRITICAL: disk full")
    assert msg.body.endswith("(+7 more)")  # 2 more in the payload, 5 truncated by Alertmanager
    assert "..." in msg.body


def test_push_has_title_body_and_runbook(payloads):
    doc = payloads["am025_grouped_firing_25_alerts"]
    msg = formatting.push(doc["alerts"], doc)
    assert msg.title.startswith("[FIRING:25]") and "DiskFull" in msg.title
    lines = msg.body.splitlines()
    assert len([x for x in lines if x.startswith("FIRING:")]) == formatting.PUSH_MAX_LINES
    assert "... and 15 more" in lines
    assert any(x.startswith("Runbook: https://runbooks.example.internal/") for x in lines)


def test_push_counts_alerts_alertmanager_truncated(payloads):
    doc = payloads["am025_truncated_firing_max_alerts_3"]
    assert formatting.push(doc["alerts"], doc).body.splitlines()[3] == "... and 5 more"


def test_email_lists_all_alerts_labels_annotations_links(payloads):
    doc = copy.deepcopy(payloads["am025_grouped_mixed_10_resolved_15_firing"])
    doc["alerts"][1]["annotations"]["dashboard_url"] = "https://grafana.example.internal/d/disk"
    msg = formatting.email(doc["alerts"], doc, now=doc and 1795851600.0)
    assert msg.title.startswith("[FIRING:15, RESOLVED:10] DiskFull")
    body = msg.body
    for a in doc["alerts"]:
        assert a["annotations"]["summary"] in body
        assert f"Fingerprint: {a['fingerprint']}" in body
    assert body.count("== RESOLVED:") == 10 and body.count("== FIRING:") == 15
    assert "mountpoint=/var/lib/postgresql" in body
    assert "Runbook:     https://runbooks.example.internal/DiskFull" in body
    assert "Dashboard:   https://grafana.example.internal/d/disk" in body
    assert "Source:      http://prometheus-0.example.internal:9090/graph" in body
    assert "Resolved:    2026-11-28 06:39:59 UTC" in body
    assert "Silence:      http://alertmanager.example.internal:9093/#/silences/new?filter=" in body
    assert msg.notify_type == "failure"  # a critical alert is firing


def test_email_of_new_alert_mentions_already_notified_and_truncated(payloads):
    doc = payloads["am025_truncated_firing_max_alerts_3"]
    msg = formatting.email(doc["alerts"][2:], doc)
    assert msg.title.startswith("[FIRING:1] NodeDown on web-3:9100")
    assert "Also in this group, already notified (2):" in msg.body
    assert "5 more alerts in this group were left out by Alertmanager" in msg.body


def test_resolved_notification_type(payloads):
    doc = payloads["am025_resolved_single"]
    for channel in ("email", "sms", "push"):
        msg = formatting.render(channel, doc["alerts"], doc)
        assert msg.notify_type == "success"
        assert "RESOLVED" in (msg.title + msg.body)


def test_digest_per_channel(payloads):
    a = payloads["am025_grouped_firing_25_alerts"]
    b = payloads["am025_resolved_single"]
    batches = [(a, a["alerts"]), (b, b["alerts"])]
    sms = formatting.digest("sms", batches)
    assert sms.body.startswith("DIGEST: 25 firing, 1 resolved: DiskFull x25, HighCPULoad") and len(sms.body) < 160
    mail = formatting.digest("email", batches)
    assert "(2 notifications)" in mail.title
    assert mail.body.count("FIRING ") == 25 and "RESOLVED critical HighCPULoad" in mail.body
