"""setuptools glue for what setup.cfg cannot say: the repo's data folders as package data.

The top-level ``prometheus/`` and ``grafana/`` folders and ``docs/schemas/`` (the config files'
JSON Schemas, published for editors and read by ``fleetmon.schema``) stay where operators, Prometheus and the
tests expect them in a checkout, and are also shipped inside the wheel as the packages
``fleetmon.prometheus``, ``fleetmon.grafana`` and ``fleetmon.schemas`` (a ``package_dir`` mapping: the files are copied,
never symlinked, so wheels, sdists and editable installs all carry real files). Code reads them
through ``fleetmon.resources`` (importlib.resources), never through ``parents[N]``.
Everything else (metadata, dependencies, extras, entry points) is in setup.cfg.
"""

from setuptools import find_packages, setup

# Installed package name -> folder in this repo.
DATA_PACKAGES = {
    "fleetmon.prometheus": "prometheus",
    "fleetmon.grafana": "grafana",
    "fleetmon.schemas": "docs/schemas",
}
COMPONENTS = ("fleetmon", "exporter", "discovery", "rulesync", "alert_router", "simulator")

setup(
    packages=find_packages(include=[p for c in COMPONENTS for p in (c, f"{c}.*")]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
)
