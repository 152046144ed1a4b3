"""``python -m exporter`` runs fleet-exporter."""

from exporter.cli import main

main()
