"""``python -m fleetmon.stack``: the Makefile's ``run``, ``stop`` and ``status``."""

import sys

from fleetmon.stack.cli import main

sys.exit(main())
