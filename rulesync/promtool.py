"""promtool as the reference parser and test runner (the same code Prometheus runs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml


class PromtoolMissing(RuntimeError):
    pass


def binary() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path or not os.access(path, os.X_OK):
        raise PromtoolMissing("promtool not found on PATH (Debian package `prometheus`, or set PROMTOOL)")
    return path


def run(args: list[str], timeout: float = 300.0, cwd: str | None = None) -> tuple[int, str]:
    # One stream, so each "Unit Testing: FILE" header stays next to its own failures.
    proc = subprocess.run([binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout.strip()


def check_rules(paths: list[str | Path]) -> tuple[bool, str]:
    """`promtool check rules` on files; (ok, output with only the failure lines when not ok)."""
    if not paths:
        return True, ""
    rc, out = run(["check", "rules", *map(str, paths)])
    if rc == 0:
        return True, out
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("Checking ")
             and ln.strip() != "FAILED:" and not ln.startswith("  SUCCESS")]
    return False, "\n".join(lines)


_RULE_ERR = re.compile(r'rule (\d+), "[^"]*": (.*)$')


def check_exprs(exprs: list[str]) -> dict[int, str]:
    """Parse many expressions with one promtool run: {index: parser message} for the bad ones."""
    doc = {"groups": [{"name": "check", "rules": [{"alert": f"R{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.TemporaryDirectory(prefix="rulesync-check-") as d:
        p = Path(d) / "exprs.yml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        ok, out = check_rules([p])
    if ok:
        return {}
    errors: dict[int, str] = {}
    for line in out.splitlines():
        m = _RULE_ERR.search(line)
        if m:
            errors[int(m.group(1)) - 1] = m.group(2)
    if not errors:  # not mapped to a rule: report against the first so it is never lost
        errors[0] = out
    return errors


def test_rules(test_files: list[Path], workers: int = 2, per_run: int = 200) -> list[tuple[list[Path], int, str]]:
    """`promtool test rules` over many test files, in batches run ``workers`` at a time.

    Returns (files, returncode, output) per batch.
    """
    batches = [test_files[i:i + per_run] for i in range(0, len(test_files), per_run)]

    def one(batch: list[Path]) -> tuple[list[Path], int, str]:
        rc, out = run(["test", "rules", *map(str, batch)], timeout=600)
        return batch, rc, out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, batches))
