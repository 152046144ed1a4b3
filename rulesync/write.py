"""Stage 5: put generated files on disk atomically; never write an empty rule set."""

from __future__ import annotations

import os
from pathlib import Path

from fleetmon.atomic import write_if_changed
from rulesync import HEADER

# Files read only by the alert router, holding recipient addresses: owner-only, like every
# file that may carry a secret. Rule files stay world-readable for Prometheus.
PRIVATE_FILES = frozenset({"recipients.yaml"})


def mode_of(name: str) -> int:
    return 0o600 if name in PRIVATE_FILES else 0o644


class EmptyOutput(ValueError):
    pass


def is_generated(path: Path) -> bool:
    """Only files that start with our header are ours to replace or delete."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(HEADER)).decode("utf-8", "replace") == HEADER
    except OSError:
        return False


def write_files(out_dir: str | os.PathLike[str], files: dict[str, str], remove_stale: bool = True,
                keep: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Write ``files`` into ``out_dir``; delete our other generated files there.

    Returns (written, removed) file names. Raises EmptyOutput when there is nothing to write:
    an empty rules directory would silently disable every alert.
    """
    if not files or not any(t.strip() for t in files.values()):
        raise EmptyOutput("refusing to write an empty rule set (it would remove every alert)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        if write_if_changed(out / name, text, mode_of(name)):
            written.append(name)
        elif (out / name).stat().st_mode & 0o777 != mode_of(name):
            os.chmod(out / name, mode_of(name))  # an older run wrote it with a wider mode
    removed = []
    if remove_stale:
        for p in sorted(out.iterdir()):
            if p.is_file() and p.name not in files and p.name not in keep and p.suffix in (".yml", ".yaml") \
                    and is_generated(p):
                p.unlink()
                removed.append(p.name)
    return written, removed
