"""The published rules.yaml schema (docs/schemas/rules.schema.json): valid, complete, in step with
fleetmon.signals, accepted by every shipped rules file, and the source of rulesync's own
`file:line: field: message` errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleetmon import schema, signals, yamldoc
from rulesync.load import load_text
from rulesync.validate import validate
from tests.rulesync.conftest import TESTDATA

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "docs" / "schemas" / "rules.schema.json"
MODELINE = "# yaml-language-server: $schema="
GOOD = [REPO / "examples" / "rules.yaml", REPO / "stack" / "rules.yaml",
        *sorted((TESTDATA / "good").glob("*.yaml")), *sorted((TESTDATA / "golden").glob("in-*.yaml"))]


def _published() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def _jsonschema() -> jsonschema.Draft7Validator:
    """jsonschema with fleetmon's formats, as an editor that knew them would check."""
    formats = jsonschema.FormatChecker(formats=())
    for name, ok in schema.FORMATS.items():
        formats.checks(name)(lambda v, ok=ok: not isinstance(v, str) or ok(v))
    return jsonschema.Draft7Validator(_published(), format_checker=formats)


def test_schema_is_valid_draft7_and_is_what_fleetmon_schema_reads() -> None:
    published = _published()
    jsonschema.Draft7Validator.check_schema(published)
    assert published["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert published["$id"] == "https://fleetmon.example/schemas/rules.schema.json"
    assert schema.schema("rules") == published


def test_signal_names_are_fleetmon_signals_table() -> None:
    """Editors complete `metric:` from the schema's enum: it must be exactly the signals' table."""
    enum = _published()["definitions"]["rule"]["properties"]["metric"]["enum"]
    assert enum == list(signals.SIGNALS), (
        "docs/schemas/rules.schema.json: set definitions.rule.properties.metric.enum to "
        f"{json.dumps(list(signals.SIGNALS))} (fleetmon/signals.py's table)")


def _properties(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        for group in ("properties", "patternProperties"):
            for name, sub in node.get(group, {}).items():
                out.append((f"{where}.{name}", sub))
        for key, sub in node.items():
            out += _properties(sub, f"{where}.{key}" if key not in ("properties", "patternProperties") else where)
    return out


def test_every_property_has_a_description() -> None:
    """Editors show the description on hover; a $ref gets it from its definition."""
    published = _published()
    defs = published["definitions"]
    missing = [where for where, sub in _properties(published)
               if "description" not in sub and "description" not in defs.get(sub.get("$ref", "").rsplit("/", 1)[-1], {})]
    assert missing == []


@pytest.mark.parametrize("src", GOOD, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_rules_files_validate(src: Path) -> None:
    data = yamldoc.load_text(src.read_text()).data
    assert schema.check("rules", data) == []
    assert [e.message for e in _jsonschema().iter_errors(data)] == []


@pytest.mark.parametrize("src", GOOD[:2] + sorted((TESTDATA / "good").glob("*.yaml")), ids=lambda p: p.name)
def test_modeline_points_editors_at_the_schema(src: Path) -> None:
    first = src.read_text().splitlines()[0]
    assert first.startswith(MODELINE)
    assert (src.parent / first[len(MODELINE):]).resolve() == SCHEMA_FILE


# One structural mistake each: rulesync's problem (file:line: severity: field: message (hint)),
# and jsonschema (what an editor runs) refuses the same file.
BAD = [
    ("rules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n",
     "x.yaml:1: error: version: missing required field 'version' (hint: add `version: 1`)"),
    ("version: 1\nrulez: []\n",
     "x.yaml:2: error: rulez: unknown top-level field 'rulez' (hint: did you mean rules?)"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    treshold: 80\n",
     "x.yaml:5: error: rules[A].treshold: unknown field 'treshold' (hint: did you mean above / below?)"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n    severity: page\n",
     "x.yaml:6: error: rules[A].severity: unknown severity 'page' (hint: one of: critical, warning, info)"),
    ("version: 1\nrules:\n  - alert: A\n    metric: memory_usage\n    above: 80\n",
     "x.yaml:4: error: rules[A].metric: unknown signal 'memory_usage' (hint: did you mean memory_usage_percent?"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n    window: 5\n",
     "x.yaml:6: error: rules[A].window: expected a duration string, got int 5"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n    for: 5 minutes\n",
     "x.yaml:6: error: rules[A].for: expected a duration string, got str '5 minutes'"),
    ("version: 1\nrules:\n  - metric: cpu_usage_percent\n    above: 80\n",
     "x.yaml:3: error: rules[0].alert: missing required field 'alert' (hint: add `alert:`)"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n    hosts:\n      __meta: x\n",
     "x.yaml:7: error: rules[A].hosts.__meta: bad label name '__meta'"),
    ("version: 1\nrules:\n  - alert: A\n    metric: cpu_usage_percent\n    above: 80\n    notify: [a, 'b c']\n",
     "x.yaml:6: error: rules[A].notify[1]: expected a recipient group name, got str 'b c'"),
    ("version: 1\nrules: []\nrecipients:\n  ops:\n    - mailto://ops@example.test\n    - ops@example.test\n",
     "x.yaml:6: error: recipients.ops[1]: not an Apprise URL (scheme://...), got a str (hint"),
    ("version: 1\nuse_recorded: yes\nrules: []\n",
     "x.yaml:2: error: use_recorded: must be true or false, got str 'yes'"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e.split(": ")[2] for _, e in BAD])
def test_structural_mistakes_name_file_line_and_field(text: str, expected: str) -> None:
    spec, problems = validate([load_text(text, "x.yaml")], check_expr=False)
    assert spec is None
    got = [str(p) for p in problems]
    assert any(g.startswith(expected) for g in got), got
    data = yamldoc.load_text(text).data
    assert list(_jsonschema().iter_errors(data)), "jsonschema accepted it"


def test_recipient_problems_never_echo_a_credential() -> None:
    # Recipient URLs carry passwords and tokens: a problem under `recipients` names the field and
    # the kind of value, never the value (nor a URL pasted where a group name goes).
    text = ("version: 1\nrules: []\nrecipients:\n"
            "  web:\n"
            "    - alice:Hunter2Secret@smtp.example.test\n"     # no scheme
            "    - {url: 'mailto://bob:Pa55word@example.test'}\n"  # a mapping, not a URL string
            "  ops: 'mailtos://carol:S3cretToken@example.test'\n"  # fine: one URL as a string
            "  'mailto://dave:An0therOne@example.test': [mailto://x@example.test]\n")  # URL as a name
    spec, problems = validate([load_text(text, "x.yaml")], check_expr=False)
    assert spec is None
    got = "\n".join(str(p) for p in problems)
    assert "recipients.web[0]" in got and "recipients.web[1]" in got and "bad recipient group name" in got
    for secret in ("Hunter2Secret", "Pa55word", "S3cretToken", "An0therOne"):
        assert secret not in got, got


def test_every_problem_is_reported_structure_and_semantics_together() -> None:
    text = ("version: 1\n"
            "rules:\n"
            "  - alert: A\n"
            "    metric: cpu_usage_percent\n"
            "    above: 180\n"            # semantic: outside 0-100
            "    severity: loud\n"        # schema: enum
            "    notify: [nobody]\n"      # semantic: group not defined
            "  - alert: A\n"              # semantic: duplicate
            "    expr: up == 0\n"
            "    window: 10\n"            # schema (type) and semantic (expr rule)
            "recipients:\n"
            "  1: [mailto://x@example.test]\n")  # a YAML integer key is a name like any other
    spec, problems = validate([load_text(text, "x.yaml")], check_expr=False)
    assert spec is None
    assert [(p.line, p.field, p.message) for p in problems if p.severity == "error"] == [
        (3, "rules[A].notify", "recipient group 'nobody' is used but not defined"),
        (5, "rules[A].above", "180 is outside 0-100 for a percentage"),
        (6, "rules[A].severity", "unknown severity 'loud'"),
        (8, "rules[A].alert", "duplicate alert name 'A' (first at x.yaml:3)"),
        (10, "rules[A].window", "expected a duration string, got int 10"),
        (10, "rules[A].window", "`window` only applies to built-in signals"),
    ]
