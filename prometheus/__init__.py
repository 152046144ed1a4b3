"""Prometheus and Alertmanager files shipped with fleetmon (installed as ``fleetmon.prometheus``).

Not code: this marker makes the folder a package so the wheel carries its files as package
data (see setup.py). Read them through ``fleetmon.resources``.
"""
