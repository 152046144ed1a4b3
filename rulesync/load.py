"""Stage 1: read rule YAML into plain Python data that remembers where each value came from.

Every mapping becomes a ``Located`` dict whose ``lines`` give the line of each key, so
later stages can report ``file:line`` for any field. Duplicate keys, which PyYAML
silently lets the last one win, are recorded as problems instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetmon import strictyaml
from rulesync.problems import Problem


class LocatedDict(dict):
    """A mapping with the 1-based line of itself (``line``) and of each key (``lines``)."""

    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LocatedList(list):
    """A sequence with its own line and the line of each item (``lines``)."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


# libyaml's parser when present (several times faster); the constructors below are ours either way.
# Only `true`/`false` are booleans (not YAML 1.1's yes/no/on/off): anything else reaches the
# validator as a string and is reported with its field.
_Base = strictyaml.StrictCSafeLoader


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader (no arbitrary objects) that records lines and duplicate keys."""

    duplicates: list[tuple[Any, int]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:  # type: ignore[override]
        self.flatten_mapping(node)
        out = LocatedDict()
        out.line = node.start_mark.line + 1
        out.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found unhashable key", key_node.start_mark) from None
            if key in out:
                self.duplicates.append((key, key_node.start_mark.line + 1))
            out[key] = self.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LocatedList:  # type: ignore[override]
        out = LocatedList(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.lines = [child.start_mark.line + 1 for child in node.value]
        return out


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_sequence)


@dataclass
class Document:
    """One loaded rules file: its data (None when it could not be parsed) and load problems."""

    path: str
    data: Any = None
    problems: list[Problem] = field(default_factory=list)


def load_text(text: str, path: str = "<string>") -> Document:
    doc = Document(path=path)
    try:
        loader = _Loader(text)
        loader.duplicates = []
        try:
            # Exactly one document: Prometheus ignores later ones, so do we refuse them.
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        doc.problems.append(Problem("error", path, line, "", f"malformed YAML: {msg}",
                                    "fix the YAML syntax (indentation, quotes, colons)"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem("error", path, 0, "", f"malformed YAML: {exc}", "fix the YAML syntax"))
        return doc
    for key, line in loader.duplicates:
        doc.problems.append(Problem("error", path, line, str(key), f"duplicate key {key!r}",
                                    "remove one of the two; YAML would silently keep the last"))
    doc.data = data
    return doc


def load_file(path: str | Path) -> Document:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Document(path=str(path), problems=[Problem("error", str(path), 0, "", f"cannot read: {exc}",
                                                          "check the path and that it is UTF-8 text")])
    return load_text(text, str(path))
