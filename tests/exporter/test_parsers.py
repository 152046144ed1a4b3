"""Line parsers: known lines from each format, and adversarial input (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.logs import parsers
from exporter.logs.counters import SourceCounters


def test_access_formats() -> None:
    combined = b'203.0.113.9 - - [28/Nov/2026:07:37:18 +0000] "GET /a?b=c HTTP/1.1" 200 1234 "-" "curl/8.0"'
    assert parsers.parse_access(combined) == (b"GET", b"200", 1234, None)
    common = b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
    assert parsers.parse_access(common) == (b"GET", b"200", 2326, None)
    timed = combined + b" 0.042"
    assert parsers.parse_access(timed) == (b"GET", b"200", 1234, 0.042)
    # Apache escapes quotes inside fields; nginx writes \x22. Both parse.
    esc = b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET /a\\"b HTTP/1.1" 304 - "r\\"x" "ua \\x22q\\x22"'
    assert parsers.parse_access(esc) == (b"GET", b"304", 0, None)
    # TLS on a plain port and empty requests: no method.
    assert parsers.parse_access(b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"')[:2] \
        == (None, b"400")
    assert parsers.parse_access(b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "-" 408 0 "-" "-"')[:2] == (None, b"408")
    for bad in (b"", b"garbage", b'1.2.3.4 - - [x] "GET / HTTP/1.1" 20 1', combined[:-5],
                combined + b" trailing junk"):
        assert parsers.parse_access(bad) is None, bad


def test_syslog_formats() -> None:
    assert parsers.parse_syslog(b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - 'su root' failed") == "crit"
    assert parsers.parse_syslog(b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %%") == "notice"
    assert parsers.parse_syslog(b"<13>Oct 11 22:14:15 host su: hello") == "notice"
    assert parsers.parse_syslog(b"<11>Nov  2 01:02:03 host app[12]: boom") == "err"
    # As rsyslog writes /var/log/syslog: no PRI, traditional or RFC 3339 timestamps.
    assert parsers.parse_syslog(b"Nov 28 07:37:18 vm systemd[1]: Started x.") == "unknown"
    assert parsers.parse_syslog(b"2026-11-28T07:37:18.123456+00:00 vm kernel: [ 1.0] hi") == "unknown"
    for bad in (b"", b"hello world", b"<999>1 2003-10-11T22:14:15Z h a - - - x", b"<13>"):
        assert parsers.parse_syslog(bad) is None, bad


def test_error_log_formats() -> None:
    assert parsers.parse_nginx_error(b"2026/11/28 07:37:18 [error] 1234#1234: *5 open() failed") == "error"
    assert parsers.parse_nginx_error(b"2026/11/28 07:37:18 [warn] 1#1: x") == "warn"
    assert parsers.parse_nginx_error(b"2026/11/28 07:37:18 [bogus] 1#1: x") == "other"
    assert parsers.parse_nginx_error(b"PHP message: stack trace continuation") is None
    assert parsers.parse_apache_error(
        b"[Sat Nov 28 07:37:18.123456 2026] [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH00124: x") == "error"
    assert parsers.parse_apache_error(b"[Sat Nov 28 07:37:18 2026] [warn] [client 1.2.3.4] x") == "warn"
    assert parsers.parse_apache_error(b"[Sat Nov 28 07:37:18.1 2026] [ssl:trace3] [pid 1] x") == "debug"
    assert parsers.parse_apache_error(b"[Sat Nov 28 07:37:18 2026] [mpm_event:notice] [pid 1] x") == "notice"
    assert parsers.parse_apache_error(b"random") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    lines = data.split(b"\n")
    for typ in parsers.LOG_TYPES:
        c = SourceCounters("x", typ, label_cap=5)
        c.feed(lines)
        assert c.lines == len(lines)
        assert 0 <= c.parse_errors <= c.lines
    assert parsers.parse_syslog(data) in (None, "unknown", *parsers.SEVERITIES)


methods = st.sampled_from(["GET", "POST", "HEAD", "DELETE", "PATCH", "PURGE", "get", "X"])
paths = st.text(alphabet=st.characters(blacklist_characters='"\\\n\r', blacklist_categories=("Cs",)),
                max_size=200)


@settings(max_examples=300, deadline=None)
@given(methods, paths, st.integers(100, 599), st.integers(0, 10**12),
       st.one_of(st.none(), st.floats(0, 1000, allow_nan=False).map(lambda f: f"{f:.3f}")),
       st.text(alphabet=st.characters(blacklist_characters='"\\\n', blacklist_categories=("Cs",)), max_size=100))
def test_generated_access_lines_round_trip(method: str, path: str, status: int, size: int, rt: str | None,
                                           agent: str) -> None:
    line = (f'192.0.2.1 - - [28/Nov/2026:07:37:18 +0000] "{method} {path} HTTP/1.1" {status} {size} '
            f'"-" "{agent}"' + (f" {rt}" if rt else "")).encode("utf-8")
    m, s, n, t = parsers.parse_access(line)
    assert m == method.encode() and s == str(status).encode() and n == size
    assert t == (float(rt) if rt else None)
    c = SourceCounters("x", "nginx_access")
    c.feed([line])
    ((label_method, label_status),) = c.requests
    assert label_method == (method if method in parsers.HTTP_METHODS else "OTHER")
    assert label_status == str(status)
    assert c.response_bytes == size
