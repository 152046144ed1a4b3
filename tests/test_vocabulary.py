"""The shared vocabulary in fleetmon/: durations, listen addresses, located YAML and schema problems."""

from __future__ import annotations

import pytest

from fleetmon import durations, listen, schema, yamldoc


@pytest.mark.parametrize("text, seconds", [
    ("1h30m", 5400), ("90s", 90), ("5m", 300), ("500ms", 0.5), ("2d", 172800), ("1w", 604800),
    ("1y", 365 * 86400), ("1d12h", 129600), ("90", 90), (30, 30), (2.5, 2.5), ("1.5h", 5400), ("0s", 0), (0, 0),
])
def test_duration_grammar(text, seconds):
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5 m", "1m1h", "-5s", -1, True, None, "1.5h30m", "5mins", "1h 30m"])
def test_duration_refused_with_the_value(text):
    with pytest.raises(ValueError, match="duration|negative"):
        durations.parse(text)


@pytest.mark.parametrize("seconds, text", [(5400, "1h30m"), (300, "5m"), (0, "0s"), (0.25, "250ms"), (90061, "1d1h1m1s")])
def test_duration_format_round_trips(seconds, text):
    assert durations.format(seconds) == text
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("value, expected", [
    ("0.0.0.0:9847", ("0.0.0.0", 9847)), ("127.0.0.1:1", ("127.0.0.1", 1)), ("[::1]:9847", ("::1", 9847)),
    (":9847", ("0.0.0.0", 9847)), ("host.example:65535", ("host.example", 65535)),
])
def test_listen_addresses(value, expected):
    assert listen.parse(value) == expected


@pytest.mark.parametrize("value", ["9847", "host:", "host:0", "host:65536", "::1:9847", "[::1:9847", 9847, None, "h:x"])
def test_listen_refused_with_the_value(value):
    with pytest.raises(ValueError, match=repr(value).replace("[", r"\[")):
        listen.parse(value)


def test_listen_default_host_and_join():
    assert listen.parse(":80", default_host="127.0.0.1") == ("127.0.0.1", 80)
    assert listen.join("::1", 80) == "[::1]:80"
    assert listen.join("10.0.0.1", 80) == "10.0.0.1:80"


def test_yamldoc_lines_duplicates_and_errors():
    doc = yamldoc.load_text("a: 1\nlogs:\n  - path: x\n    type: y\n  - path: z\na: 2\n")
    assert doc.duplicates == [("a", 6)]
    assert yamldoc.line_at(doc.data, ("logs", 1, "path")) == 5
    assert yamldoc.line_at(doc.data, ("logs", 0, "missing")) == 3
    assert yamldoc.keyname(("logs", 0, "type")) == "logs[0].type"
    bad = yamldoc.load_text("a: [1,\n")
    assert bad.data is None and bad.error and bad.error[0] >= 1 and "malformed YAML" in bad.error[1]
    assert yamldoc.load_text("a: yes\n").data == {"a": "yes"}  # strict booleans


def test_schema_problems_name_every_key():
    v = schema.compile_schema({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "the source's name"},
            "listen": {"type": "string", "format": "listen-address", "x-error": "must be HOST:PORT"},
            "every": {"type": ["string", "number"], "format": "duration", "minimum": 0},
            "kind": {"enum": ["a", "b"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {"re": {"type": "string", "format": "regex"}}}},
            "team.web": {"type": "integer"},
        },
    })
    problems = schema.check_against(v, {"listen": "nope", "every": "5 m", "kind": "c", "bogus": 1,
                                        "items": [{"re": "ok"}, {"re": "("}], "team.web": "x"})
    got = {(p.key, p.message) for p in problems}
    assert got == {
        ("name", "required: the source's name"),
        ("listen", "must be HOST:PORT"),
        ("every", f"must be a duration like {durations.EXAMPLE}"),
        ("kind", "must be one of a, b"),
        ("bogus", "unknown key (known: every, items, kind, listen, name, team.web)"),
        ("items[1].re", "must be a valid regular expression"),
        ("team.web", "must be an integer"),
    }
    assert schema.check_against(v, {"name": "x", "every": 30, "items": []}) == []
    assert {p.message for p in schema.check_against(v, {"name": True})} == {"must be a string"}


def test_value_at_walks_keys_and_indices():
    data = yamldoc.load_text("logs:\n  - path: x\n    labels: {a: b}\n").data
    assert yamldoc.value_at(data, ("logs", 0, "labels", "a")) == "b"
    missing = object()
    for path in (("logs", 1), ("logs", "x"), ("logs", 0, "path", "deeper"), ("nope",)):
        assert yamldoc.value_at(data, path, missing) is missing


def test_subschema_follows_refs_items_and_pattern_properties():
    # A log entry's type, through the list's items and its $ref.
    assert "enum" in schema.subschema("exporter", ("logs", 3, "type"))
    # A recipient group, through patternProperties; a bad group name matches nothing.
    group = schema.subschema("rules", ("recipients", "oncall"))
    assert group is not None and group == schema.resolve("rules", {"$ref": "#/definitions/urls"})
    assert schema.subschema("rules", ("recipients", "bad name")) is None
    assert schema.subschema("router", ("no_such_key",)) is None
