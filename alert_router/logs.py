"""Logging for the router: every record is scrubbed of known secrets before it is written."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from fleetmon.secrets import scrub


class SecretFilter(logging.Filter):
    """Replace known secret strings (token, expanded recipient URLs and their parts) and
    anything credential-shaped in a URL with ``***``, in the message and any traceback."""

    def __init__(self, secrets: Callable[[], frozenset[str] | set[str]]):
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted(self._secrets(), key=len, reverse=True)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must still be logged
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub(text, secrets)
        record.args = None
        return True


def setup_logging(level: str, secrets: Callable[[], frozenset[str] | set[str]]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Apprise logs every send at INFO; our own delivery log line already says it, masked.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.INFO)
