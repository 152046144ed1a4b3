"""Render prometheus/shard.yml.tmpl (shipped as package data): the Prometheus config of one shard replica."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from fleetmon.resources import prometheus_file

TEMPLATE = prometheus_file("shard.yml.tmpl")


def render_shard_config(shard: str, replica: str, targets_file: str, sidecar_address: str,
                        prometheus_address: str = "127.0.0.1:9090", rules_dir: str = "/etc/fleetmon/rules",
                        alertmanagers: list[str] | None = None, scrape_interval: str = "15s",
                        scrape_timeout: str | None = None, evaluation_interval: str | None = None,
                        template: str | Path | None = None, shipped_rules_glob: str = "shard-rules/*.yml") -> str:
    """The rendered YAML text. Relative paths resolve against the rendered file's directory. Values are inserted JSON-quoted (JSON is YAML), so no value
    can break the document's structure."""
    text = Path(template).read_text() if template else TEMPLATE.read_text()
    values = {
        "SHARD": shard, "REPLICA": replica, "TARGETS_FILE": str(targets_file),
        "SIDECAR_ADDRESS": sidecar_address, "PROMETHEUS_ADDRESS": prometheus_address,
        "RULES_GLOB_YML": f"{rules_dir.rstrip('/')}/*.yml", "RULES_GLOB_YAML": f"{rules_dir.rstrip('/')}/*.yaml",
        "ALERTMANAGERS": list(alertmanagers or []), "SCRAPE_INTERVAL": scrape_interval,
        "SCRAPE_TIMEOUT": scrape_timeout or scrape_interval,
        "EVALUATION_INTERVAL": evaluation_interval or scrape_interval,
        "SHIPPED_RULES_GLOB": shipped_rules_glob,
    }
    return Template(text).substitute({k: json.dumps(v) for k, v in values.items()})
