"""The published config schemas (docs/schemas/) and every file that points an editor at one.

Each schema is valid draft-07 for editors (checked with ``jsonschema``, the reference
implementation) and is what the loaders validate with (``fleetmon.schema``, fastjsonschema).
Every shipped YAML file whose first line is a ``yaml-language-server`` modeline must validate
against the schema it names with both, so an example can never drift from its schema.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import fastjsonschema
import jsonschema
import pytest

from fleetmon import schema, yamldoc

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "docs" / "schemas"
MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S+)")


def shipped_yaml() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.yml", "*.yaml"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    return [REPO / p for p in out]


def with_modeline() -> list[tuple[Path, Path]]:
    found = []
    for path in shipped_yaml():
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        m = MODELINE.match(first[0]) if first else None
        if m:
            found.append((path, (path.parent / m.group(1)).resolve()))
    return found


@pytest.mark.parametrize("name", schema.NAMES)
def test_published_schema_is_valid_draft7(name):
    path = SCHEMAS / f"{name}.schema.json"
    doc = json.loads(path.read_text())
    jsonschema.Draft7Validator.check_schema(doc)
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert doc["$id"].endswith(f"/{name}.schema.json")
    assert schema.schema(name) == doc  # the installed copy is the published one


def test_every_schema_is_named_and_every_name_has_a_modelined_example():
    published = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert published == set(schema.NAMES)
    pointed = {target.name.removesuffix(".schema.json") for _, target in with_modeline()}
    assert pointed == set(schema.NAMES), f"no shipped example points at {set(schema.NAMES) - pointed}"


@pytest.mark.parametrize("path, target", with_modeline(), ids=lambda v: str(v.relative_to(REPO)) if isinstance(v, Path) else v)
def test_modelined_file_validates(path, target):
    assert target.parent == SCHEMAS and target.exists(), f"{path}: modeline points at {target}"
    name = target.name.removesuffix(".schema.json")
    loaded = yamldoc.load_text(path.read_text(encoding="utf-8"))
    assert loaded.error is None and not loaded.duplicates
    data = json.loads(json.dumps(loaded.data))  # plain dicts and lists for jsonschema
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(json.loads(target.read_text())).iter_errors(data)]
    assert errors == []
    assert schema.check(name, loaded.data) == []


@pytest.mark.parametrize("name", schema.NAMES)
def test_generated_validator_is_in_step_with_its_schema(name):
    # fleetmon/validators/<name>.py is what every process runs; `make schemas` regenerates it.
    path = REPO / "fleetmon" / "validators" / f"{name.replace('-', '_')}.py"
    shipped, fresh = path.read_text(encoding="utf-8"), schema.generated_source(name)
    digest = [line for line in fresh.splitlines() if line.startswith("SCHEMA_SHA256 = ")]
    assert digest and digest[0] in shipped.splitlines(), f"{path.relative_to(REPO)} is stale: run `make schemas`"
    # The code itself must be what `make schemas` writes, when this machine has the fastjsonschema
    # it was generated with (another release may word its code differently; the digest above
    # still ties the file to the schema, and the loader never uses a stale one).
    if f"fastjsonschema {fastjsonschema.VERSION}." in shipped.splitlines()[1]:
        assert shipped == fresh, f"{path.relative_to(REPO)} is not what `make schemas` writes"


def test_a_stale_validator_is_not_used(monkeypatch, caplog):
    # A schema edited without `make schemas` must still be enforced as edited, not as generated.
    edited = schema.schema("router")
    edited["properties"]["listen"]["x-error"] = "edited message"
    monkeypatch.setattr(schema, "_schema_text", lambda name: json.dumps(edited))
    schema._validator.cache_clear()
    try:
        problems = schema.check("router", {"listen": "nope"})
    finally:
        schema._validator.cache_clear()
    assert any(p.key == "listen" and p.message == "edited message" for p in problems)
    assert "make schemas" in caplog.text
