"""Line parsers: bytes in, a small tuple out (or None for a line that does not parse).

Pure functions over bytes, so they can be fuzzed and benchmarked without files.
Matching on bytes avoids decoding every line; only label values that survive the
cardinality guards are decoded.

Every pattern here runs in time linear in the line length: each repeated piece is
possessive (``*+``, ``++``) or atomic (``(?>...)``), and no two adjacent pieces can
match the same characters, so the matcher never backtracks into a field it has
finished (Python 3.11 ``re``). A scanner's 8 KB run of letters costs what any 8 KB
line costs (tests/exporter/test_parsers.py measures the ratio).
"""

from __future__ import annotations

import re

# Methods that keep their own label value; anything else folds into OTHER.
HTTP_METHODS = frozenset({
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
})

# The inside of a quoted field: no raw quote or newline, backslash escapes allowed (Apache
# writes \"; nginx writes \x22). Unrolled and possessive: one pass, no backtracking.
QUOTED_BODY = rb'[^"\\\n]*+(?:\\.[^"\\\n]*+)*+'
_Q = rb'"(' + QUOTED_BODY + rb')"'
# The method is the first word of the request line when a space follows it; the atomic
# group gives the letters back to the rest of the field without retrying other lengths.
REQUEST_METHOD = rb"(?>([A-Za-z]{1,20}+) |)"
# Without ``format:``: combined and common log formats (nginx's "combined" is Apache's),
# nginx's "main" (combined plus "$http_x_forwarded_for"), and an optional trailing request
# time (nginx $request_time in seconds, e.g. "0.123").
ACCESS_RE = re.compile(
    rb"\S++ \S++ \S++ \[[^\]\n]*+\] "
    rb'"' + REQUEST_METHOD + QUOTED_BODY + rb'" '
    rb"(\d{3}) (\d++|-)"
    rb"(?: " + _Q + rb" " + _Q + rb'(?: "' + QUOTED_BODY + rb'")?+)?+'
    rb"(?: (\d++(?:\.\d++)?+))?+(){0}[ \t\r]*+$"
)
# Groups of ACCESS_RE in the order every access parser hands them out:
# method, status, bytes, request time, upstream response time (never set here).
ACCESS_GROUPS = (1, 2, 3, 6, 7)


def parse_access(line: bytes) -> tuple[bytes | None, bytes, int, float | None] | None:
    """(method, status, response bytes, request time seconds or None), or None."""
    m = ACCESS_RE.match(line)
    if m is None:
        return None
    method, status, nbytes, rt, _ = m.group(*ACCESS_GROUPS)
    return method, status, 0 if nbytes == b"-" else int(nbytes), None if rt is None else float(rt)


SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_MONTH = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# RFC 5424: <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID ...
SYSLOG_5424_RE = re.compile(rb"<(\d{1,3})>\d{1,2} \S++ \S++ \S++ \S++ \S++(?: |$)")
# RFC 3164 as sent (<PRI>Mmm dd hh:mm:ss host tag: msg) or as rsyslog writes it to
# /var/log/syslog (no PRI unless a template adds it, see deploy/rsyslog-fleetmon.conf):
# traditional "Mmm dd", "Mmm  d" or "Mmm d", or an RFC 3339 stamp with or without zone.
SYSLOG_3164_RE = re.compile(
    rb"(?:<(\d{1,3})>)?+"
    rb"(?:" + _MONTH + rb"(?: \d{1,2}+|  \d) \d\d:\d\d:\d\d"
    rb"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d++)?+(?:Z|[+-]\d\d:?\d\d)?+)"
    rb" \S++ [^\s:\[]*+(?:\[[^\]\n]*+\])?+:?(?: |$)"
)


def parse_syslog(line: bytes) -> str | None:
    """The severity name of a syslog line, "unknown" when the file carries no PRI, or None."""
    m = SYSLOG_5424_RE.match(line) or SYSLOG_3164_RE.match(line)
    if m is None:
        return None
    pri = m.group(1)
    if pri is None:
        return "unknown"
    p = int(pri)
    if p > 191:
        return None
    return SEVERITIES[p & 7]


def severity_of_priority(value: object) -> str | None:
    """journald's PRIORITY field ("0".."7") -> a severity name; None when invalid."""
    if isinstance(value, str) and len(value) == 1 and "0" <= value <= "7":
        return SEVERITIES[int(value)]
    return None


ERROR_LEVELS = frozenset({"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"})
_LEVEL_ALIASES = {"warning": "warn", "err": "error", "critical": "crit", "emergency": "emerg"}

# nginx: "2026/11/28 07:37:18 [error] 1234#1234: *5 message"
NGINX_ERROR_RE = re.compile(rb"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[([a-z]{1,10}+)\] ")
# Apache 2.4: "[Sat Nov 28 07:37:18.123456 2026] [core:error] [pid 1:tid 2] ...";
# Apache 2.2: "[Sat Nov 28 07:37:18 2026] [error] [client 1.2.3.4] ..."
APACHE_ERROR_RE = re.compile(
    rb"\[[A-Z][a-z]{2} [^\]\n]{10,40}+\] \[(?:[\w.-]{0,40}+:)?+([a-z]{1,10}+\d?)\]")


def _level(raw: bytes) -> str:
    lv = raw.decode("ascii", "replace")
    lv = _LEVEL_ALIASES.get(lv, lv)
    if lv.startswith("trace"):
        return "debug"
    return lv if lv in ERROR_LEVELS else "other"


def parse_nginx_error(line: bytes) -> str | None:
    m = NGINX_ERROR_RE.match(line)
    return None if m is None else _level(m.group(1))


def parse_apache_error(line: bytes) -> str | None:
    m = APACHE_ERROR_RE.match(line)
    return None if m is None else _level(m.group(1))


# Continuation lines (multi-line records): by default, per type. A line that does not
# parse as a record but starts like one of these joins the record before it.
DEFAULT_CONTINUATION: dict[str, tuple[bool, tuple[str, ...]]] = {
    # (indented lines continue, line prefixes that continue)
    "syslog": (True, ()),
    "nginx_error": (True, ("PHP message: ", "Stack trace:", "#")),
    "apache_error": (True, ("PHP message: ", "Stack trace:", "#")),
    "nginx_access": (False, ()),
    "apache_access": (False, ()),
    "journald": (False, ()),
}

FILE_LOG_TYPES = ("syslog", "nginx_access", "apache_access", "nginx_error", "apache_error")
LOG_TYPES = (*FILE_LOG_TYPES, "journald")
