"""Test harness: real servers on loopback (see servers.py) and pytest fixtures (tests/conftest.py)."""

from .servers import (  # noqa: F401
    EXPOSITION,
    STARTED,
    AlertmanagerServer,
    HttpServer,
    HttpSink,
    ManagedProcess,
    PrometheusServer,
    SmtpSink,
    ZooKeeperEnsemble,
    ZooKeeperServer,
    free_port,
    port_open,
    wait_until,
)
