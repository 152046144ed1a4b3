"""Every outcome of Apprise 2.3 notify(), against real local receivers, bounded by plugin timeouts."""

from __future__ import annotations

import json
import socket
import time

from alert_router.delivery import apprise_send
from alert_router.formatting import Message
from tests.harness.servers import free_port

MSG = Message(title="[FIRING:1] T", body="FIRING: body", notify_type="failure")


def test_success_and_fresh_object_per_send_is_not_throttled(http_sink):
    url = f"json://127.0.0.1:{http_sink.port}/hook"
    t0 = time.monotonic()
    for _ in range(3):
        assert apprise_send(url, MSG).ok
    # Reusing one Apprise object would wait ~5.5 s between sends to the same service.
    assert time.monotonic() - t0 < 3
    body = json.loads(http_sink.requests[0]["body"])
    assert body["title"] == "[FIRING:1] T" and body["message"] == "FIRING: body" and body["type"] == "failure"


def test_failures_are_reported_not_raised(http_sink):
    http_sink.status = 500
    res = apprise_send(f"json://127.0.0.1:{http_sink.port}/hook", MSG)
    assert not res.ok and res.outcome == "failure" and not res.permanent
    res = apprise_send(f"json://127.0.0.1:{free_port()}/hook", MSG)
    assert not res.ok and res.outcome == "failure"
    res = apprise_send("notaservice://nothing/here", MSG)
    assert not res.ok and res.outcome == "invalid_url" and res.permanent


def test_a_hung_receiver_is_bounded_by_plugin_timeouts():
    with socket.socket() as srv:  # accepts TCP connections (backlog) but never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        res = apprise_send(f"json://127.0.0.1:{port}/hook?cto=1&rto=1", MSG)
        elapsed = time.monotonic() - t0
    assert not res.ok and res.outcome == "failure"
    assert elapsed < 5
