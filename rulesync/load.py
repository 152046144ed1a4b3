"""Stage 1: read rule YAML into plain Python data that remembers where each value came from.

The reading itself is fleetmon's shared loader (:mod:`fleetmon.yamldoc`): every mapping is a
``LocatedDict`` whose ``lines`` give the line of each key, so later stages can report
``file:line`` for any field. Duplicate keys, which PyYAML silently lets the last one win, and
malformed YAML become Problems here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmon import yamldoc
from fleetmon.yamldoc import LocatedDict, LocatedList
from rulesync.problems import Problem

__all__ = ["Document", "LocatedDict", "LocatedList", "load_file", "load_text"]


@dataclass
class Document:
    """One loaded rules file: its data (None when it could not be parsed) and load problems."""

    path: str
    data: Any = None
    problems: list[Problem] = field(default_factory=list)


def load_text(text: str, path: str = "<string>") -> Document:
    # Exactly one document: Prometheus ignores later ones, so yamldoc refuses them.
    loaded = yamldoc.load_text(text)
    doc = Document(path=path)
    if loaded.error is not None:
        line, msg = loaded.error
        hint = "fix the YAML syntax (indentation, quotes, colons)" if line else "fix the YAML syntax"
        doc.problems.append(Problem("error", path, line, "", msg, hint))
        return doc
    for key, line in loaded.duplicates:
        doc.problems.append(Problem("error", path, line, str(key), f"duplicate key {key!r}",
                                    "remove one of the two; YAML would silently keep the last"))
    doc.data = loaded.data
    return doc


def load_file(path: str | Path) -> Document:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Document(path=str(path), problems=[Problem("error", str(path), 0, "", f"cannot read: {exc}",
                                                          "check the path and that it is UTF-8 text")])
    return load_text(text, str(path))
