"""The fleet simulator: N node_exporter-shaped virtual hosts served from one process.

Not part of what runs on a host: the local stack, the end-to-end tests and the benchmarks use
it to stand in for a fleet. ``fleet-simulator`` (or ``python -m simulator``) runs it; the
exporter does not import it (it left ``fleet-exporter`` in #16).
"""

from typing import Any

__all__ = ["simulate"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m simulator.sessions` (a gevent worker) can monkey-patch the
    # standard library before the command's imports create threads and locks.
    if name == "simulate":
        from simulator.cli import simulate

        return simulate
    raise AttributeError(name)
