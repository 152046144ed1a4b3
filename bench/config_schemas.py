"""What validating a config against its JSON Schema costs a process, three ways, same run.

Every fleetmon process validates its config at start (the exporter on every host), so the
validator's memory stays for the process's life. For each shipped example (the files whose
modeline names a schema), one fresh interpreter per way and run, after importing what the
exporter imports anyway (PyYAML, prometheus_client, kazoo, click):

- ``generated``: fleetmon.schema as shipped (fastjsonschema's code generated ahead of time by
  ``make schemas``, byte-compiled as an installed package is);
- ``compiled at start``: the same schema compiled by fastjsonschema in the process (reference);
- ``jsonschema``: the reference implementation, Draft7Validator.iter_errors (reference).

Prints the RSS the process grew by (after glibc's malloc_trim, so only what it keeps) and the
time of the first validation including imports, medians of ``--runs``. Run from the repo root:
``.venv/bin/python -m bench.config_schemas [--runs 5]``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import ctypes, gc, json, sys, time
import yaml, prometheus_client, kazoo.client, click
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
way, name, path = sys.argv[1:4]
base = rss(); t = time.perf_counter()
from fleetmon import schema, yamldoc
data = yamldoc.load_text(open(path).read()).data
if way == "generated":
    problems = schema.check(name, data)
elif way == "compiled":
    problems = schema.check_against(schema.compile_schema(schema.schema(name)), data)
else:
    import jsonschema
    problems = list(jsonschema.Draft7Validator(schema.schema(name)).iter_errors(json.loads(json.dumps(data))))
took = time.perf_counter() - t
assert not problems, problems
gc.collect(); ctypes.CDLL("libc.so.6").malloc_trim(0)
print(json.dumps({"rss": rss() - base, "ms": took * 1000}))
"""
WAYS = ("generated", "compiled", "jsonschema")


def examples() -> list[tuple[str, Path]]:
    sys.path.insert(0, str(REPO))
    from tests.test_schemas import with_modeline

    return [(target.name.removesuffix(".schema.json"), path) for path, target in with_modeline()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    compileall.compile_dir(REPO / "fleetmon", quiet=1)  # as installed: dh-virtualenv/pip byte-compile
    print(f"{'example (schema)':58} {'way':18} {'RSS kept':>9} {'1st check':>10}")
    for name, path in examples():
        for way in WAYS:
            runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE, way, name, str(path)], cwd=REPO,
                                              check=True, capture_output=True, text=True).stdout)
                    for _ in range(args.runs)]
            rss = statistics.median(r["rss"] for r in runs)
            ms = statistics.median(r["ms"] for r in runs)
            label = f"{path.relative_to(REPO)} ({name})" if way == WAYS[0] else ""
            way_name = {"compiled": "compiled at start"}.get(way, way)
            print(f"{label:58} {way_name:18} {rss:7.1f} MiB {ms:7.1f} ms")


if __name__ == "__main__":
    main()
