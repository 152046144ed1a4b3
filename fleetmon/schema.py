"""Config schemas: each config file's shape is declared once, as a JSON Schema, and checked here.

The schemas live in ``docs/schemas/`` (installed as ``fleetmon.schemas``): the same files editors
load through the ``# yaml-language-server: $schema=...`` line at the top of each example, and
the ones every loader validates against. This module checks them with fastjsonschema (plain
Python, no dependencies) and turns every violation into a ``SchemaProblem`` with the path, the
key as users write it (``logs[0].type``) and a message in our words.

Validators are generated ahead of time (``make schemas`` writes ``fleetmon/validators/<name>.py``
with fastjsonschema's ``compile_to_code``; a test keeps them in step with the schemas). Measured
by ``python -m bench.config_schemas`` for the exporter's config: the generated validator leaves a
process 1.7 MiB bigger and checks in 12 ms; compiling the schema at start-up, 3.6 MiB and 50 ms
(the compiler's scratch fragments the heap); ``jsonschema``, 5.1 MiB and 54 ms. The exporter runs
on every host for months, so it gets the cheapest. A schema edited without regenerating still
works: its validator is compiled at run time, and a warning says to run ``make schemas``.

Messages:

- a property's ``x-error`` says what it must be (``"must be HOST:PORT, e.g. 0.0.0.0:9847"``);
- otherwise the message is derived: unknown keys list the known ones, ``required`` names the
  missing key (with its ``description``), ``enum`` lists the allowed values.

Checks a schema cannot express (a regex that compiles, a PromQL expression, names unique across
a list) stay in each loader, after this one, with the same problem shape. Custom formats:
``duration`` (fleetmon.durations), ``listen-address`` (fleetmon.listen), ``regex`` (Python ``re``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.resources
import json
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema

from fleetmon import durations, listen
from fleetmon.yamldoc import keyname

log = logging.getLogger(__name__)

SCHEMAS = "fleetmon.schemas"
VALIDATORS = "fleetmon.validators"
# The schemas' published names (docs/schemas/<name>.schema.json).
NAMES = ("rules", "exporter", "router", "recipients", "web-config")


def _regex_ok(value: str) -> bool:
    try:
        re.compile(value)
    except re.error:
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {
    "duration": durations.is_duration,
    "listen-address": listen.is_listen,
    "regex": _regex_ok,
}
_FORMAT_TEXT = {
    "duration": f"a duration like {durations.EXAMPLE}",
    "listen-address": listen.EXAMPLE,
    "regex": "a valid regular expression",
}
_TYPE_TEXT = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
              "object": "a mapping", "array": "a list", "null": "empty"}


@dataclass(frozen=True)
class SchemaProblem:
    path: tuple[Any, ...]
    message: str

    @property
    def key(self) -> str:
        return keyname(self.path)


def _schema_text(name: str) -> str:
    return importlib.resources.files(SCHEMAS).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


def schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``name`` (one of NAMES)."""
    return json.loads(_schema_text(name))


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    # Read-only: callers walk it, never change it (schema() gives a fresh copy to change).
    return schema(name)


def resolve(name: str, node: Any) -> dict[str, Any]:
    """``node`` (a part of schema ``name``) with its local ``$ref``s followed; {} if not a schema."""
    while isinstance(node, dict) and "$ref" in node:
        node = _parsed(name)["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node if isinstance(node, dict) else {}


@functools.cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def child(name: str, node: dict[str, Any], step: Any) -> dict[str, Any] | None:
    """The part of schema ``name`` that checks key or index ``step`` of a value checked by
    ``node`` ($refs followed); None when the schema says nothing about it."""
    if isinstance(step, int):
        items = node.get("items")
        return resolve(name, items) if isinstance(items, dict) else None
    if step in node.get("properties", {}):
        return resolve(name, node["properties"][step])
    for pat, sub in node.get("patternProperties", {}).items():
        if _pattern(pat).search(str(step)):
            return resolve(name, sub)
    extra = node.get("additionalProperties")
    return resolve(name, extra) if isinstance(extra, dict) else None


def subschema(name: str, path: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    """The part of schema ``name`` that checks the value at ``path`` (keys and list indices),
    ``$ref``s followed; None when the schema says nothing about it."""
    node: dict[str, Any] | None = resolve(name, _parsed(name))
    for step in path:
        if node is None:
            return None
        node = child(name, node, step)
    return node


def _module_name(name: str) -> str:
    return name.replace("-", "_")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def generated_source(name: str) -> str:
    """The Python source of schema ``name``'s validator, as ``make schemas`` writes it."""
    text = _schema_text(name)
    code = fastjsonschema.compile_to_code(json.loads(text), formats=FORMATS, fast_fail=False)
    entry = re.search(r"^def (validate_\w+)\(", code, re.M)
    assert entry, "fastjsonschema's generated code has no validate_ function"
    return (f"# Generated by `make schemas` (python -m fleetmon.schema --write) from\n"
            f"# docs/schemas/{name}.schema.json: do not edit. fastjsonschema {fastjsonschema.VERSION}.\n"
            f"# ruff: noqa\n"
            f"SCHEMA_SHA256 = {_digest(text)!r}\n"
            f"{code}\n\nvalidate = {entry.group(1)}\n")


@functools.cache
def _validator(name: str) -> Callable[[Any], Any]:
    try:
        mod = importlib.import_module(f"{VALIDATORS}.{_module_name(name)}")
    except ImportError:
        mod = None
    if mod is not None and getattr(mod, "SCHEMA_SHA256", None) == _digest(_schema_text(name)):
        return functools.partial(mod.validate, custom_formats=FORMATS)
    log.warning("docs/schemas/%s.schema.json changed since its validator was generated; compiling it "
                "now (run `make schemas`)", name)
    return compile_schema(schema(name))


def compile_schema(definition: dict[str, Any]) -> Callable[[Any], Any]:
    """A validator for ``definition`` with fleetmon's formats, reporting every violation."""
    return fastjsonschema.compile(definition, formats=FORMATS, fast_fail=False)


def check(name: str, data: Any) -> list[SchemaProblem]:
    """Every way ``data`` breaks schema ``name`` (one of NAMES); [] if none."""
    return check_against(_validator(name), data)


def check_against(validator: Callable[[Any], Any], data: Any) -> list[SchemaProblem]:
    """Every way ``data`` breaks a validator made by ``compile_schema``; [] if none."""
    try:
        validator(data)
    except fastjsonschema.JsonSchemaValuesException as exc:
        errors = exc.errors
    except fastjsonschema.JsonSchemaValueException as exc:
        errors = [exc]
    else:
        return []
    out: list[SchemaProblem] = []
    for err in errors:
        for p in _describe(err, _path(data, err.path[1:])):
            if p not in out:
                out.append(p)
    return out


def _path(data: Any, parts: list[str]) -> tuple[Any, ...]:
    """fastjsonschema's string path back to real keys and indices (keys may contain dots)."""
    out: list[Any] = []
    node = data
    i = 0
    while i < len(parts):
        if isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            out.append(int(parts[i]))
            node = node[int(parts[i])]
            i += 1
            continue
        if isinstance(node, dict):
            # The longest run of parts that, joined by dots, is a key of this mapping.
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in node:
                    out.append(key)
                    node = node[key]
                    i = j
                    break
            else:
                out.extend(parts[i:])
                break
            continue
        out.extend(parts[i:])
        break
    return tuple(out)


def _describe(err: fastjsonschema.JsonSchemaValueException, at: tuple[Any, ...]) -> list[SchemaProblem]:
    d = err.definition if isinstance(err.definition, dict) else {}
    rule = err.rule
    if rule == "additionalProperties" and isinstance(err.value, dict):
        known = sorted(d.get("properties", {}))
        patterns = [re.compile(p) for p in d.get("patternProperties", {})]
        extra = [k for k in err.value if k not in known and not any(p.search(str(k)) for p in patterns)]
        hint = d.get("x-unknown") or (f"unknown key (known: {', '.join(known)})" if known else "unknown key")
        return [SchemaProblem(at + (k,), hint) for k in extra]
    if rule == "required" and isinstance(err.value, dict):
        props = d.get("properties", {})
        out = []
        for k in d.get("required", []):
            if k not in err.value:
                what = props.get(k, {}).get("x-error") or props.get(k, {}).get("description", "")
                out.append(SchemaProblem(at + (k,), f"required: {what}" if what else "required"))
        return out
    if d.get("x-error"):
        return [SchemaProblem(at, d["x-error"])]
    return [SchemaProblem(at, _derived(rule, d, err))]


def _derived(rule: str | None, d: dict[str, Any], err: fastjsonschema.JsonSchemaValueException) -> str:
    rd = err.rule_definition
    if rule == "type":
        kinds = rd if isinstance(rd, list) else [rd]
        return "must be " + " or ".join(_TYPE_TEXT.get(k, k) for k in kinds)
    if rule == "enum":
        return "must be one of " + ", ".join(str(v) for v in rd)
    if rule == "const":
        return f"must be {rd!r}"
    if rule == "format":
        return "must be " + _FORMAT_TEXT.get(rd, rd)
    if rule in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[rule]
        return f"must be {sign} {rd}"
    if rule == "minItems":
        return "must not be empty" if rd == 1 else f"must have at least {rd} items"
    if rule == "minLength":
        return "must not be empty" if rd == 1 else f"must be at least {rd} characters"
    if rule == "pattern":
        return f"must match {rd}"
    if rule == "propertyNames":
        return "has a key that is not allowed here"
    if rule == "uniqueItems":
        return "must not repeat an item"
    return err.message.replace(err.name or "data", "", 1).strip() or f"breaks the schema ({rule})"


def write_validators(names: tuple[str, ...] = NAMES, out_dir: Path | None = None) -> list[Path]:
    """(Re)write the generated validators of ``names``; returns the files written."""
    out_dir = out_dir or Path(importlib.import_module(VALIDATORS).__file__).parent
    written = []
    for name in names:
        path = out_dir / f"{_module_name(name)}.py"
        path.write_text(generated_source(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m fleetmon.schema --write   (regenerates fleetmon/validators/*.py)")
    for p in write_validators():
        print(f"wrote {p}")
