"""The fleet simulator: N node_exporter-shaped virtual hosts served from one process.

Not part of what runs on a host: the local stack, the end-to-end tests and the benchmarks use
it to stand in for a fleet. ``fleet-simulator`` (or ``python -m simulator``) runs it;
``fleet-exporter simulate`` is the same command, present when this package is installed.
"""

from simulator.cli import simulate

__all__ = ["simulate"]
