"""YAML config files read into plain data that remembers the line of every key and item.

Every mapping becomes a ``LocatedDict`` and every sequence a ``LocatedList``; ``line_at(data,
path)`` gives the line for any path a validator reports, so each problem reads
``file:line: key: problem``. Duplicate keys (PyYAML silently keeps the last) are recorded, and
only ``true``/``false`` are booleans (``fleetmon.strictyaml``). Used by every config loader:
rules.yaml (rulesync), the exporter config, the router config and its recipients file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetmon import strictyaml


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
class Loaded:
    """One YAML document: its data (None when empty or unparsable) and what stopped or worried the load.

    ``error`` is ``(line, message)`` for malformed YAML (line 0 when unknown); ``duplicates``
    lists ``(key, line)`` for every key given twice in one mapping.
    """

    data: Any = None
    error: tuple[int, str] | None = None
    duplicates: list[tuple[Any, int]] = field(default_factory=list)


def load_text(text: str) -> Loaded:
    """Parse exactly one YAML document (later ones are refused, as Prometheus ignores them)."""
    out = Loaded()
    try:
        loader = _Loader(text)
        loader.duplicates = []
        try:
            node = loader.get_single_node()
            out.data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        out.error = (mark.line + 1 if mark else 0, f"malformed YAML: {msg}")
        out.data = None
        return out
    except yaml.YAMLError as exc:
        out.error = (0, f"malformed YAML: {exc}")
        return out
    out.duplicates = loader.duplicates
    return out


def line_at(data: Any, path: tuple[Any, ...]) -> int:
    """The line of the deepest key or item of ``path`` found in ``data`` (1 when none is)."""
    line = getattr(data, "line", 0) or 1
    node = data
    for step in path:
        if isinstance(node, LocatedDict) and step in node:
            line = node.line_of(step) or line
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node):
            line = node.line_of(step) or line
            node = node[step]
        else:
            break
    return line


def value_at(data: Any, path: tuple[Any, ...], default: Any = None) -> Any:
    """The value at ``path`` (keys and list indices) in ``data``; ``default`` where there is none."""
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return default
    return data


def keyname(path: tuple[Any, ...]) -> str:
    """``("logs", 0, "type")`` -> ``logs[0].type``."""
    s = ""
    for p in path:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s
