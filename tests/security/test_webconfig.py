"""The exporter's --web.config.file as exporter-toolkit does it, over real TLS handshakes with
the exporter's own HTTP server: client_auth_type semantics, max_version, cipher_suites and
curves applied or refused, and a bcrypt comparison for unknown users too."""

from __future__ import annotations

import base64
import http.client
import ssl
import statistics
import time
from pathlib import Path

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.server import MetricsServer
from exporter.webconfig import load_web_config
from fleetmon import tlscerts

BODY = b"# HELP up test\nup 1\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tlscerts.KeyPair]:
    d = tmp_path_factory.mktemp("pki")
    ca = tlscerts.make_ca(d)
    return {"ca": ca, "server": tlscerts.issue(ca, d, "exporter"),
            "client": tlscerts.issue(ca, d, "prometheus", "client"),
            "stranger": tlscerts.self_signed(d, "stranger")}


def _write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "web.yml"
    p.write_text(text)
    return str(p)


def _tls_yaml(pki, **extra: object) -> str:
    lines = ["tls_server_config:", f"  cert_file: {pki['server'].cert}", f"  key_file: {pki['server'].key}"]
    for k, v in extra.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def serve(tmp_path: Path):
    servers: list[MetricsServer] = []

    def start(text: str) -> MetricsServer:
        web = load_web_config(_write(tmp_path, text))
        s = MetricsServer("127.0.0.1:0", lambda: BODY, web).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def _client(pki, cert: str | None = None, **ctx_attrs: object) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    if cert:
        ctx.load_cert_chain(str(pki[cert].cert), str(pki[cert].key))
    for k, v in ctx_attrs.items():
        if k == "ciphers":
            ctx.set_ciphers(str(v))
        else:
            setattr(ctx, k, v)
    return ctx


def _get(server: MetricsServer, ctx: ssl.SSLContext, headers: dict | None = None) -> tuple[int, str, str]:
    """(status, TLS version, cipher) of a full GET /metrics; raises when TLS refuses the client."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, conn.sock.version(), conn.sock.cipher()[0]
    finally:
        conn.close()


REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError)


@pytest.mark.parametrize("auth, none_ok, ca_signed_ok, stranger_ok", [
    ("NoClientCert", True, True, True),
    ("RequestClientCert", True, True, True),
    ("VerifyClientCertIfGiven", True, True, False),
    ("RequireAndVerifyClientCert", False, True, False),
])
def test_client_auth_type_semantics(serve, pki, auth, none_ok, ca_signed_ok, stranger_ok) -> None:
    extra = {"client_auth_type": auth}
    if auth.startswith(("Verify", "RequireAndVerify")):
        extra["client_ca_file"] = str(pki["ca"].cert)
    server = serve(_tls_yaml(pki, **extra))
    for cert, expected in ((None, none_ok), ("client", ca_signed_ok), ("stranger", stranger_ok)):
        if expected:
            assert _get(server, _client(pki, cert))[0] == 200, (auth, cert)
        else:
            with pytest.raises(REFUSED):
                _get(server, _client(pki, cert))


def test_require_any_client_cert_is_refused_not_broken(tmp_path: Path, pki) -> None:
    with pytest.raises(ConfigError) as exc:
        load_web_config(_write(tmp_path, _tls_yaml(pki, client_auth_type="RequireAnyClientCert")))
    assert f"{tmp_path / 'web.yml'}:4: tls_server_config.client_auth_type: RequireAnyClientCert: not supported" \
        in str(exc.value)


def test_max_version_is_applied(serve, pki) -> None:
    server = serve(_tls_yaml(pki, max_version="TLS12"))
    assert _get(server, _client(pki))[1] == "TLSv1.2"
    with pytest.raises(REFUSED):
        _get(server, _client(pki, minimum_version=ssl.TLSVersion.TLSv1_3))
    server13 = serve(_tls_yaml(pki, min_version="TLS13"))
    assert _get(server13, _client(pki))[1] == "TLSv1.3"
    with pytest.raises(REFUSED):
        _get(server13, _client(pki, maximum_version=ssl.TLSVersion.TLSv1_2))


def test_cipher_suites_and_curve_are_applied(serve, pki) -> None:
    server = serve(_tls_yaml(pki, max_version="TLS12", cipher_suites="[TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]",
                             prefer_server_cipher_suites="true", curve_preferences="[CurveP384]"))
    assert _get(server, _client(pki))[2] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    with pytest.raises(REFUSED):  # the client offers only a suite the server no longer allows
        _get(server, _client(pki, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    client = _client(pki)
    client.set_ecdh_curve("prime256v1")  # the client's only curve is not the server's
    with pytest.raises(REFUSED):
        _get(server, client)
    # Control: the same two clients are fine with a server that sets neither option.
    plain = serve(_tls_yaml(pki, max_version="TLS12"))
    assert _get(plain, _client(pki, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))[0] == 200
    assert _get(plain, client)[0] == 200


@pytest.mark.parametrize("extra, where, words", [
    ({"cipher_suites": "[TLS_AES_128_GCM_SHA256]"}, "tls_server_config.cipher_suites",
     "TLS 1.3 suites are not configurable"),
    ({"cipher_suites": "[TLS_RSA_WITH_RC4_128_SHA]"}, "tls_server_config.cipher_suites", "unknown or unsupported"),
    ({"max_version": "TLS14"}, "tls_server_config.max_version", "must be one of"),
    ({"min_version": "TLS13", "max_version": "TLS12"}, "tls_server_config.max_version", "below min_version"),
    ({"curve_preferences": "[CurveP256, X25519]"}, "tls_server_config.curve_preferences", "exactly one of"),
    ({"prefer_server_cipher_suites": "yes"}, "tls_server_config.prefer_server_cipher_suites",
     "must be true or false"),
    ({"client_auth_type": "RequireAndVerifyClientCert"}, "tls_server_config.client_ca_file", "required with"),
    ({"client_ca_file": "CA"}, "tls_server_config.client_ca_file", "is not used with client_auth_type NoClientCert"),
    ({"client_auth_type": "Sometimes"}, "tls_server_config.client_auth_type", "must be one of"),
])
def test_every_option_is_applied_or_refused(tmp_path: Path, pki, extra, where, words) -> None:
    extra = {k: (str(pki["ca"].cert) if v == "CA" else v) for k, v in extra.items()}
    path = _write(tmp_path, _tls_yaml(pki, **extra))
    with pytest.raises(ConfigError) as exc:
        load_web_config(path)
    assert any(p.startswith(f"{path}:") and f": {where}: " in p and words in p for p in exc.value.problems), \
        exc.value.problems


def test_http_server_config_is_refused_not_ignored(tmp_path: Path, pki) -> None:
    path = _write(tmp_path, _tls_yaml(pki) + "http_server_config:\n  http2: true\n")
    with pytest.raises(ConfigError) as exc:
        load_web_config(path)
    assert f"{path}:4: http_server_config: not supported" in str(exc.value)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_unknown_users_cost_a_bcrypt_comparison(serve, pki, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = bcrypt.hashpw(b"s3cret-scrape-pw", bcrypt.gensalt(rounds=10)).decode()
    server = serve(_tls_yaml(pki) + f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    ctx = _client(pki)
    assert _get(server, ctx, _basic("prometheus", "s3cret-scrape-pw"))[0] == 200
    assert _get(server, ctx, _basic("prometheus", "wrong"))[0] == 401
    assert _get(server, ctx, _basic("nobody", "s3cret-scrape-pw"))[0] == 401
    # Every rejected attempt, known user or not, runs bcrypt (counted on the real function).
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(pw: bytes, h: bytes) -> bool:
        calls.append(h)
        return real(pw, h)

    monkeypatch.setattr(bcrypt, "checkpw", counting)

    def timed(user: str) -> float:
        t0 = time.perf_counter()
        assert _get(server, ctx, _basic(user, "wrong-password"))[0] == 401
        return time.perf_counter() - t0

    unknown, known = [], []
    for i in range(7):  # interleaved, so a change in the machine's load hits both alike
        unknown.append(timed(f"nobody{i}"))
        known.append(timed("prometheus"))
    assert len(calls) == 14 and all(h.startswith(b"$2") for h in calls)
    assert all(h != hashed.encode() for h in calls[0::2])  # the dummy hash for unknown names
    assert all(h == hashed.encode() for h in calls[1::2])
    # Same order of cost (bcrypt cost 10 is tens of ms, an unhashed miss microseconds): no cheap
    # "no such user" answer. The margin is wide because the machine is shared.
    assert statistics.median(unknown) > 0.3 * statistics.median(known), (unknown, known)
