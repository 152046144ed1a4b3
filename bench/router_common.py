"""Shared pieces of the alert_router benchmarks: a real router process and payload makers."""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import uuid
from pathlib import Path

import yaml

from tests.harness.servers import ManagedProcess, free_port

DATA = Path("/work/shared/data/alertmanager-0.25")
REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-" + uuid.uuid4().hex


def grouped_payload() -> dict:
    return json.loads((DATA / "am025_grouped_firing_25_alerts.json").read_text())


def unique_copy(base: dict, n: int) -> dict:
    """``base`` with fresh fingerprints and group key, so every POST stores new rows."""
    doc = copy.deepcopy(base)
    doc["groupKey"] = f"bench-{n}"
    for i, a in enumerate(doc["alerts"]):
        a["fingerprint"] = f"{n:08x}{i:08x}"
    return doc


def load() -> str:
    import os

    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"n={len(ms)} p50={statistics.median(ms):.1f}ms p95={percentile(ms, 95):.1f}ms "
            f"p99={percentile(ms, 99):.1f}ms max={max(ms):.1f}ms")


class Router(ManagedProcess):
    name = "alert-router"

    def __init__(self, recipients: dict, workdir: Path | None = None, tls: bool = False, **config):
        super().__init__(workdir or Path(tempfile.mkdtemp(prefix="router-bench-")))
        self.port = free_port()
        self.verify: str | bool = True
        if tls:  # HTTPS served by the router (cheroot), certificate from a private CA
            from fleetmon import tlscerts

            ca = tlscerts.make_ca(self.workdir / "tls")
            pair = tlscerts.issue(ca, self.workdir / "tls", "alert-router")
            config = {"tls_cert_file": str(pair.cert), "tls_key_file": str(pair.key), **config}
            self.verify = str(ca.cert)
        self.scheme = "https" if tls else "http"
        (self.workdir / "token").write_text(TOKEN)
        (self.workdir / "recipients.yaml").write_text(yaml.safe_dump({"recipients": recipients}))
        cfg = {"listen": f"127.0.0.1:{self.port}", "recipients": str(self.workdir / "recipients.yaml"),
               "token_file": str(self.workdir / "token"), "state_dir": str(self.workdir / "state"), **config}
        self.config_path = self.workdir / "router.yml"
        self.config_path.write_text(yaml.safe_dump(cfg))

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        import sys

        return [sys.executable, "-m", "alert_router.cli", "serve", "--config", str(self.config_path),
                "--log-level", "WARNING"]

    def env(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO)
        return env

    def ready(self) -> bool:
        import requests

        return requests.get(f"{self.url}/readyz", timeout=1, verify=self.verify).status_code == 200
