"""Stage 5: put generated files on disk atomically; never write an empty rule set."""

from __future__ import annotations

import os
from pathlib import Path

from fleetmon.atomic import write_if_changed
from rulesync import HEADER


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
    written = [name for name, text in sorted(files.items()) if write_if_changed(out / name, text)]
    removed = []
    if remove_stale:
        for p in sorted(out.iterdir()):
            if p.is_file() and p.name not in files and p.name not in keep and p.suffix in (".yml", ".yaml") \
                    and is_generated(p):
                p.unlink()
                removed.append(p.name)
    return written, removed
