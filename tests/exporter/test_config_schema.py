"""The exporter's config schemas (docs/schemas/exporter.schema.json, web-config.schema.json) are
valid draft-07, match the tables they are generated from, accept the shipped config with both
validators, and turn every problem of a bad config into "file:line: key: message"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from exporter import webconfig
from exporter.collectors import REGISTRY
from exporter.config import TAILING_DEFAULTS, ConfigError, collectors_schema, parse_config
from exporter.logs.parsers import LOG_TYPES
from exporter.webconfig import load_web_config
from fleetmon import schema, yamldoc

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
DEPLOYED = REPO / "deploy" / "fleet-exporter.yml"


def _published(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def _jsonschema_errors(name: str, data: Any) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft7Validator(_published(name), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return list(validator.iter_errors(data))


@pytest.mark.parametrize("name", ["exporter", "web-config"])
def test_published_schemas_are_draft7_with_descriptions(name: str) -> None:
    published = _published(name)
    jsonschema.Draft7Validator.check_schema(published)
    assert name in schema.NAMES and schema.schema(name) == published  # what the installed package loads
    assert published["$id"] == f"https://fleetmon.example/schemas/{name}.schema.json"

    def resolved(d: dict[str, Any]) -> dict[str, Any]:
        return published["definitions"][d["$ref"].rpartition("/")[2]] if "$ref" in d else d

    def undescribed(d: dict[str, Any], at: str) -> list[str]:
        d = resolved(d)
        out = [] if "description" in d else [at]
        for k, v in d.get("properties", {}).items():
            out += undescribed(v, f"{at}.{k}")
        return out + (undescribed(d["items"], f"{at}[]") if "items" in d else [])

    assert undescribed(published, name) == []


def test_published_collectors_match_the_registry() -> None:
    definitions = _published("exporter")["definitions"]
    published = {k: v for k, v in definitions.items() if k == "collectors" or k.startswith("collector.")}
    assert published == collectors_schema(), "run: .venv/bin/python -m exporter.config (rewrites the collectors part)"
    assert list(definitions["collectors"]["properties"]) == list(REGISTRY)
    for name, cls in REGISTRY.items():
        assert list(definitions[f"collector.{name}"]["properties"]) == ["enabled", *cls.options]


def test_published_log_types_tailing_and_tls_names_match_the_code() -> None:
    definitions = _published("exporter")["definitions"]
    entry = definitions["log"]
    assert entry["properties"]["type"]["enum"] == list(LOG_TYPES)
    access = [t for t in LOG_TYPES if t.endswith("_access")]
    assert entry["allOf"][1]["if"]["properties"]["type"]["enum"] == access
    assert list(definitions["tailing"]["properties"]) == list(TAILING_DEFAULTS)
    tls = _published("web-config")["properties"]["tls_server_config"]["properties"]
    assert tls["min_version"]["enum"] == tls["max_version"]["enum"] == list(webconfig._VERSIONS)
    assert set(tls["client_auth_type"]["enum"]) == set(webconfig._CLIENT_AUTH) | set(webconfig._UNSUPPORTED_CLIENT_AUTH)


def test_deployed_config_validates_with_both_validators() -> None:
    text = DEPLOYED.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../docs/schemas/exporter.schema.json\n")
    assert (DEPLOYED.parent / "../docs/schemas/exporter.schema.json").resolve() == SCHEMAS / "exporter.schema.json"
    data = yamldoc.load_text(text).data
    assert schema.check("exporter", data) == []
    assert _jsonschema_errors("exporter", data) == []
    cfg = parse_config(text, str(DEPLOYED))
    assert [e["name"] for e in cfg.logs] == ["nginx", "nginx_error", "syslog"]


def test_web_config_validates_with_both_validators(tmp_path: Path) -> None:
    text = ("tls_server_config:\n  cert_file: /etc/fleetmon/tls.crt\n  key_file: /etc/fleetmon/tls.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: /etc/fleetmon/ca.crt\n"
            "  min_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
            "  curve_preferences: [CurveP384]\n  prefer_server_cipher_suites: true\n"
            "basic_auth_users:\n  prometheus: $2y$10$abcdefghijklmnopqrstuu\n")
    data = yamldoc.load_text(text).data
    assert schema.check("web-config", data) == [] and _jsonschema_errors("web-config", data) == []
    bad = tmp_path / "web.yml"
    bad.write_text("tls_server_config:\n  key_file: /k\n  min_version: TLS9\nbasic_auth_users:\n  bob: hunter2\n"
                   "basic_auth_users:\n  bob: hunter2\n")
    with pytest.raises(ConfigError) as ei:
        load_web_config(str(bad))
    assert ei.value.problems == [
        f"{bad}:1: tls_server_config.cert_file: required: the server certificate (PEM), with its chain",
        f"{bad}:3: tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13",
        f"{bad}:6: basic_auth_users: duplicate key (given twice in the same mapping)",
        f"{bad}:7: basic_auth_users.bob: must be a bcrypt hash ($2y$...)",
    ]
    assert "hunter2" not in str(ei.value)
    assert _jsonschema_errors("web-config", yamldoc.load_text(bad.read_text()).data)


BAD = """\
listen: 127.0.0.1:9847
collector_timeout: 0s
web_request_timeout: 50ms
collectors:
  cpu: {guest: yes, info_flags_include: "(avx"}
  filesystem: {mount_timeout: 0, bogus: 1}
  nope: true
logs:
  - {type: journald, name: units, path: /var/log/x, format: main}
  - {path: /a.log, type: nginx_access, format: "$remote_addr $nonsense["}
  - {path: /b.log, type: syslog, labels: {status: x}, unit_label: true}
  - {path: /c.log, type: nginx_error, name: units}
  - {type: apache_access, buckets: [0.1, -1], start_at: middle}
  - {path: /d.log, type: journald, labels: {unit: x}, unit_label: true}
  - 5
tailing:
  poll_interval: 1m
  rotate_grace: soon
  max_files: 0
zk: {root: fleetmon, insecure: "true", color: blue}
listen: 9847
"""


def test_every_problem_of_a_bad_config_is_file_line_key_message() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(BAD, "exporter.yml")
    problems = ei.value.problems
    formats = [p for p in problems if p.startswith("exporter.yml:10: logs[1].format: ")]
    assert len(formats) == 1, problems  # the FormatError's own words, which name the variable
    assert [p for p in problems if p not in formats] == [
        "exporter.yml:2: collector_timeout: must be a positive number of seconds or a duration like 30s",
        "exporter.yml:3: web_request_timeout: must be a number of seconds >= 0.1 or a duration like 30s",
        "exporter.yml:5: collectors.cpu.guest: must be true or false",
        "exporter.yml:5: collectors.cpu.info_flags_include: invalid regular expression: "
        "missing ), unterminated subpattern at position 0",
        "exporter.yml:6: collectors.filesystem.mount_timeout: must be a positive number",
        "exporter.yml:6: collectors.filesystem.bogus: unknown option (known: enabled, mount_points_exclude, "
        "fs_types_exclude, mount_timeout, inline_fs_types)",
        f"exporter.yml:7: collectors.nope: unknown collector (known: {', '.join(REGISTRY)})",
        "exporter.yml:9: logs[0].path: not used by journald sources (use directory: for a journal directory)",
        "exporter.yml:9: logs[0].format: only for nginx_access and apache_access logs",
        "exporter.yml:11: logs[2].unit_label: only for type: journald (or type: syslog with fallback: journald)",
        "exporter.yml:11: logs[2].labels: must not use the reserved names log, method, status, level, severity, "
        "path, le",
        "exporter.yml:12: logs[3].name: duplicate log name 'units'",
        "exporter.yml:13: logs[4].path: required: a file path or glob",
        "exporter.yml:13: logs[4].start_at: must be end or beginning",
        "exporter.yml:13: logs[4].buckets[1]: must be a positive number (seconds)",
        "exporter.yml:14: logs[5].path: not used by journald sources (use directory: for a journal directory)",
        "exporter.yml:14: logs[5].labels: must not use the name unit together with unit_label: true",
        "exporter.yml:15: logs[6]: must be a mapping with path and type",
        "exporter.yml:18: tailing.rotate_grace: must be a positive number of seconds or a duration like 30s",
        "exporter.yml:19: tailing.max_files: must be a positive integer",
        "exporter.yml:20: zk.root: must be an absolute znode path like /fleetmon",
        "exporter.yml:20: zk.insecure: must be true or false (unquoted)",
        "exporter.yml:20: zk.color: unknown key (known: address, hosts, insecure, labels, name, root, security_dir)",
        "exporter.yml:21: listen: must be HOST:PORT, e.g. 0.0.0.0:9847",
        "exporter.yml:21: listen: duplicate key (given twice in the same mapping)",
    ], problems
    # The published schema means the same to an editor: jsonschema refuses the same document.
    assert _jsonschema_errors("exporter", yamldoc.load_text(BAD).data)


def test_durations_and_numbers_both_give_seconds() -> None:
    cfg = parse_config("collector_timeout: 5\nweb_request_timeout: 1m30s\n"
                       "tailing: {poll_interval: 500ms, rotate_grace: 30, max_files: 3}\n", "c.yml")
    assert (cfg.collector_timeout, cfg.web_request_timeout) == (5.0, 90.0)
    assert cfg.tailing == {**TAILING_DEFAULTS, "poll_interval": 0.5, "rotate_grace": 30.0, "max_files": 3}
    assert parse_config("web_request_timeout: 100ms\n").web_request_timeout == 0.1
    with pytest.raises(ConfigError) as ei:
        parse_config("tailing: {poll_interval: 0s}\n", "c.yml")
    assert ei.value.problems == ["c.yml:1: tailing.poll_interval: must be a positive number of seconds or a duration "
                                 "like 30s"]


def test_log_sources_keep_their_options() -> None:
    cfg = parse_config("""\
logs:
  - {path: /a.log, type: nginx_access, format: main, upstream_histogram: false, labels: {vhost: 1}}
  - {path: /b.log, type: syslog, fallback: journald, matches: [SYSLOG_IDENTIFIER=cron, +], unit_label: true}
  - {path: /c.log, type: nginx_error, multiline: {prefixes: ['PHP message:']}}
  - {type: journald, directory: /j, journalctl: /bin/journalctl, multiline: false}
""")
    a, b, c, j = cfg.logs
    assert a["parser"] is not None and a["labels"] == {"vhost": "1"} and a["buckets"] and a["start_at"] == "end"
    assert (b["fallback"], b["matches"], b["unit_label"]) == ("journald", ("SYSLOG_IDENTIFIER=cron", "+"), True)
    assert c["continuation"] == (True, ("PHP message:",))
    assert (j["path"], j["directory"], j["journalctl"], j["matches"], j["continuation"]) == \
        ("", "/j", "/bin/journalctl", (), (False, ()))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "collectors: ~\nlogs: ~\ntailing: ~\nzk: ~\n"])
def test_empty_sections_are_the_defaults(text: str) -> None:
    cfg = parse_config(text)
    assert (cfg.collectors, cfg.logs, cfg.tailing, cfg.zk) == ({}, [], TAILING_DEFAULTS, None)
