"""What one TLS connection to ZooKeeper costs a client: kazoo's way vs fleetmon.zk's.

A reconnection storm (leader killed under thousands of per-host sessions) is that many
connection attempts at once, so the CPU of one attempt decides how long the fleet stays
cut off. Against a secured standalone ZooKeeper (tests.harness, TLS client port), N
sequential connects + handshakes each way, plus the context set-up alone:

- ``kazoo``: ``kazoo.handlers.utils.create_tcp_connection(use_ssl=True, ca=...)``, a new
  SSLContext per attempt with the system CA bundle loaded;
- ``fleetmon``: ``fleetmon.zk``'s handler, one shared context that trusts fleetmon's CA,
  with a full handshake (no session kept) and resuming the member's last TLS session;
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

from bench.scale_common import cpu_seconds
from fleetmon import zk as fzk
from fleetmon.zk import TlsAwareHandler, load_security
from tests.harness.servers import ZooKeeperServer


def _per_op_ms(fn, n: int, server_pid: int) -> tuple[float, float, float]:
    """Wall, client CPU and server CPU milliseconds per call of ``fn``."""
    s0, c0, t = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    wall, cpu = time.perf_counter() - t, time.process_time() - c0
    return wall / n * 1000, cpu / n * 1000, (cpu_seconds(server_pid) - s0) / n * 1000


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

            def fleetmon_full() -> None:
                fzk._sessions.clear()  # no session to resume: a full handshake
                fleetmon_connect()

            def plain_connect() -> None:
                socket.create_connection(addr, timeout=10).close()

            fleetmon_connect()  # builds the shared context once, as a process does
            pid = zk.proc.pid
            rows = [
                ("kazoo context (new SSLContext + system CAs + CA)", _per_op_ms(kazoo_ctx, n, pid)),
                ("kazoo connect + TLS handshake", _per_op_ms(kazoo_connect, n, pid)),
                ("fleetmon.zk connect + full TLS handshake (shared context)", _per_op_ms(fleetmon_full, n, pid)),
                ("fleetmon.zk connect + resumed TLS session", _per_op_ms(fleetmon_connect, n, pid)),
                ("plain TCP connect (reference)", _per_op_ms(plain_connect, n, pid)),
            ]
        finally:
            zk.stop()
    print(f"{n} sequential connects to a TLS ZooKeeper 3.8 client port, load {os.getloadavg()[0]:.1f}")
    print(f"  {'':55s} {'wall ms':>8s} {'client CPU ms':>14s} {'ZooKeeper CPU ms':>17s}")
    for name, (wall, cpu, server) in rows:
        print(f"  {name:55s} {wall:8.2f} {cpu:14.2f} {server:17.2f}")


if __name__ == "__main__":
    main()
