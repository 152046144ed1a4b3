"""fleetmon exporter: node_exporter-compatible host metrics and log-derived counters."""

__version__ = "0.1.0"
