"""`python -m rulesync ...` runs the CLI."""

from rulesync.cli import main

main()
