"""Recipients file: ${ENV} and ${file:} expansion, errors with file:line, hot reload, last good kept."""

from __future__ import annotations

import os

import pytest

from alert_router.recipients import (
    RecipientsError,
    RecipientStore,
    SecretScope,
    load_recipients,
    parse_recipients,
)


def test_expands_env_and_file(tmp_path):
    secret = tmp_path / "ntfy.token"
    secret.write_text("tk_file_secret_123\n")
    text = ("recipients:\n"
            "  oncall:\n"
            "    - mailto://bot:${FLEETMON_ROUTER_SMTP_PASS}@mail.example.test?to=oncall@example.test\n"
            f"    - ntfys://ntfy.example.test/alerts?token=${{file:{secret}}}\n"
            "  empty:\n")
    rec = parse_recipients(text, "r.yaml", env={"FLEETMON_ROUTER_SMTP_PASS": "pw_env_secret_456"},
                           scope=SecretScope(str(tmp_path), "FLEETMON_ROUTER_"))
    assert rec.groups["oncall"] == [
        "mailto://bot:pw_env_secret_456@mail.example.test?to=oncall@example.test",
        "ntfys://ntfy.example.test/alerts?token=tk_file_secret_123",
    ]
    assert rec.groups["empty"] == []
    assert {"pw_env_secret_456", "tk_file_secret_123"} <= rec.secrets
    masked = rec.masked()["oncall"]
    assert all("secret" not in m for m in masked)


@pytest.mark.parametrize("text, where, words", [
    ("recipients:\n  a: [mailto://x@y.test]\n  b: ${X}\n", "r.yaml:3", "must be a list"),
    ("recipients:\n  a:\n    - mailto://u:${FLEETMON_ROUTER_NOPE}@y.test\n", "r.yaml:3",
     "FLEETMON_ROUTER_NOPE is not set"),
    ("recipients:\n  a:\n    - ntfy://t/${file:/nonexistent/tok}\n", "r.yaml:3", "outside the allowed secret_dir"),
    ("recipients:\n  a:\n    - ntfy://t/${file:missing.tok}\n", "r.yaml:3", "cannot read secret file"),
    ("recipients:\n  a: [json://h/x]\n  a: [json://h/y]\n", "r.yaml:3", "defined twice"),
    ("recipients:\n  a: [\n", "r.yaml:3", ""),
    ("recipients:\n  bad name: [mailto://x@y.test]\n", "r.yaml:2", "group names"),
    ("recipients:\n  a:\n    - nonsense-without-scheme\n", "r.yaml:3", "not an Apprise URL"),
    ("recipients:\n  a:\n    - notaservice://sekrit_pass_789@host/\n", "r.yaml:3", "Apprise cannot use"),
    ("other: 1\n", "r.yaml:1", "recipients: required"),
])
def test_errors_name_file_and_line_never_secret(text, where, words, tmp_path):
    with pytest.raises(RecipientsError) as exc:
        parse_recipients(text, "r.yaml", env={}, scope=SecretScope(str(tmp_path), "FLEETMON_ROUTER_"))
    msg = str(exc.value)
    assert msg.startswith(where), msg
    assert words in msg
    assert "sekrit_pass_789" not in msg


def test_hot_reload_keeps_last_good(tmp_path):
    path = tmp_path / "recipients.yaml"
    path.write_text("recipients:\n  default: [json://127.0.0.1:1/a]\n")
    events = []
    store = RecipientStore(path, on_reload=lambda ok, err: events.append(ok))
    store.load(strict=True)
    assert store.current.groups == {"default": ["json://127.0.0.1:1/a"]}
    assert store.maybe_reload() is False  # unchanged
    path.write_text("recipients:\n  default: [json://127.0.0.1:1/b]\n  oncall: [json://127.0.0.1:1/c]\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within the same clock tick
    assert store.maybe_reload() is True
    assert set(store.current.groups) == {"default", "oncall"}
    path.write_text("recipients:\n  default: {broken\n")
    assert store.maybe_reload() is False
    assert set(store.current.groups) == {"default", "oncall"}  # last good kept
    assert store.last_error.startswith(f"{path}:")
    assert events == [True, True, False]
    with pytest.raises(RecipientsError):
        load_recipients(tmp_path / "missing.yaml")
