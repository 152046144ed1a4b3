"""Config and flag errors name the file, line and key, and exit non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main
from exporter.config import ConfigError, parse_config
from exporter.webconfig import load_web_config

BAD = """\
listen: 127.0.0.1:9847
logs:
  - path: /var/log/nginx/access.log
    type: nginx_acess
  - path: /var/log/syslog
    type: syslog
    start_at: middle
    labels: {log: x}
collectors:
  cpu: false
  filesystem:
    mount_timeout: -1
    fs_types_exclude: "(unclosed"
  bogus: true
tailing:
  poll_interval: fast
lisen: oops
"""


def test_every_problem_reported_with_line_and_key() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(BAD, "exporter.yml")
    problems = ei.value.problems
    expected = [
        "exporter.yml:4: logs[0].type: must be one of",
        "exporter.yml:7: logs[1].start_at: must be end or beginning",
        "exporter.yml:8: logs[1].labels: must not use the reserved names",
        "exporter.yml:12: collectors.filesystem.mount_timeout: must be a positive number",
        "exporter.yml:13: collectors.filesystem.fs_types_exclude: invalid regular expression",
        "exporter.yml:14: collectors.bogus: unknown collector",
        "exporter.yml:16: tailing.poll_interval: must be a positive number of seconds",
        "exporter.yml:17: lisen: unknown key",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)
    assert len(problems) == len(expected)


def test_good_config_parses() -> None:
    cfg = parse_config("logs:\n  - {path: /var/log/nginx/*.log, type: nginx_access, labels: {vhost: a}}\n"
                       "collectors: {cpu: false, netdev: {device_exclude: '^(lo|veth.*)$'}}\n"
                       "zk: {hosts: 'zk1:2181', labels: {role: web}}\n")
    assert cfg.logs[0]["labels"] == {"vhost": "a"} and cfg.logs[0]["start_at"] == "end"
    assert cfg.collectors == {"cpu": {"enabled": False}, "netdev": {"device_exclude": "^(lo|veth.*)$"}}
    assert cfg.listen.endswith(":9847")


@pytest.mark.parametrize("text,want", [
    ("logs: [\n  {path: x\n", "exporter.yml:3: malformed YAML: while parsing a flow mapping"),
    ("- a\n- b\n", "exporter.yml:1: the config must be a mapping"),
])
def test_invalid_yaml(tmp_path: Path, text: str, want: str) -> None:
    p = tmp_path / "exporter.yml"
    p.write_text(text)
    r = CliRunner().invoke(main, ["--config", str(p)])
    assert r.exit_code == 2
    assert f"{tmp_path}/{want}" in r.output


def test_cli_errors_exit_nonzero(tmp_path: Path) -> None:
    p = tmp_path / "exporter.yml"
    p.write_text(BAD)
    r = CliRunner().invoke(main, ["--config", str(p)])
    assert r.exit_code == 2 and f"{p}:4: logs[0].type" in r.output
    r = CliRunner().invoke(main, ["--log", "nginx:/var/log/x.log"])
    assert r.exit_code == 2 and "expected TYPE:PATH" in r.output
    r = CliRunner().invoke(main, ["--config", str(tmp_path / "missing.yml")])
    assert r.exit_code == 2 and "cannot read config" in r.output
    r = CliRunner().invoke(main, ["check-config", "--config", str(p)])
    assert r.exit_code == 2 and f"{p}:17: lisen: unknown key" in r.output
    good = tmp_path / "good.yml"
    good.write_text("logs: [{path: /var/log/syslog, type: syslog}]\n")
    r = CliRunner().invoke(main, ["check-config", "--config", str(good)])
    assert r.exit_code == 0 and "OK" in r.output
    r = CliRunner().invoke(main, ["--listen", "nohostport"])
    assert r.exit_code == 2 and "HOST:PORT" in r.output


def test_web_config_errors(tmp_path: Path) -> None:
    p = tmp_path / "web.yml"
    p.write_text("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"
                 "basic_auth_users:\n  alice: plaintext-password\nhttp2: true\n")
    with pytest.raises(ConfigError) as ei:
        load_web_config(str(p))
    text = "\n".join(ei.value.problems)
    assert f"{p}:2: tls_server_config.cert_file: cannot load" in text
    assert f"{p}:5: basic_auth_users.alice: must be a bcrypt hash" in text
    assert f"{p}:6: http2: unknown key" in text
    assert "plaintext-password" not in text  # a mistaken plaintext password is never echoed
    r = CliRunner().invoke(main, ["--web.config.file", str(p)])
    assert r.exit_code == 2


def test_state_file_directory_must_exist(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["--log", f"syslog:{tmp_path}/syslog", "--state-file",
                                  str(tmp_path / "missing" / "offsets.json"), "--listen", "127.0.0.1:0"])
    assert r.exit_code == 2 and "does not exist or is not writable" in r.output


def test_web_bounds_keys() -> None:
    from exporter.config import ConfigError, parse_config

    cfg = parse_config("web_max_requests: 4\nweb_request_timeout: 2.5\n", "c.yml")
    assert (cfg.web_max_requests, cfg.web_request_timeout) == (4, 2.5)
    try:
        parse_config("listen: 127.0.0.1:1\nweb_max_requests: 0\nweb_request_timeout: fast\n", "c.yml")
    except ConfigError as exc:
        assert exc.problems == ["c.yml:2: web_max_requests: must be a positive integer (connections served at once)",
                                "c.yml:3: web_request_timeout: must be a number of seconds >= 0.1 or a duration like 30s"]
    else:
        raise AssertionError("bad web bounds accepted")


def test_bad_collector_flag_regexp_is_named_and_exits_2() -> None:
    from click.testing import CliRunner

    from exporter.cli import main

    r = CliRunner().invoke(main, ["--collector.cpu.info.flags-include", "(avx"])
    assert r.exit_code == 2
    assert "--collector.cpu.info.flags-include: invalid regular expression" in r.output
