"""The CLI: `check` validates config, token and recipients; `serve` refuses a bad config with exit 2."""

from __future__ import annotations

import subprocess
import sys

import yaml
from click.testing import CliRunner

from alert_router.cli import main
from tests.alert_router.conftest import REPO, write_router_files


def test_check_good_and_bad(tmp_path):
    cfg = write_router_files(tmp_path, {"oncall": ["mailto://bot:hunter2pass@mail.example.test?to=a@example.test"]})
    conf = tmp_path / "router.yml"
    conf.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(main, ["check", "--config", str(conf)])
    assert r.exit_code == 0, r.output
    assert "oncall: mailto://***@mail" in r.output and "hunter2pass" not in r.output

    conf.write_text(yaml.safe_dump({**cfg, "retry": {"max_age": "forever"}}))
    r = CliRunner().invoke(main, ["check", "--config", str(conf)])
    assert r.exit_code == 2 and f"{conf}:" in r.output and "retry.max_age: must be a duration" in r.output
    assert "got 'forever'" in r.output

    conf.write_text(yaml.safe_dump({**cfg, "token_file": str(tmp_path / "missing")}))
    r = CliRunner().invoke(main, ["check", "--config", str(conf)])
    assert r.exit_code == 2 and "token_file" in r.output and "cannot read" in r.output

    conf.write_text("listen: [1\n")
    r = CliRunner().invoke(main, ["check", "--config", str(conf)])
    assert r.exit_code == 2 and f"{conf}:2" in r.output


def test_serve_exits_2_on_bad_recipients(tmp_path):
    cfg = write_router_files(tmp_path, {"oncall": ["mailto://x@example.test"]}, secret_env_prefix="FLEETMON_ROUTER_")
    (tmp_path / "recipients.yaml").write_text("recipients:\n  oncall:\n    - mailto://u:${FLEETMON_ROUTER_UNSET_X}@h\n")
    conf = tmp_path / "router.yml"
    conf.write_text(yaml.safe_dump(cfg))
    p = subprocess.run([sys.executable, "-m", "alert_router.cli", "serve", "--config", str(conf),
                        "--listen", "127.0.0.1:1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "recipients.yaml:3" in p.stderr and "FLEETMON_ROUTER_UNSET_X is not set" in p.stderr


def test_requeue_dead_letters(tmp_path, payloads):
    from alert_router.payload import parse_notification
    from alert_router.routing import route
    from alert_router.store import Store

    store = Store(tmp_path / "state")
    rec = {"default": ["json://127.0.0.1:1/a", "json://127.0.0.1:1/b"]}
    store.enqueue(parse_notification(payloads["am025_firing_single"]), lambda a: route(a.labels, rec))
    for h in store.due_urls(now=1e12):
        rows = store.claim(h, now=1e12)
        store.mark_failed([r.id for r in rows], now=1e12, error="failure", next_attempt_at=None)
    dead = store.list_deliveries(status="dead")
    assert len(dead) == 2
    r = CliRunner().invoke(main, ["requeue", "--state-dir", str(tmp_path / "state"), "--id", str(dead[0]["id"])])
    assert r.exit_code == 0 and "requeued 1 " in r.output
    r = CliRunner().invoke(main, ["requeue", "--state-dir", str(tmp_path / "state")])
    assert r.exit_code == 0 and "requeued 1 " in r.output
    pending = store.list_deliveries(status="pending")
    assert len(pending) == 2 and all(p["last_error"].startswith("requeued by operator") for p in pending)
    r = CliRunner().invoke(main, ["requeue", "--state-dir", str(tmp_path / "nothing")])
    assert r.exit_code == 2
