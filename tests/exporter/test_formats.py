"""Access log format strings (nginx log_format, Apache LogFormat) and presets: compiled
into parsers, fed from real files through the tailer, and every way a format can be
wrong reported as a config error naming file, line and variable (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main
from exporter.config import ConfigError, parse_config
from exporter.logs.formats import FormatError, compile_format
from exporter.logs.manager import LogManager, source_from_config
from exporter.metrics import render

COMBINED = (b'203.0.113.9 - alice [28/Nov/2026:07:37:18 +0000] "POST /login HTTP/1.1" 302 512 '
            b'"https://example.com/" "Mozilla/5.0 (X11)"')


def fields(parser, line: bytes) -> tuple | None:
    m = parser.regex.match(line)
    return None if m is None else m.group(*parser.groups)


def test_nginx_presets() -> None:
    combined = compile_format("combined", "nginx")
    assert fields(combined, COMBINED) == (b"POST", b"302", b"512", None, None)
    main_fmt = compile_format("main", "nginx")
    # X-Forwarded-For client lists and an empty one ("-") both parse.
    assert fields(main_fmt, COMBINED + b' "198.51.100.7, 10.0.0.2"')[:3] == (b"POST", b"302", b"512")
    assert fields(main_fmt, COMBINED + b' "-"') is not None
    assert fields(main_fmt, COMBINED) is None  # main has one more field than combined
    common = compile_format("common", "nginx")
    assert fields(common, COMBINED.split(b' "https')[0])[:3] == (b"POST", b"302", b"512")


def test_apache_presets_and_escapes() -> None:
    vhost = compile_format("vhost_combined", "apache")
    line = (b'www.example.com:443 192.0.2.1 - - [28/Nov/2026:07:37:18 +0000] "GET /a\\"b HTTP/1.1" 404 - '
            b'"-" "ua \\"quoted\\""')
    assert fields(vhost, line)[:3] == (b"GET", b"404", b"-")
    combined = compile_format("combined", "apache")
    assert fields(combined, COMBINED)[:3] == (b"POST", b"302", b"512")
    assert fields(compile_format("common", "apache"), b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] '
                                                      b'"GET /apache_pb.gif HTTP/1.0" 200 2326')[:3] \
        == (b"GET", b"200", b"2326")


def test_request_times_feed_the_histograms(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(
        b'1.2.3.4 [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 10 0.004 "0.002, 0.001"\n'
        b'1.2.3.4 [28/Nov/2026:07:37:18 +0000] "GET /x HTTP/1.1" 502 0 1.500 "-"\n'
        b'1.2.3.4 [28/Nov/2026:07:37:18 +0000] "HEAD / HTTP/1.1" 200 0 0.020 "0.019 : 0.001"\n')
    apache_log = tmp_path / "apache.log"
    apache_log.write_bytes(b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 5 250000\n'
                           b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 5 3000000\n')
    ms_log = tmp_path / "ms.log"
    ms_log.write_bytes(b'1.2.3.4 "GET / HTTP/1.1" 200 7\n')
    cfg = parse_config(f"""
logs:
  - path: {log}
    type: nginx_access
    name: web
    start_at: beginning
    format: '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time "$upstream_response_time"'
    upstream_histogram: true
  - path: {apache_log}
    type: apache_access
    name: apache
    start_at: beginning
    format: '%h %l %u %t \\"%r\\" %>s %b %D'
  - path: {ms_log}
    type: apache_access
    name: ms
    start_at: beginning
    format: '%h "%r" %>s %{{ms}}T'
""", "exporter.yml")
    m = LogManager([source_from_config(e) for e in cfg.logs])
    m.poll(at_startup=True)
    web = m.counters["web"]
    assert web.requests == {("GET", "200"): 1, ("GET", "502"): 1, ("HEAD", "200"): 1}
    assert web.parse_errors == 0 and web.response_bytes == 10
    assert web.duration.count == 3 and web.duration.sum == pytest.approx(1.524)
    assert web.upstream.count == 2 and web.upstream.sum == pytest.approx(0.023)  # "-" is no time
    apache = m.counters["apache"]
    assert apache.duration.count == 2 and apache.duration.sum == pytest.approx(3.25)  # %D is microseconds
    ms = m.counters["ms"]
    assert ms.parse_errors == 0 and ms.duration.sum == pytest.approx(0.007)
    text = render(m.families()).decode()
    assert 'fleetmon_http_upstream_response_duration_seconds_count{log="web"} 2' in text
    assert 'fleetmon_http_request_duration_seconds_bucket{log="apache",le="0.25"} 1' in text
    m.stop()


def test_unparsable_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    good = COMBINED + b' "-"\n'
    log.write_bytes(good + b"garbage\n" + COMBINED + b"\n" + b'"' * 5000 + b"\n" + good)
    cfg = parse_config(f"logs: [{{path: {log}, type: nginx_access, name: web, start_at: beginning, format: main}}]")
    m = LogManager([source_from_config(e) for e in cfg.logs])
    m.poll(at_startup=True)
    c = m.counters["web"]
    assert (c.lines, c.parse_errors, sum(c.requests.values())) == (5, 3, 2)
    m.stop()


@pytest.mark.parametrize(("typ", "fmt", "want"), [
    ("nginx_access", "$remote_addr $bogus_var $status", "unsupported nginx variable $bogus_var"),
    ("nginx_access", "$remote_addr$remote_user $status", "$remote_addr and $remote_user have no text between"),
    ("nginx_access", "$remote_addr $body_bytes_sent", "no status field"),
    ("nginx_access", "vhost_combined", "vhost_combined is an apache preset"),
    ("apache_access", "main", "main is an nginx preset"),
    ("apache_access", "%h %Z %>s", "unsupported Apache directive %Z"),
    ("apache_access", "%h %{%d/%b}t %>s", "unsupported Apache directive %{%d/%b}t"),
    ("apache_access", "%h %{xs}T %>s", "unsupported Apache directive %{xs}T"),
])
def test_bad_formats_name_file_line_and_variable(tmp_path: Path, typ: str, fmt: str, want: str) -> None:
    p = tmp_path / "exporter.yml"
    p.write_text(f"listen: 127.0.0.1:1\nlogs:\n  - path: /x.log\n    type: {typ}\n    format: '{fmt}'\n")
    r = CliRunner().invoke(main, ["check-config", "--config", str(p)])
    assert r.exit_code == 2
    assert f"{p}:5: logs[0].format: " in r.output and want in r.output, r.output
    r = CliRunner().invoke(main, ["--config", str(p)])
    assert r.exit_code == 2 and want in r.output


def test_format_options_are_checked() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config("logs:\n  - {path: /x, type: syslog, format: main}\n"
                     "  - {path: /y, type: nginx_access, upstream_histogram: true}\n"
                     "  - {path: /z, type: nginx_error, multiline: {prefixes: [1]}}\n", "c.yml")
    text = "\n".join(ei.value.problems)
    assert "c.yml:2: logs[0].format: only for nginx_access and apache_access logs" in text
    assert "c.yml:3: logs[1].upstream_histogram: needs a format" in text
    assert "c.yml:4: logs[2].multiline.prefixes[0]: must be a non-empty string" in text
    with pytest.raises(FormatError):
        compile_format("", "nginx")
