"""Secrets stay with the router: references resolve only within the router's own scope,
rules YAML cannot carry them, and files holding recipients are owner-only (issue 14)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from alert_router.recipients import RecipientsError, RecipientStore, SecretScope, parse_recipients
from rulesync.cli import main as rulesync_main
from tests.alert_router.conftest import TOKEN, load_payload, router_factory, router_pki  # noqa: F401 - fixtures
from tests.harness.servers import wait_until

REPO = Path(__file__).resolve().parents[2]
SCOPE_ENV = {"FLEETMON_ROUTER_SMTP": "smtp-0x5ecret-in-scope", "HOME_TOKEN": "env-0x5ecret-out-of-scope"}


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "ntfy.token").write_text("ntfy-0x5ecret-in-dir\n")
    (tmp_path / "router.token").write_text("router-0x5ecret-outside\n")
    os.symlink(tmp_path / "router.token", d / "escape.link")
    return d


def _parse(url: str, scope: SecretScope) -> str:
    return parse_recipients(f"recipients:\n  g:\n    - {url}\n", "r.yaml", env=SCOPE_ENV,
                            validate=None, scope=scope).groups["g"][0]


def test_references_inside_the_scope_expand(secret_dir: Path) -> None:
    scope = SecretScope(str(secret_dir), "FLEETMON_ROUTER_")
    assert _parse("json://h/${file:ntfy.token}", scope) == "json://h/ntfy-0x5ecret-in-dir"
    assert _parse(f"json://h/${{file:{secret_dir}/ntfy.token}}", scope) == "json://h/ntfy-0x5ecret-in-dir"
    assert _parse("mailto://u:${FLEETMON_ROUTER_SMTP}@h", scope) == "mailto://u:smtp-0x5ecret-in-scope@h"


@pytest.mark.parametrize("url, words", [
    ("json://h/${file:../router.token}", "outside the allowed secret_dir"),
    ("json://h/${file:ROOT/router.token}", "outside the allowed secret_dir"),
    ("json://h/${file:escape.link}", "outside the allowed secret_dir"),     # a symlink out of the dir
    ("json://h/${file:/etc/passwd}", "outside the allowed secret_dir"),
    ("json://h/${file:.}", "outside the allowed secret_dir"),
    ("json://h/${HOME_TOKEN}", "only variables starting with FLEETMON_ROUTER_"),
])
def test_references_outside_the_scope_are_errors(secret_dir: Path, url: str, words: str) -> None:
    url = url.replace("ROOT", str(secret_dir.parent))
    with pytest.raises(RecipientsError) as exc:
        _parse(url, SecretScope(str(secret_dir), "FLEETMON_ROUTER_"))
    msg = str(exc.value)
    assert msg.startswith("r.yaml:3: ") and words in msg, msg
    assert "0x5ecret" not in msg


def test_no_scope_configured_means_no_references(secret_dir: Path) -> None:
    for url, words in (("json://h/${file:ntfy.token}", "sets no secret_dir"),
                       ("mailto://u:${FLEETMON_ROUTER_SMTP}@h", "sets no secret_env_prefix")):
        with pytest.raises(RecipientsError, match=words):
            _parse(url, SecretScope())


def test_local_recipients_replace_generated_groups(tmp_path: Path, secret_dir: Path) -> None:
    gen = tmp_path / "recipients.yaml"
    gen.write_text("recipients:\n  oncall: [json://127.0.0.1:1/public]\n  default: [json://127.0.0.1:1/d]\n")
    local = tmp_path / "local.yaml"
    local.write_text("recipients:\n  oncall: ['json://127.0.0.1:1/${file:ntfy.token}']\n")
    store = RecipientStore(gen, validate=None, scope=SecretScope(str(secret_dir)), local_path=local)
    store.load(strict=True)
    assert store.current.groups == {"oncall": ["json://127.0.0.1:1/ntfy-0x5ecret-in-dir"],
                                    "default": ["json://127.0.0.1:1/d"]}
    assert "ntfy-0x5ecret-in-dir" in store.current.secrets  # so the log filter masks it


def test_router_refuses_to_send_its_token_away(router_factory, tmp_path: Path) -> None:  # noqa: F811
    """The attack from the issue, against a real router: a recipient URL that reads the token
    file. At start the router exits 2 naming file:line; on a hot reload it keeps the last good set."""
    good = {"default": ["json://127.0.0.1:9/hook"]}
    router = router_factory(good, secret_dir=str(tmp_path / "secrets"), secret_env_prefix="FLEETMON_ROUTER_")
    (tmp_path / "secrets").mkdir()
    rec = router.workdir / "recipients.yaml"
    rec.write_text(yaml.safe_dump({"recipients": {
        "default": [f"json://127.0.0.1:9/${{file:{router.workdir / 'token'}}}"]}}))
    os.utime(rec, ns=(10**18, 10**18))
    wait_until(lambda: "recipients not reloaded" in router.log_path.read_text(), timeout=20, what="reload error")
    log = router.log_path.read_text()
    assert "recipients.yaml:3" in log and "outside the allowed secret_dir" in log
    assert router.metric("alert_router_recipients_last_reload_successful") == 0
    assert router.post(load_payload("am025_firing_single.json")).status_code == 200
    rows = router.deliveries()
    assert rows and all(TOKEN not in str(r) for r in rows)
    router.stop()
    assert TOKEN not in router.log_path.read_text()

    bad = router_factory({"default": ["json://127.0.0.1:9/${HOME}"]}, start=False,
                         workdir=tmp_path / "second", secret_env_prefix="FLEETMON_ROUTER_")
    with pytest.raises(RuntimeError, match="exited with 2"):
        bad.start(timeout=60)
    assert "only variables starting with FLEETMON_ROUTER_" in bad.log_path.read_text()


def test_rulesync_validate_rejects_references_with_file_line_field(tmp_path: Path) -> None:
    src = REPO / "tests" / "rulesync" / "testdata" / "bad" / "secret-refs.yaml"
    r = CliRunner().invoke(rulesync_main, ["validate", str(src)])
    assert r.exit_code != 0
    assert f"{src}:13: error: recipients.leak[0]: secret reference ${{file:/etc/fleetmon/alert-router.token}}" \
        in r.output, r.output
    assert f"{src}:15: error: recipients.whole[0]: secret reference ${{ONCALL_URL}}" in r.output


def test_compiled_recipients_file_is_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "recipients.yaml").write_text("old\n")
    os.chmod(out / "recipients.yaml", 0o644)
    r = CliRunner().invoke(rulesync_main, ["compile", str(REPO / "examples" / "rules.yaml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE((out / "recipients.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "rules.rules.yml").stat().st_mode) == 0o644  # Prometheus reads these
    # Unchanged content on a second run: the mode is still enforced.
    os.chmod(out / "recipients.yaml", 0o644)
    r = CliRunner().invoke(rulesync_main, ["compile", str(REPO / "examples" / "rules.yaml"), "--out", str(out)])
    assert r.exit_code == 0 and stat.S_IMODE((out / "recipients.yaml").stat().st_mode) == 0o600
