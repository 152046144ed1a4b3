"""A stand-in monitored host for tests: serves /metrics and registers itself with a Registrar.

Usage: python -m tests.discovery.fake_host ZK ROOT NAME PORT [k=v ...]. Runs until SIGTERM
(then stops cleanly) or SIGKILL (a crash: the liveness node lingers until the session expires).
"""

from __future__ import annotations

import signal
import sys
import threading

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from discovery.registry import Registrar


def main() -> None:
    zk, root, name, port, *labels = sys.argv[1:]
    registry = CollectorRegistry()
    Gauge("fake_host_up", "A constant so the scrape has a sample.", registry=registry).set(1)
    server, _ = start_http_server(int(port), addr="127.0.0.1", registry=registry)
    reg = Registrar(zk, root=root, session_timeout=2.0, agent="fake-host").start()
    reg.add(name, f"127.0.0.1:{port}", dict(kv.split("=", 1) for kv in labels))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("registered" if reg.wait(30) else "not registered", flush=True)
    done.wait()
    reg.stop()
    server.shutdown()


if __name__ == "__main__":
    main()
