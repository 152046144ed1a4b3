"""Webhook payload parsing with the real Alertmanager 0.25 payloads, and precise 4xx fields."""

from __future__ import annotations

import copy

import pytest

from alert_router.payload import PayloadError, parse_notification, parse_time


def test_every_real_payload_parses(payloads):
    assert len(payloads) == 6
    for name, doc in payloads.items():
        n = parse_notification(doc)
        assert n.version == "4", name
        assert len(n.alerts) == len(doc["alerts"])
        assert n.group_key == doc["groupKey"]
        for a, raw in zip(n.alerts, doc["alerts"], strict=True):
            assert a.fingerprint == raw["fingerprint"]
            assert a.starts_at_ts is not None
            if a.status == "firing":
                assert a.ends_at_ts is None  # 0001-01-01T00:00:00Z is Go's zero time
            else:
                assert a.ends_at_ts > a.starts_at_ts


def test_receiver_unescaped_and_truncated_alerts(payloads):
    n = parse_notification(payloads["am025_firing_single"])
    assert n.receiver == "team\\.db-oncall"
    assert n.receiver_name == "team.db-oncall"
    t = parse_notification(payloads["am025_truncated_firing_max_alerts_3"])
    assert t.truncated_alerts == 5
    assert t.to_json()["truncatedAlerts"] == 5


def test_unknown_fields_ignored_and_optional_fields_defaulted(payloads):
    doc = copy.deepcopy(payloads["am025_no_endsAt_no_generatorURL_default_route"])
    doc["someFutureField"] = {"x": [1, 2]}
    doc["alerts"][0]["newAlertField"] = 3
    del doc["truncatedAlerts"]
    del doc["alerts"][0]["endsAt"]
    n = parse_notification(doc)
    assert n.truncated_alerts == 0
    assert n.alerts[0].generator_url == ""
    assert n.alerts[0].ends_at_ts is None
    assert "someFutureField" not in n.to_json()


def test_state_key_ignores_firing_endsat_but_not_resolve(payloads):
    firing = parse_notification(payloads["am025_firing_single"]).alerts[0]
    resolved = parse_notification(payloads["am025_resolved_single"]).alerts[0]
    assert firing.fingerprint == resolved.fingerprint
    assert firing.state_key() != resolved.state_key()
    doc = copy.deepcopy(payloads["am025_firing_single"])
    doc["alerts"][0]["endsAt"] = "2030-01-01T00:00:00Z"
    assert parse_notification(doc).alerts[0].state_key() == firing.state_key()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("version"), "version"),
    (lambda d: d.update(status="burning"), "status"),
    (lambda d: d.update(alerts=[]), "alerts"),
    (lambda d: d.update(alerts="x"), "alerts"),
    (lambda d: d["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
    (lambda d: d["alerts"][0].update(fingerprint="../etc"), "alerts[0].fingerprint"),
    (lambda d: d["alerts"][0]["labels"].update(severity=5), "alerts[0].labels.severity"),
    (lambda d: d["alerts"][0].update(labels={}), "alerts[0].labels"),
    (lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
    (lambda d: d["alerts"][0].update(startsAt="2026-13-40T00:00:00Z"), "alerts[0].startsAt"),
    (lambda d: d["alerts"][0].update(status="resolved"), "alerts[0].endsAt"),
    (lambda d: d["alerts"][0].update(annotations=["a"]), "alerts[0].annotations"),
    (lambda d: d.update(truncatedAlerts=-1), "truncatedAlerts"),
    (lambda d: d.update(truncatedAlerts=True), "truncatedAlerts"),
    (lambda d: d.update(commonLabels={"a": None}), "commonLabels.a"),
    (lambda d: d.update(groupKey=7), "groupKey"),
])
def test_invalid_payloads_name_the_field(payloads, mutate, field):
    doc = copy.deepcopy(payloads["am025_firing_single"])
    mutate(doc)
    with pytest.raises(PayloadError) as exc:
        parse_notification(doc)
    assert exc.value.field == field


def test_parse_time_formats():
    assert parse_time("2026-11-28T06:38:46Z", "t")[1] == parse_time("2026-11-28T07:38:46+01:00", "t")[1]
    assert parse_time("2026-11-28T06:38:46.123456789Z", "t")[1] == pytest.approx(
        parse_time("2026-11-28T06:38:46.123456Z", "t")[1])
    assert parse_time("0001-01-01T00:00:00Z", "t")[1] is None
    with pytest.raises(PayloadError):
        parse_time(12, "t")
