"""The alert router's transport: HTTPS served by the router itself, used by a real
Alertmanager 0.25 through `tls_config.ca_file`; plain HTTP cannot reach it; loopback by default."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from alert_router.config import DEFAULT_PORT, Config
from fleetmon import tlscerts
from tests.alert_router.conftest import TOKEN, RouterProcess, load_payload, write_router_files
from tests.alert_router.test_e2e import alert
from tests.harness.servers import free_port

REPO = Path(__file__).resolve().parents[2]


class TlsRouter(RouterProcess):
    """`alert-router serve` with --tls-cert-file/--tls-key-file; the test process trusts the CA
    through REQUESTS_CA_BUNDLE so the fixture helpers (post, metric, deliveries) work unchanged."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tlscerts.KeyPair]:
    d = tmp_path_factory.mktemp("pki")
    ca = tlscerts.make_ca(d)
    return {"ca": ca, "router": tlscerts.issue(ca, d, "alert-router"),
            "stranger": tlscerts.self_signed(d, "stranger")}


@pytest.fixture
def tls_router(tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki["ca"].cert))
    started: list[TlsRouter] = []

    def make(recipients: dict[str, list[str]], **config) -> TlsRouter:
        cfg = write_router_files(tmp_path / f"router-{len(started)}", recipients, **config)
        r = TlsRouter(tmp_path / f"router-{len(started)}", cfg,
                      args=["--tls-cert-file", str(pki["router"].cert), "--tls-key-file", str(pki["router"].key)])
        started.append(r)
        return r.start(timeout=60)

    yield make
    for r in started:
        r.stop()
        assert TOKEN not in r.log_path.read_text(errors="replace")


def test_alertmanager_delivers_over_https(tls_router, alertmanager_factory, smtp_sink, pki) -> None:
    router = tls_router({"oncall": [smtp_sink.mailto_url(to="oncall@example.test")]})
    am = alertmanager_factory({
        "route": {"receiver": "router", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "router", "webhook_configs": [{
            "url": f"{router.url}/api/v1/alerts", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(router.workdir / "token")},
                            "tls_config": {"ca_file": str(pki["ca"].cert)}},
        }]}],
    })
    am.post_alerts([alert("web-1:9100")])
    msg = smtp_sink.wait_for(lambda m: "web-1" in m["Subject"], timeout=60)[0]
    assert msg["Subject"].startswith("[FIRING:1] HighCPU on web-1:9100 (critical)")
    assert router.metric("alert_router_webhook_requests_total", code="200") >= 1
    assert "serving HTTPS on https://127.0.0.1:" in router.log_path.read_text()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_plain_http_and_untrusting_clients_cannot_reach_it(tls_router, pki) -> None:
    router = tls_router({"default": ["json://127.0.0.1:9/hook"]})
    body = load_payload("am025_firing_single.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # Plain HTTP with a valid token: the TLS server never hands it to the app.
    try:
        r = requests.post(f"http://127.0.0.1:{router.port}/api/v1/alerts", json=body, headers=headers, timeout=10)
        assert r.status_code >= 400, r.status_code
    except requests.ConnectionError:
        pass
    # A client that does not trust our CA fails the handshake (it would be the one in danger).
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(f"{router.url}/api/v1/alerts", json=body, headers=headers, timeout=10,
                      verify=str(pki["stranger"].cert))
    # TLS 1.1 and older are refused.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki["ca"].cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert router.metric("alert_router_notifications_received_total") == 0
    # The same request over HTTPS with the CA is accepted.
    assert router.post(body).status_code == 200
    assert router.metric("alert_router_notifications_received_total") == 1


def _check(tmp_path: Path, **config) -> subprocess.CompletedProcess:
    cfg = write_router_files(tmp_path, {"default": ["json://127.0.0.1:9/hook"]}, **config)
    conf = tmp_path / "router.yml"
    conf.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "alert_router.cli", "check", "--config", str(conf)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_loopback_by_default_and_plain_http_beyond_it_is_explicit(tmp_path: Path) -> None:
    assert Config().listen == f"127.0.0.1:{DEFAULT_PORT}"
    p = _check(tmp_path / "a", listen="10.1.2.3:9849")
    assert p.returncode == 2 and "is not a loopback address" in p.stderr
    p = _check(tmp_path / "b", listen="10.1.2.3:9849", insecure_plain_http=True)
    assert p.returncode == 0, p.stderr
    assert "INSECURE: serving plain HTTP on 10.1.2.3:9849" in p.stderr


def test_unusable_certificate_is_a_clear_error(tmp_path: Path, pki) -> None:
    p = _check(tmp_path / "a", tls_cert_file=str(tmp_path / "missing.crt"), tls_key_file=str(pki["router"].key))
    assert p.returncode == 2 and "tls_cert_file: " in p.stderr and "missing.crt: not found" in p.stderr
    p = _check(tmp_path / "b", tls_cert_file=str(pki["stranger"].cert), tls_key_file=str(pki["router"].key))
    assert p.returncode == 2 and "cannot load" in p.stderr and "tls_cert_file" in p.stderr
    p = _check(tmp_path / "c", tls_cert_file=str(pki["router"].cert))
    assert p.returncode == 2 and "set both or neither" in p.stderr
    # serve exits 2 before binding when the key material is wrong
    cfg = write_router_files(tmp_path / "d", {"default": ["json://127.0.0.1:9/hook"]})
    conf = tmp_path / "d" / "router.yml"
    conf.write_text(yaml.safe_dump({**cfg, "listen": f"127.0.0.1:{free_port()}"}))
    p = subprocess.run([sys.executable, "-m", "alert_router.cli", "serve", "--config", str(conf),
                        "--tls-cert-file", str(pki["stranger"].cert), "--tls-key-file", str(pki["router"].key)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "tls_cert_file/tls_key_file: cannot load" in p.stderr
