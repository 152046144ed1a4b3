"""The whole pipeline in one call: load -> validate -> generate."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rulesync.generate import generate
from rulesync.load import load_file
from rulesync.model import Spec
from rulesync.problems import Problem
from rulesync.validate import validate


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories contribute their *.yaml / *.yml files, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        else:
            out.append(p)
    return out


def compile_paths(paths: Iterable[str | Path], scrape_interval: float | None = None,
                  check_expr: bool = True, use_recorded: bool | None = None,
                  ) -> tuple[Spec | None, dict[str, str], list[Problem]]:
    docs = [load_file(p) for p in expand(paths)]
    spec, problems = validate(docs, scrape_interval=scrape_interval, check_expr=check_expr,
                              use_recorded=use_recorded)
    if spec is None:
        return None, {}, problems
    return spec, generate(spec), problems
