"""What one TLS connection to ZooKeeper costs a client: kazoo's way vs fleetmon.zk's.

A reconnection storm (leader killed under thousands of per-host sessions) is that many
connection attempts at once, so the CPU of one attempt decides how long the fleet stays
cut off. Against a secured standalone ZooKeeper (tests.harness, TLS client port), N
sequential connects + handshakes each way, plus the context set-up alone:

- ``kazoo``: ``kazoo.handlers.utils.create_tcp_connection(use_ssl=True, ca=...)``, a new
  SSLContext per attempt with the system CA bundle loaded;
- ``fleetmon``: ``fleetmon.zk``'s handler, one shared context that trusts fleetmon's CA;
- ``plain``: a TCP connect to the same port without TLS (the floor).

    .venv/bin/python -m bench.zk_tls_connect [--connects 300]

This machine (2 cores) is shared with other engineers' tests: figures are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import tempfile
import time
from pathlib import Path

from kazoo.handlers import utils

from fleetmon.zk import TlsAwareHandler, load_security
from tests.harness.servers import ZooKeeperServer


def _per_op_ms(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connects", type=int, default=300)
    args = ap.parse_args()
    n = args.connects
    with tempfile.TemporaryDirectory(prefix="bench-zktls-") as tmp:
        zk = ZooKeeperServer(Path(tmp) / "zk").start()
        try:
            ca = load_security("registrar").ca
            assert ca
            addr = ("127.0.0.1", zk.port)
            handler = TlsAwareHandler()

            def kazoo_ctx() -> None:
                c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                c.load_default_certs(ssl.Purpose.SERVER_AUTH)
                c.load_verify_locations(ca)

            def kazoo_connect() -> None:
                utils.create_tcp_connection(socket, addr, hostname="127.0.0.1", timeout=10, use_ssl=True,
                                            ca=ca).close()

            def fleetmon_connect() -> None:
                handler.create_connection(addr, hostname="127.0.0.1", timeout=10, use_ssl=True, ca=ca).close()

            def plain_connect() -> None:
                socket.create_connection(addr, timeout=10).close()

            fleetmon_connect()  # builds the shared context once, as a process does
            rows = [
                ("kazoo context (new SSLContext + system CAs + CA)", _per_op_ms(kazoo_ctx, n)),
                ("kazoo connect + TLS handshake", _per_op_ms(kazoo_connect, n)),
                ("fleetmon.zk connect + TLS handshake (shared context)", _per_op_ms(fleetmon_connect, n)),
                ("plain TCP connect (reference)", _per_op_ms(plain_connect, n)),
            ]
        finally:
            zk.stop()
    print(f"{n} sequential connects to a TLS ZooKeeper 3.8 client port, load {os.getloadavg()[0]:.1f}")
    for name, ms in rows:
        print(f"  {name:55s} {ms:7.2f} ms  ({1000 / ms:6.0f}/s)")


if __name__ == "__main__":
    main()
