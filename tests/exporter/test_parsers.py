"""Line parsers: known lines from each format, continuation lines, and adversarial input
(hypothesis): every parser runs in linear time, measured as a cost-per-byte ratio."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
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


def test_syslog_stamps_without_zone_and_single_digit_days() -> None:
    assert parsers.parse_syslog(b"2026-11-28T07:37:18.123456 vm sshd[9]: Accepted key") == "unknown"
    assert parsers.parse_syslog(b"2026-11-28T07:37:18 vm cron[1]: ok") == "unknown"
    assert parsers.parse_syslog(b"Nov 8 07:37:18 vm kernel: x") == "unknown"
    assert parsers.parse_syslog(b"Nov  8 07:37:18 vm kernel: x") == "unknown"
    # What deploy/rsyslog-fleetmon.conf writes: <PRI> before an RFC 3339 stamp.
    assert parsers.parse_syslog(b"<27>2026-11-28T07:37:18.123456+00:00 vm app[3]: failed") == "err"
    assert parsers.parse_syslog(b"<30>2026-11-28T07:37:18.123456 vm app[3]: started") == "info"
    assert parsers.parse_syslog(b"Nov 123 07:37:18 vm x: y") is None


def test_continuation_lines_join_the_record_before_them() -> None:
    php = [
        b'2026/11/28 07:37:18 [error] 12#12: *3 FastCGI sent in stderr: "PHP message: PHP Fatal error:  boom',
        b"PHP message: PHP Stack trace:",
        b"Stack trace:",
        b"#0 {main}",
        b'  thrown in /var/www/index.php on line 3" while reading response header from upstream',
        b"2026/11/28 07:37:19 [warn] 12#12: *4 an upstream response is buffered",
        b"garbage that is no continuation",
    ]
    c = SourceCounters("x", "nginx_error")
    c.feed(php)
    assert c.levels == {"error": 1, "warn": 1}
    assert (c.lines, c.continuations, c.parse_errors) == (7, 4, 1)
    # Syslog: indented continuation lines; the same lines with multi-line off are errors.
    lines = [b"<11>Nov 28 07:37:18 vm app[1]: Traceback:", b"    File x.py, line 3", b"\tValueError"]
    on = SourceCounters("x", "syslog")
    on.feed(lines)
    assert (on.severities, on.continuations, on.parse_errors) == ({"err": 1}, 2, 0)
    off = SourceCounters("x", "syslog", continuation=(False, ()))
    off.feed(lines)
    assert (off.continuations, off.parse_errors) == (0, 2)
    # Access logs have no continuation by default: an indented line is an error.
    acc = SourceCounters("x", "nginx_access")
    acc.feed([b"   indented"])
    assert acc.parse_errors == 1


# --------------------------------------------------------------------- linear time
# Every parser's cost per byte on adversarial input, relative to its cost per byte on
# a normal line measured in the same run: a backtracking blow-up is 100x-10,000x; a
# linear parser stays near (usually below) 1x. The budget leaves room for a loaded machine.
RATIO_BUDGET = 5.0

NORMAL_ACCESS = (b'203.0.113.9 - - [28/Nov/2026:07:37:18 +0000] "GET /api/v1/item/1234 HTTP/1.1" 200 1234 '
                 b'"https://example.com/ref" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"')


def _parsers() -> dict[str, tuple]:
    from exporter.logs.formats import compile_format

    main = compile_format("main", "nginx").regex.match
    vhost = compile_format("vhost_combined", "apache").regex.match
    custom = compile_format('$host $remote_addr [$time_local] "$request" $status $body_bytes_sent '
                            '$request_time "$upstream_response_time"', "nginx").regex.match
    return {
        "default": (parsers.ACCESS_RE.match, NORMAL_ACCESS + b" 0.042"),
        "main": (main, NORMAL_ACCESS + b' "10.0.0.1, 10.0.0.2"'),
        "vhost_combined": (vhost, b"www.example.com:443 " + NORMAL_ACCESS),
        "custom": (custom, b'example.com 1.2.3.4 [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 5 0.1 "0.1, 0.2"'),
        "syslog": (parsers.parse_syslog, b"<13>Nov 28 07:37:18 vm systemd[1]: Started Session 5 of user root."),
        "nginx_error": (parsers.parse_nginx_error,
                        b'2026/11/28 07:37:18 [error] 1234#1234: *5 open() "/var/www/x" failed (2: No such file)'),
        "apache_error": (parsers.parse_apache_error,
                         b"[Sat Nov 28 07:37:18.123456 2026] [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH00124"),
    }


def _per_byte(fn, line: bytes, budget_s: float = 0.02) -> float:
    """Best-of-5 seconds per byte of ``fn(line)``, each sample at least ``budget_s`` long."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(line)
        if time.perf_counter() - t0 >= budget_s:
            break
        n *= 4
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(line)
        best = min(best, (time.perf_counter() - t0) / n)
    return best / len(line)


@pytest.fixture(scope="module")
def normal_costs() -> dict[str, float]:
    return {name: _per_byte(fn, line) for name, (fn, line) in _parsers().items()}


# The prefixes take a parser deep into a line before the garbage starts, where a
# backtracking matcher has the most to retry.
PREFIXES = (b"", b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "', b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET ',
            b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 5 "', b"<13>Nov 28 07:37:18 vm ",
            b"2026/11/28 07:37:18 [", b"[Sat Nov 28 07:37:18.1 2026] [", b"www.example.com:443 ")
UNITS = (b"A", b'"', b" ", b"\\", b"[", b"]", b"1", b":", b'a "', b'" ', b"\\\"", b"1.", b", ", b"GET ", b"\t")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), unit=st.sampled_from(UNITS), size=st.sampled_from([8 * 1024, 64 * 1024]),
       suffix=st.sampled_from([b"", b'"', b" 200 5", b'" 200 5 "-" "-"']))
def test_adversarial_lines_cost_linear_time(normal_costs: dict[str, float], prefix: bytes, unit: bytes, size: int,
                                            suffix: bytes) -> None:
    line = prefix + unit * (size // len(unit)) + suffix
    for name, (fn, _) in _parsers().items():
        ratio = _per_byte(fn, line, budget_s=0.005) / normal_costs[name]
        assert ratio < RATIO_BUDGET, (name, prefix, unit, size, suffix, ratio)


def test_one_mib_lines_and_scanner_lines_cost_linear_time(normal_costs: dict[str, float]) -> None:
    big = [b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "' + b"A" * (1 << 20),
           b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "GET /' + b"a" * (1 << 20) + b' HTTP/1.1" 200',
           b'"' * (1 << 20), b" " * (1 << 20)]
    # A scanner's short request lines: per line, within the budget of a normal line.
    scanner = [b'1.2.3.4 - - [28/Nov/2026:07:37:18 +0000] "' + b"A" * n + b'" 400 0 "-" "-"' for n in (50, 500)]
    for name, (fn, normal) in _parsers().items():
        for line in big:
            assert _per_byte(fn, line, budget_s=0.005) / normal_costs[name] < RATIO_BUDGET, (name, line[:60])
        per_line_normal = normal_costs[name] * len(normal)
        for line in scanner:
            per_line = _per_byte(fn, line, budget_s=0.005) * len(line)
            assert per_line / per_line_normal < RATIO_BUDGET * max(1.0, len(line) / len(normal)), (name, len(line))


def test_default_access_parser_takes_nginx_main_lines() -> None:
    main_line = (b'203.0.113.9 - - [28/Nov/2026:07:37:18 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0" '
                 b'"198.51.100.7, 10.0.0.2"')
    assert parsers.parse_access(main_line) == (b"GET", b"200", 5, None)
    assert parsers.parse_access(main_line + b" 0.250") == (b"GET", b"200", 5, 0.25)


def test_journal_entries_bad_json_and_priorities_are_counted() -> None:
    c = SourceCounters("j", "journald")
    cursor = c.feed_journal([b'{"PRIORITY":"3","__CURSOR":"s=1"}', b"not json", b'{"PRIORITY":"9","__CURSOR":"s=2"}',
                             b"[1, 2]", b'{"MESSAGE":"no priority","__CURSOR":"s=3"}', b'{"PRIORITY":["3","4"]}'])
    assert cursor == "s=3"
    assert c.severities == {"err": 1, "unknown": 1}
    assert (c.lines, c.parse_errors) == (6, 4)
