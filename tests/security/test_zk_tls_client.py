"""The client side of ZooKeeper TLS (fleetmon.zk): whom a client trusts, session resumption,
and refusing a server another CA signed. Against the real TLS client port of ZooKeeper 3.8
and, for a server fleetmon's CA did not sign, a Python TLS server with another CA's key."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
from kazoo.handlers.gevent import SequentialGeventHandler

from fleetmon import zkkeys
from fleetmon.zk import TlsAwareHandler, _tls_aware, load_security, make_client, tls_context
from tests.harness.servers import free_port, use_zk_security, wait_until


def _connect(handler, port: int, ca: str):
    return handler.create_connection(("127.0.0.1", port), hostname="127.0.0.1", timeout=10, use_ssl=True, ca=ca)


def test_client_context_trusts_fleetmons_ca_only_and_is_shared(zk_server) -> None:
    ca = load_security("registrar").ca
    ctx = tls_context(ca)
    # kazoo's own context also loads the system bundle: any public CA's certificate would do.
    assert [dict(x[0] for x in c["subject"])["commonName"] for c in ctx.get_ca_certs()] == ["fleetmon ZooKeeper CA"]
    assert tls_context(ca) is ctx
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_reconnection_resumes_the_members_tls_session(zk_server) -> None:
    ca = load_security("registrar").ca
    handler = TlsAwareHandler()
    first = _connect(handler, zk_server.port, ca)
    first.close()
    again = [_connect(handler, zk_server.port, ca) for _ in range(3)]
    try:
        assert all(c.session_reused for c in again)
        assert all(c.version() for c in again)
    finally:
        for c in again:
            c.close()
    # A real client through that handler still works end to end (and resumes too).
    client = make_client(zk_server.hosts, role="reader", handler=handler)
    client.start(timeout=15)
    try:
        assert client.exists("/") is not None
    finally:
        client.stop()
        client.close()


def test_gevent_handler_gets_cooperative_tls_sockets(zk_server) -> None:
    from gevent import ssl as gssl

    ca = load_security("registrar").ca
    handler = _tls_aware(SequentialGeventHandler())
    conn = _connect(handler, zk_server.port, ca)
    try:
        assert isinstance(conn, gssl.SSLSocket)
    finally:
        conn.close()


@pytest.fixture
def foreign_tls_server(tmp_path):
    """A TLS server whose certificate another CA signed; accepts until the test ends."""
    zkkeys.make_pki(tmp_path / "other")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "other" / zkkeys.SERVER_KEYSTORE)
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = srv.accept()
            except OSError:
                continue
            try:
                raw.settimeout(5)
                ctx.wrap_socket(raw, server_side=True).close()
            except (OSError, ssl.SSLError):
                raw.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield port
    stop.set()
    t.join(5)
    srv.close()


def test_a_server_signed_by_another_ca_is_refused(foreign_tls_server) -> None:
    ca = load_security("registrar").ca
    handler = TlsAwareHandler()
    for _ in range(3):  # and again: a failed handshake leaves no session to resume
        with pytest.raises(ssl.SSLCertVerificationError):
            _connect(handler, foreign_tls_server, ca)


def test_tls_reconnection_attempts_are_spread_like_zookeepers_java_client(monkeypatch) -> None:
    """Attempts after the first wait a random 0..TLS_RECONNECT_SPREAD s (here its maximum)."""
    from fleetmon import zk as fzk

    use_zk_security()  # the harness CA and credentials, without starting a ZooKeeper
    monkeypatch.setattr(fzk.random, "uniform", lambda a, b: b)
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(0.2)
    accepted: list[float] = []
    stop = threading.Event()

    def serve() -> None:  # a member that drops every connection before the handshake
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = make_client(f"127.0.0.1:{port}", role="reader")
    try:
        client.start_async()
        wait_until(lambda: len(accepted) >= 3, timeout=30, what="three connection attempts")
    finally:
        client.stop()
        client.close()
        stop.set()
        t.join(5)
        srv.close()
    gaps = [b - a for a, b in zip(accepted, accepted[1:], strict=False)]
    # kazoo alone retries after 0.3-0.7 s here (0.5 s +/- 40%), then 0.6-1.4 s.
    assert all(g >= fzk.TLS_RECONNECT_SPREAD for g in gaps), gaps
