"""`python -m simulator`: the same command as `fleet-simulator`."""

from simulator.cli import simulate

if __name__ == "__main__":
    simulate()
