"""Shared fixtures: real ZooKeeper, Prometheus, Alertmanager and SMTP/HTTP sinks.

Servers are started on free loopback ports in temp dirs and stopped by PID. When a
test fails, the tail of every server log it started is attached to its report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import servers
from tests.harness.servers import (
    AlertmanagerServer,
    HttpSink,
    PrometheusServer,
    SmtpSink,
    ZooKeeperEnsemble,
    ZooKeeperServer,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in servers.STARTED:
            report.sections.append((f"server log: {proc.name} ({proc.log_path})", proc.log_tail(80)))


@pytest.fixture(autouse=True)
def _reset_started() -> Iterator[None]:
    # Session-scoped servers stay listed; per-test ones are forgotten after each test.
    before = list(servers.STARTED)
    yield
    servers.STARTED[:] = [p for p in servers.STARTED if p in before or p.running()]


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One standalone ZooKeeper for the session; tests isolate themselves with ``zk_root``."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def zk_root() -> str:
    """A fresh znode path per test, so tests sharing the session ZooKeeper never collide."""
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def zk_client(zk_server: ZooKeeperServer):
    """An admin client: tests inspect and plant znodes anywhere (components use their own roles)."""
    from fleetmon.zk import make_client

    client = make_client(zk_server.hosts, role="admin")
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_ensemble(tmp_path: Path) -> Iterator[ZooKeeperEnsemble]:
    """A fresh 3-node ensemble for fault tests (kill the leader, stop them all)."""
    ens = ZooKeeperEnsemble(tmp_path / "ensemble", size=3)
    ens.start()
    yield ens
    ens.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_factory(config, extra_args=None, name=None, workdir=None)`` starts a real
    Prometheus; all are stopped after the test."""
    started: list[PrometheusServer] = []

    def make(config: dict | str, extra_args: list[str] | None = None, name: str | None = None,
             workdir: Path | None = None, start: bool = True) -> PrometheusServer:
        wd = workdir or tmp_path / f"prometheus-{len(started)}"
        p = PrometheusServer(wd, config, extra_args=extra_args, name=name)
        started.append(p)
        if start:
            p.start()
        return p

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., AlertmanagerServer]]:
    started: list[AlertmanagerServer] = []

    def make(config: dict | str, extra_args: list[str] | None = None) -> AlertmanagerServer:
        am = AlertmanagerServer(tmp_path / f"alertmanager-{len(started)}", config, extra_args=extra_args)
        started.append(am)
        return am.start()

    yield make
    for am in started:
        am.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink
