"""Shared helpers: atomic writes and secret masking."""

from __future__ import annotations

import os

import pytest

from fleetmon.atomic import write_atomic, write_if_changed
from fleetmon.secrets import mask_url, scrub


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "targets.json"
    target.write_text("old")
    write_atomic(target, '[{"targets": ["a:1"]}]')
    assert target.read_text() == '[{"targets": ["a:1"]}]'
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]


def test_write_atomic_failure_keeps_old_content(tmp_path):
    target = tmp_path / "rules.yml"
    target.write_text("good")
    os.chmod(tmp_path, 0o500)  # directory not writable: the temp file cannot be created
    try:
        if os.geteuid() == 0:
            # root ignores directory permissions; simulate with a missing directory instead
            with pytest.raises(OSError):
                write_atomic(tmp_path / "missing" / "rules.yml", "new")
        else:
            with pytest.raises(OSError):
                write_atomic(target, "new")
    finally:
        os.chmod(tmp_path, 0o700)
    assert target.read_text() == "good"


def test_write_if_changed_skips_identical_content(tmp_path):
    target = tmp_path / "f.json"
    assert write_if_changed(target, "x") is True
    inode = target.stat().st_ino
    assert write_if_changed(target, "x") is False
    assert target.stat().st_ino == inode
    assert write_if_changed(target, "y") is True


@pytest.mark.parametrize("url,secret", [
    ("mailto://user:hunter2@smtp.example.test?to=ops@example.test", "hunter2"),
    ("ntfy://tk_abcdefghijklmnop@ntfy.example.test/alerts-topic", "tk_abcdefghijklmnop"),
    ("twilio://ACsid123:authtoken456@15551234567/15557654321", "authtoken456"),
    ("json://127.0.0.1:8080/hook?token=s3cr3t", "s3cr3t"),
])
def test_mask_url_hides_credentials(url, secret):
    masked = mask_url(url)
    assert secret not in masked
    assert masked.split("://")[0] == url.split("://")[0]


def test_scrub_removes_known_secrets_and_url_credentials():
    text = "failed to send to mailto://bob:pw123@mail.test?pass=zzz with token abc-token"
    out = scrub(text, secrets=["abc-token"])
    assert "pw123" not in out and "zzz" not in out and "abc-token" not in out
    assert "failed to send" in out
