"""The router's two files are declared once, as published JSON Schemas (docs/schemas/), and every
problem in them is reported as ``file:line: key: message``, never with a secret in it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from alert_router.config import Config, ConfigError, from_dict, load_config
from alert_router.recipients import RecipientsError, SecretScope, load_recipients, parse_recipients
from alert_router.routing import CHANNELS
from fleetmon import schema, yamldoc

REPO = Path(__file__).resolve().parents[2]
ROUTER_CONFIGS = [REPO / "deploy" / "alert-router.yml", REPO / "deploy" / "alertmanager" / "alert-router-ha.yml"]
RECIPIENTS_EXAMPLE = REPO / "examples" / "recipients.yaml"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def _properties(node: Any, at: str = "") -> list[tuple[str, dict]]:
    """Every property definition in a schema, with where it is."""
    out = []
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            out.append((f"{at}.{name}", prop))
        for key, child in node.items():
            out += _properties(child, f"{at}/{key}")
    return out


@pytest.mark.parametrize("name", ["router", "recipients"])
def test_published_schema_is_draft7_with_descriptions(name):
    doc = schema.schema(name)
    jsonschema.Draft7Validator.check_schema(doc)
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert doc["$id"] == f"https://fleetmon.example/schemas/{name}.schema.json"
    assert doc["title"]
    props = _properties(doc)
    assert props
    assert [where for where, prop in props if not prop.get("description")] == []


def test_router_schema_declares_exactly_the_config_fields_and_channels():
    doc = schema.schema("router")
    assert set(doc["properties"]) == {f.name for f in dataclasses.fields(Config)}
    assert doc["definitions"]["channels"]["items"]["enum"] == list(CHANNELS)


def _typed(node: Any, at: str = "") -> list[tuple[str, dict]]:
    out = []
    if isinstance(node, dict):
        if "type" in node:
            out.append((at, node))
        for key, child in node.items():
            out += _typed(child, f"{at}/{key}")
    return out


def test_recipients_schema_messages_are_fixed_text():
    """Every check of the recipients schema says what it wants in its own x-error words, so no
    message falls back to one derived from the value (a URL holds secrets)."""
    doc = schema.schema("recipients")
    assert [at for at, node in _typed(doc) if not node.get("x-error")] == []
    assert doc["properties"]["recipients"]["x-unknown"]


def _modeline_target(path: Path) -> Path:
    m = MODELINE.match(path.read_text().splitlines()[0])
    assert m, f"{path}: the first line is not a yaml-language-server modeline"
    return (path.parent / m.group(1)).resolve()


@pytest.mark.parametrize("path", ROUTER_CONFIGS, ids=lambda p: p.name)
def test_shipped_router_configs_validate(path):
    assert _modeline_target(path) == REPO / "docs" / "schemas" / "router.schema.json"
    doc = yamldoc.load_text(path.read_text())
    assert doc.error is None and doc.duplicates == []
    assert schema.check("router", doc.data) == []
    jsonschema.Draft7Validator(schema.schema("router")).validate(doc.data)
    load_config(path)


def test_recipients_example_validates_and_loads():
    assert _modeline_target(RECIPIENTS_EXAMPLE) == REPO / "docs" / "schemas" / "recipients.schema.json"
    doc = yamldoc.load_text(RECIPIENTS_EXAMPLE.read_text())
    assert doc.error is None and doc.duplicates == []
    assert schema.check("recipients", doc.data) == []
    jsonschema.Draft7Validator(schema.schema("recipients")).validate(doc.data)


def test_recipients_example_expands_with_apprise(tmp_path):
    (tmp_path / "ntfy.token").write_text("tk-0x5ecret\n")
    env = {"FLEETMON_ROUTER_SMTP_PASSWORD": "pw-0x5ecret", "FLEETMON_ROUTER_TWILIO_SID": "AC" + "a" * 32,
           "FLEETMON_ROUTER_TWILIO_TOKEN": "b" * 32}
    rec = load_recipients(RECIPIENTS_EXAMPLE, env=env, scope=SecretScope(str(tmp_path), "FLEETMON_ROUTER_"))
    assert set(rec.groups) == {"oncall", "dba", "default"}
    assert rec.groups["oncall"][1] == "ntfys://ntfy.example.com/fleet-oncall?token=tk-0x5ecret"
    assert {"pw-0x5ecret", "tk-0x5ecret"} <= rec.secrets


def test_durations_in_the_one_grammar(tmp_path):
    conf = tmp_path / "router.yml"
    conf.write_text("retry:\n  max_age: 1h30m\n  initial_delay: 2.5\nretention: 7d\npoll_interval: 500ms\n"
                    "done_ttl: 90\nlisten: '[::1]:9849'\n")
    cfg = load_config(conf)
    assert (cfg.retry.max_age, cfg.retry.initial_delay, cfg.retention, cfg.poll_interval, cfg.done_ttl) == (
        5400, 2.5, 7 * 86400, 0.5, 90)
    assert cfg.host_port == ("::1", 9849)


BAD_ROUTER = """\
listen: nope
retry:
  max_age: forever
  multiplier: 0.5
flood: {max_per_window: 0}
severity_channels:
  critical: [email, pager]
allow_unauthenticated: "false"
tls_cert_file: /etc/fleetmon/router.crt
zk: "h:70000"
typo_key: 1
reload_interval: 1h30m
synchronous: normal
"""


def test_bad_router_config_names_file_line_and_key_of_every_problem(tmp_path):
    conf = tmp_path / "router.yml"
    conf.write_text(BAD_ROUTER)
    with pytest.raises(ConfigError) as exc:
        load_config(conf)
    known = ", ".join(sorted(f.name for f in dataclasses.fields(Config)))
    assert str(exc.value).splitlines() == [
        f"{conf}:1: listen: must be HOST:PORT, e.g. 127.0.0.1:9849 or [::1]:9849, got 'nope'",
        f"{conf}:3: retry.max_age: must be a duration like 30s, 5m, 1h30m or a number of seconds, got 'forever'",
        f"{conf}:4: retry.multiplier: must be a number >= 1, got 0.5",
        f"{conf}:5: flood.max_per_window: must be a positive integer, got 0",
        f"{conf}:7: severity_channels.critical[1]: must be one of email, sms, push, got 'pager'",
        f"{conf}:8: allow_unauthenticated: must be true or false (unquoted), got 'false'",
        f"{conf}:9: tls_cert_file: tls_key_file is not set: set both or neither",
        f"{conf}:10: zk: expected HOST:PORT[,HOST:PORT...], got 'h:70000'",
        f"{conf}:11: typo_key: unknown key (known: {known})",
    ]
    # The published schema finds the same file invalid in any editor's validator.
    assert not jsonschema.Draft7Validator(schema.schema("router")).is_valid(yamldoc.load_text(BAD_ROUTER).data)


def test_router_config_duplicates_and_malformed_yaml(tmp_path):
    conf = tmp_path / "router.yml"
    conf.write_text("listen: 127.0.0.1:1\nretry:\n  max_age: 1h\n  max_age: 2h\nlisten: 127.0.0.1:2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(conf)
    assert str(exc.value).splitlines() == [f"{conf}:4: retry.max_age: defined twice",
                                           f"{conf}:5: listen: defined twice"]
    conf.write_text("listen: 127.0.0.1:1\nretry: [1,\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(conf))}:\d: malformed YAML"):
        load_config(conf)


def test_from_dict_without_lines_names_source_and_key():
    with pytest.raises(ConfigError) as exc:
        from_dict({"listen": "x", "flood": {"window": "soon"}}, "router.yml")
    assert str(exc.value).splitlines() == [
        "router.yml: listen: must be HOST:PORT, e.g. 127.0.0.1:9849 or [::1]:9849, got 'x'",
        "router.yml: flood.window: must be a duration like 30s, 5m, 1h30m or a number of seconds, got 'soon'",
    ]
    assert from_dict(None) == Config()
    assert from_dict({"severity_channels": {"critical": "email, sms"}, "synchronous": "normal"}).severity_channels == {
        "critical": ["email", "sms"]}


SECRET = "sekrit-0x5ecret"
BAD_RECIPIENTS = f"""\
recipients:
  oncall:
    - mailto://bot:{SECRET}@mail.example.test
    - notaservice://bot:{SECRET}@host/
    - {{url: "mailto://bot:{SECRET}@mail.example.test"}}
    - {SECRET}-without-a-scheme
    - ""
  mailto://bot:{SECRET}@mail.example.test?to=x: [json://h/a]
  team: json://h/{SECRET}
  env: ["json://h/${{FLEETMON_ROUTER_PW}}", "mailto://u:${{HOME_PW}}@h"]
mailtos://bot:{SECRET}@smtp.example.test: 1
"""


def test_bad_recipients_name_every_problem_and_never_a_secret(tmp_path):
    path = tmp_path / "recipients.yaml"
    path.write_text(BAD_RECIPIENTS)
    with pytest.raises(RecipientsError) as exc:
        load_recipients(path, env={"FLEETMON_ROUTER_PW": SECRET, "HOME_PW": SECRET},
                        scope=SecretScope(env_prefix="FLEETMON_ROUTER_"))
    msg = str(exc.value)
    assert SECRET not in msg and "0x5ecret" not in msg, msg
    assert msg.splitlines() == [
        f"{path}:4: recipients.oncall[1]: Apprise cannot use notaservice://***@host/***",
        f"{path}:5: recipients.oncall[2]: must be an Apprise URL (a non-empty string)",
        f"{path}:6: recipients.oncall[3]: not an Apprise URL: <unparseable url>",
        f"{path}:7: recipients.oncall[4]: must be an Apprise URL (a non-empty string)",
        f"{path}:8: recipients.mailto://***@mail.example.test?to=***: group names are letters, digits, '_', '.', '-'",
        f"{path}:9: recipients.team: must be a list of Apprise URLs",
        f"{path}:10: recipients.env[1]: ${{HOME_PW}}: only variables starting with FLEETMON_ROUTER_ may be used "
        f"(secret_env_prefix)",
        f"{path}:11: mailtos://***@smtp.example.test: unknown key (known: recipients)",
    ]


def test_recipients_numeric_group_names_and_duplicates():
    rec = parse_recipients("recipients:\n  123: [json://h/a]\n  empty:\n", "r.yaml", validate=None)
    assert rec.groups == {"123": ["json://h/a"], "empty": []}
    with pytest.raises(RecipientsError) as exc:
        parse_recipients("recipients:\n  a: [json://h/x]\n  b: []\n  a: [json://h/y]\n", "r.yaml", validate=None)
    assert str(exc.value) == "r.yaml:4: recipients.a: defined twice"
