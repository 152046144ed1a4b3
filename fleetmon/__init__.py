"""Shared helpers for every fleetmon component: atomic files, ZooKeeper clients, logging."""
