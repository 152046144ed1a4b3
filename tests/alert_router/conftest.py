"""Fixtures for alert_router tests: the real payloads and a real `alert-router serve` process."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness.servers import ManagedProcess, free_port

DATA = Path("/work/shared/data/alertmanager-0.25")
REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-Zq8-router-secret-91c2"


def load_payload(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="session")
def payloads() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in DATA.glob("am025_*.json") if "headers" not in p.name}


class RouterProcess(ManagedProcess):
    """``alert-router serve`` as a real subprocess (the console script's module)."""

    name = "alert-router"

    def __init__(self, workdir: Path, config: dict, env: dict[str, str] | None = None,
                 args: list[str] | None = None):
        super().__init__(workdir)
        self.args = list(args or [])
        self.port = free_port()
        self.config = {"listen": f"127.0.0.1:{self.port}", **config}
        self.config_path = self.workdir / "router.yml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.extra_env = env or {}
        # HTTPS routers: requests from the test trust the CA that signed the router's certificate.
        self.verify: str | bool = True

    @property
    def url(self) -> str:
        scheme = "https" if self.config.get("tls_cert_file") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "alert_router.cli", "serve", "--config", str(self.config_path),
                *self.args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO)
        env.update(self.extra_env)
        return env

    def ready(self) -> bool:
        return requests.get(f"{self.url}/readyz", timeout=1, verify=self.verify).status_code == 200

    def post(self, payload: Any, token: str | None = TOKEN, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        if isinstance(payload, bytes | str):
            headers.setdefault("Content-Type", "application/json")
            kw.setdefault("verify", self.verify)
            return requests.post(f"{self.url}/api/v1/alerts", data=payload, headers=headers, timeout=10, **kw)
        kw.setdefault("verify", self.verify)
        return requests.post(f"{self.url}/api/v1/alerts", json=payload, headers=headers, timeout=10, **kw)

    def deliveries(self, **params: Any) -> list[dict]:
        r = requests.get(f"{self.url}/api/v1/deliveries", params=params,
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, verify=self.verify)
        r.raise_for_status()
        return r.json()["deliveries"]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.url}/metrics", timeout=10, verify=self.verify).text
        total = 0.0
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


def write_router_files(workdir: Path, recipients: dict[str, list[str]], **config: Any) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    token = workdir / "token"
    token.write_text(TOKEN + "\n")
    rec = workdir / "recipients.yaml"
    rec.write_text(yaml.safe_dump({"recipients": recipients}))
    base = {
        "recipients": str(rec), "token_file": str(token), "state_dir": str(workdir / "state"),
        "retry": {"initial_delay": "0.3s", "max_delay": "1s", "max_age": "10m"},
        "reload_interval": 0.2, "poll_interval": 0.2,
    }
    base.update(config)
    return base


@pytest.fixture(scope="session")
def router_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A private CA and the router's server certificate (127.0.0.1, localhost)."""
    from fleetmon import tlscerts

    d = tmp_path_factory.mktemp("router-pki")
    ca = tlscerts.make_ca(d)
    return {"ca": ca, "router": tlscerts.issue(ca, d, "alert-router"), "dir": d}


@pytest.fixture
def router_factory(tmp_path: Path, router_pki: dict[str, Any]) -> Iterator[Callable[..., RouterProcess]]:
    """``router_factory(recipients, env=None, workdir=None, tls=False, **config)`` starts
    `alert-router serve`; with ``tls`` it serves HTTPS with ``router_pki``'s certificate."""
    started: list[RouterProcess] = []

    def make(recipients: dict[str, list[str]], env: dict[str, str] | None = None,
             workdir: Path | None = None, start: bool = True, args: list[str] | None = None,
             tls: bool = False, **config: Any) -> RouterProcess:
        wd = workdir or tmp_path / f"router-{len(started)}"
        if tls:
            config = {"tls_cert_file": str(router_pki["router"].cert),
                      "tls_key_file": str(router_pki["router"].key), **config}
        cfg = write_router_files(wd, recipients, **config)
        p = RouterProcess(wd, cfg, env=env, args=args)
        if tls:
            p.verify = str(router_pki["ca"].cert)
        started.append(p)
        if start:
            p.start(timeout=30)
        return p

    yield make
    for p in started:
        p.stop()
    for p in started:
        # Whatever the test did, the bearer token never reaches the log.
        assert TOKEN not in p.log_path.read_text(errors="replace"), f"token leaked into {p.log_path}"
