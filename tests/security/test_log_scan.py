"""No secret in any log line: the router and the exporter are driven through their secret-heavy
paths (tokens, passwords, Apprise URLs, failures, reloads, DEBUG level), then every process log
this test session has captured so far (the router, exporter, Alertmanager and Prometheus logs of
tests/alert_router, tests/exporter, tests/e2e and this folder) is scanned.

Every secret the suite plants carries the marker ``0x5ecret`` or is the router test token, so
the scan knows what to look for; an unmasked ``scheme://user:password@`` is flagged whatever it is.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import bcrypt
import requests
import yaml

from tests.alert_router.conftest import TOKEN, load_payload, router_factory, router_pki  # noqa: F401 - fixtures
from tests.exporter.conftest import exporter_factory  # noqa: F401 - fixture
from tests.harness.servers import free_port, wait_until

MARKERS = (TOKEN, "0x5ecret")
# user:password@ in a URL, unless the password is masked (***).
URL_CREDENTIAL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]+:(?!\*\*\*@)[^\s/@]+@")


def scan(paths: list[Path], extra: tuple[str, ...] = ()) -> list[str]:
    findings = []
    for p in paths:
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            hits = [m for m in (*MARKERS, *extra) if m in line]
            if URL_CREDENTIAL.search(line):
                hits.append("URL with user:password")
            if hits:
                findings.append(f"{p}:{n}: {', '.join(hits)}: {line[:200]}")
    return findings


def test_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scanner itself: a planted secret, an unmasked URL credential, and masked text."""
    log = tmp_path / "planted.txt"  # not *.log: the sweep below must not find it
    log.write_text("ok line\nsent to mailto://bot:pw@smtp.example.test\nmasked mailto://***@smtp...\n"
                   f"token {TOKEN}\nx=abc-0x5ecret-1\n")
    found = scan([log])
    assert [f.split(":")[1] for f in found] == ["2", "4", "5"], found


def _router_scenario(router_factory, http_sink, tmp_path: Path) -> Path:  # noqa: F811
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "hook.pw").write_text("filepw-0x5ecret-2\n")
    local = tmp_path / "local-recipients.yaml"
    dead = free_port()
    local.write_text(yaml.safe_dump({"recipients": {"default": [
        f"json://hook:${{file:hook.pw}}@127.0.0.1:{http_sink.port}/in?+X-Key=${{FLEETMON_ROUTER_KEY}}",
        f"mailto://bot:${{FLEETMON_ROUTER_KEY}}@127.0.0.1:{dead}?from=a@example.test&to=b@example.test&mode=insecure",
    ]}}))
    router = router_factory({"default": ["json://127.0.0.1:9/unused"]}, tls=True,
                            env={"FLEETMON_ROUTER_KEY": "envkey-0x5ecret-1"}, args=["--log-level", "DEBUG"],
                            local_recipients=str(local), secret_dir=str(secrets_dir),
                            secret_env_prefix="FLEETMON_ROUTER_")
    assert router.post(load_payload("am025_firing_single.json")).status_code == 200
    req = http_sink.wait_for(timeout=30)[0]
    assert req["headers"]["X-Key"] == "envkey-0x5ecret-1"  # the secrets were really used
    wait_until(lambda: router.metric("alert_router_deliveries_retried_total", channel="email") >= 1,
               timeout=30, what="a failing email retried")
    for bad in ("Bearer wrong-0x5ecret-3", f"Basic {TOKEN}", TOKEN):
        r = requests.post(f"{router.url}/api/v1/alerts", json={}, headers={"Authorization": bad}, timeout=10,
                          verify=router.verify)
        assert r.status_code == 401
    local.write_text(yaml.safe_dump({"recipients": {"default": ["notaservice://inline-0x5ecret-4@h/x"]}}))
    wait_until(lambda: "recipients not reloaded" in router.log_path.read_text(), timeout=20, what="reload error")
    router.stop()
    return router.log_path


def _exporter_scenario(exporter_factory, tmp_path: Path) -> Path:  # noqa: F811
    tmp_path.mkdir(parents=True, exist_ok=True)
    hashed = bcrypt.hashpw(b"scrape-0x5ecret-5", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    exp = exporter_factory(["--web.config.file", str(web), "--log-level", "debug", "--no-collector.filesystem"])
    for user, pw, code in (("prometheus", "scrape-0x5ecret-5", 200), ("prometheus", "wrongpw-0x5ecret-6", 401),
                           ("nobody", "scrape-0x5ecret-5", 401)):
        r = requests.get(f"{exp.url}/metrics?u=x", auth=(user, pw), timeout=30)
        assert r.status_code == code
    exp.stop()
    return exp.log_path


def test_no_secret_in_any_captured_log(router_factory, exporter_factory, http_sink, tmp_path: Path,  # noqa: F811
                                       tmp_path_factory) -> None:
    own = [_router_scenario(router_factory, http_sink, tmp_path / "r"),
           _exporter_scenario(exporter_factory, tmp_path / "e")]
    assert "recipients not reloaded" in own[0].read_text()  # the scenario reached its error paths
    basic = base64.b64encode(b"prometheus:scrape-0x5ecret-5").decode()
    # Every process log of this session: ours and the other router/exporter/e2e tests' so far.
    logs = sorted(set(tmp_path_factory.getbasetemp().rglob("*.log")) | set(own))
    assert len(logs) >= 2
    findings = scan(logs, extra=(basic,))
    assert not findings, "\n".join(findings[:20])
