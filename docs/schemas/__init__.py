"""The config files' JSON Schemas (installed as ``fleetmon.schemas``).

Not code: this marker makes the folder a package so the wheel carries the schemas as package
data (see setup.py). Read them through ``fleetmon.schema``.
"""
