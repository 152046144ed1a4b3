"""Routing is a pure function of labels: notify groups, default, severity channels."""

from __future__ import annotations

from alert_router.routing import channel_of, groups_of, route

REC = {
    "oncall": ["mailto://u:p@mail.example.test?to=a@example.test", "twilio://sid:tok@15551230000/15551234567",
               "ntfy://ntfy.example.test/oncall"],
    "dba": ["mailtos://dba@example.test", "json://hooks.example.test/dba"],
    "default": ["mailto://ops@example.test"],
}
SEV = {"critical": ["email", "sms", "push"], "warning": ["email"], "default": ["email", "push"]}


def test_channel_by_scheme():
    assert channel_of("mailto://x@y") == "email"
    assert channel_of("MAILTOS://x@y") == "email"
    for u in ("twilio://a:b@1/2", "sns://a/b/c", "vonage://x", "nexmo://x", "d7sms://x", "clicksend://x",
              "msg91://x", "bulksms://x"):
        assert channel_of(u) == "sms", u
    for u in ("ntfy://t", "json://h/p", "pover://u@t", "slack://a/b/c", "gotify://h/t"):
        assert channel_of(u) == "push", u


def test_notify_label_groups_default_and_unknown():
    assert groups_of({"notify": "oncall, dba,oncall"}, REC) == (["oncall", "dba"], [])
    assert groups_of({}, REC) == (["default"], [])
    assert groups_of({"notify": "nobody"}, REC) == (["default"], ["nobody"])
    assert groups_of({"notify": "dba,nobody"}, REC) == (["dba"], ["nobody"])
    assert groups_of({"notify": "x"}, {"oncall": []}) == ([], ["x"])


def test_severity_picks_channels():
    crit = route({"notify": "oncall", "severity": "critical"}, REC, SEV)
    assert [r.channel for r in crit] == ["email", "sms", "push"]
    warn = route({"notify": "oncall", "severity": "warning"}, REC, SEV)
    assert [(r.group, r.channel) for r in warn] == [("oncall", "email")]
    other = route({"notify": "oncall,dba", "severity": "info"}, REC, SEV)
    assert [r.channel for r in other] == ["email", "push", "email", "push"]


def test_each_url_once_and_fallback_when_no_allowed_channel():
    rec = {"a": ["ntfy://t/x"], "b": ["ntfy://t/x", "mailto://m@example.test"]}
    assert [r.url for r in route({"notify": "a,b"}, rec, SEV)] == ["ntfy://t/x", "mailto://m@example.test"]
    # warning is email-only, but group a has only push: better a push than nothing.
    assert [r.url for r in route({"notify": "a", "severity": "warning"}, rec, SEV)] == ["ntfy://t/x"]


def test_no_route_without_default():
    assert route({"notify": "ghost"}, {"oncall": ["ntfy://t/x"]}, SEV) == []
