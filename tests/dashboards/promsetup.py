"""Prometheus set-ups shared by the dashboard tests: shards loading our recording rules, and
the global Prometheus running prometheus/global.yml as shipped (intervals shortened)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.harness.servers import PrometheusServer

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "prometheus"
SHARD_RULES = ("recording.yml", "fleet.yml")


def copy_rules(workdir: Path, names: tuple[str, ...]) -> list[str]:
    (workdir / "rules").mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PROM / "rules" / name, workdir / "rules" / name)
    return [f"rules/{n}" for n in names]


def shard_config(shard: str, replica: str, scrape_configs: list[dict], extra_rules: list[str] = ()) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                   "external_labels": {"shard": shard, "replica": replica}},
        "rule_files": [f"rules/{n}" for n in SHARD_RULES] + list(extra_rules),
        "scrape_configs": scrape_configs,
    }


def start_shard(factory: Callable[..., PrometheusServer], tmp: Path, shard: str, replica: str,
                scrape_configs: Callable[[PrometheusServer], list[dict]],
                extra_rules: dict[str, str] | None = None, extra_args: list[str] | None = None,
                ) -> PrometheusServer:
    """A shard Prometheus with our rules; ``scrape_configs(server)`` may use the server's own port."""
    workdir = tmp / f"shard-{shard}-{replica}"
    copy_rules(workdir, SHARD_RULES)
    for name, text in (extra_rules or {}).items():
        (workdir / "rules" / name).write_text(text)
    server = factory({}, name=f"prometheus-{shard}-{replica}", workdir=workdir, start=False,
                     extra_args=extra_args)
    server.write_config(shard_config(shard, replica, scrape_configs(server),
                                     [f"rules/{n}" for n in (extra_rules or {})]))
    return server.start()


def global_config(interval: str = "1s") -> dict:
    """prometheus/global.yml as shipped, with test intervals."""
    cfg = yaml.safe_load((PROM / "global.yml").read_text())
    cfg["global"].update({"scrape_interval": interval, "scrape_timeout": interval,
                          "evaluation_interval": interval})
    for job in cfg["scrape_configs"]:
        job["scrape_interval"] = interval
        job["scrape_timeout"] = interval
    return cfg


def start_global(factory: Callable[..., PrometheusServer], tmp: Path, shards: list[PrometheusServer],
                 labels: list[dict[str, str]], extra_args: list[str] | None = None) -> PrometheusServer:
    """The global Prometheus federating ``shards``; its file_sd file as `fleet-discovery global`
    writes it (a JSON list of {targets, labels})."""
    workdir = tmp / "global"
    copy_rules(workdir, ("fleet.yml", "global-alerts.yml"))
    (workdir / "targets").mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [f"127.0.0.1:{s.port}"], "labels": lab} for s, lab in zip(shards, labels, strict=True)]
    (workdir / "targets" / "global-shards.json").write_text(json.dumps(groups))
    return factory(global_config(), name="prometheus-global", workdir=workdir, extra_args=extra_args)
