"""Each component README opens with a table of its files; this keeps those tables honest.

The house style (STYLE.md, "Layout") has every component folder open with a paragraph on what it
does and then a table of its files. A table nobody checks goes stale the first time a module is
added, renamed or split, so for every README below:

- its first markdown table must have ``file`` as the first column;
- every path written in backquotes in that column must exist, relative to the README's folder
  (a name with ``*`` must match at least one file; a name ending in ``/`` must be a folder);
- every ``.py`` file under the folder (subfolders included) must be named in that column.

Not required in the table: ``__main__.py`` (the ``python -m`` shim) and an ``__init__.py`` that
defines no name of its own (a package marker: a docstring, imports, ``__all__``, ``__version__``,
a lazy ``__getattr__``). An ``__init__.py`` that defines something, such as the collector table in
exporter/collectors/__init__.py, is a module like any other and must be listed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Folders whose README must open with a file table (issue 17: "Each component README opens with a
# table of its files"). grafana's table also says which dashboard each module builds.
FOLDERS = ("exporter", "discovery", "rulesync", "alert_router", "simulator", "fleetmon", "grafana", "prometheus")

_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CODE = re.compile(r"`([^`]+)`")


def _cells(line: str) -> list[str]:
    match = _ROW.match(line)
    return [c.strip() for c in match.group(1).split("|")] if match else []


def first_table(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header cells and (line number, cells) rows of the first markdown table in ``text``."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        if _ROW.match(lines[i]) and _SEPARATOR.match(lines[i + 1]):
            rows = []
            for j in range(i + 2, len(lines)):
                if not _ROW.match(lines[j]):
                    break
                rows.append((j + 1, _cells(lines[j])))
            return _cells(lines[i]), rows
    return [], []


def listed_names(rows: list[tuple[int, list[str]]]) -> list[tuple[int, str]]:
    """Every backquoted name in the first column, with its line."""
    return [(line, name) for line, cells in rows if cells for name in _CODE.findall(cells[0])]


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def defines_something(path: Path) -> bool:
    """True when a module defines a name of its own: more than a docstring, imports and dunders
    (``__all__``, ``__version__``, a lazy ``__getattr__``)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and _dunder(t.id) for t in targets):
                continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _dunder(node.name):
            continue
        return True
    return False


def must_be_listed(folder: Path) -> list[str]:
    """The .py files under ``folder`` (relative, with ``/``) that its README's table must name."""
    names = []
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        if path.name == "__main__.py":
            continue
        if path.name == "__init__.py" and not defines_something(path):
            continue
        names.append(path.relative_to(folder).as_posix())
    return names


def resolve(folder: Path, name: str) -> list[str]:
    """Files (relative to ``folder``) a table name stands for; empty when it names nothing."""
    name = name.strip()
    if "*" in name:
        return [p.relative_to(folder).as_posix() for p in sorted(folder.glob(name)) if p.is_file()]
    path = folder / name
    if name.endswith("/"):
        return [name] if path.is_dir() else []
    return [name] if path.is_file() else []


@pytest.mark.parametrize("folder", FOLDERS)
def test_readme_file_table(folder: str) -> None:
    base = REPO / folder
    readme = base / "README.md"
    rel = f"{folder}/README.md"
    assert readme.is_file(), f"{rel} is missing: every component folder opens with a README and a table of its files"

    header, rows = first_table(readme.read_text(encoding="utf-8"))
    assert header, f"{rel}: no markdown table; the first table must list the folder's files"
    assert header[0].lower() == "file", (
        f"{rel}: the first table's first column is {header[0]!r}, not 'file': "
        "the table of files comes before any other table")

    covered: set[str] = set()
    missing = []
    for line, name in listed_names(rows):
        found = resolve(base, name)
        if not found:
            missing.append(f"{rel}:{line}: `{name}` is listed but {folder}/{name} does not exist")
        covered.update(found)
    unlisted = [f"{rel}: {folder}/{name} is not listed in the file table" for name in must_be_listed(base)
                if name not in covered]
    assert not missing + unlisted, "\n".join(missing + unlisted)


def test_first_table_parser() -> None:
    text = "# x\n\ntext\n\n| file | what |\n|---|---|\n| `a.py`, `b/*.py` | two |\n| `c/` | dir |\n\n| n | m |\n|---|---|\n"
    header, rows = first_table(text)
    assert header == ["file", "what"]
    assert listed_names(rows) == [(7, "a.py"), (7, "b/*.py"), (8, "c/")]
