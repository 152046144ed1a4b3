"""Web servers' own access log formats compiled into linear-time parsers.

``format:`` on an access log takes nginx ``log_format`` text (``$remote_addr - ...``),
Apache ``LogFormat`` text (``%h %l %u %t \\"%r\\" %>s %b ...``) or a preset name. The
string is compiled once, like prometheus-nginxlog-exporter and GoAccess do: each
variable becomes one field and the literal text between variables anchors the parse.
A field is matched possessively up to the first byte of the literal after it (or, in
quotes, up to the closing quote with backslash escapes), so the whole line is one
left-to-right pass: no backtracking whatever the input.

Only the fields the counters use are captured: method, status, response bytes,
request time and (optionally) upstream response time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.logs import parsers

PRESETS: dict[str, dict[str, str]] = {
    "nginx": {
        "combined": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                    '"$http_referer" "$http_user_agent"',
        "common": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent',
        # The default log_format of the RHEL/Fedora nginx packages and the official image.
        "main": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"',
    },
    "apache": {
        "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
        "common": '%h %l %u %t "%r" %>s %b',
        # Debian's apache2.conf.
        "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    },
}


class FormatError(ValueError):
    """A format string that cannot be compiled; the message names the variable."""


@dataclass(frozen=True)
class AccessParser:
    """A compiled access log format. ``regex.match(line).group(*groups)`` gives
    (method, status, bytes, request time, upstream response time), None where absent."""

    regex: re.Pattern[bytes]
    groups: tuple[int, int, int, int, int]
    rt_scale: float  # request time field -> seconds
    has_upstream: bool
    text: str  # the format string (or "default")


DEFAULT_PARSER = AccessParser(parsers.ACCESS_RE, parsers.ACCESS_GROUPS, 1.0, False, "default")

_NUM = rb"(\d++|-)"
_SECONDS = rb"(\d++(?:\.\d++)?+|-)"
# nginx joins the times of several upstreams with ", " (and " : " across internal redirects).
_UPSTREAM_TIMES = rb"((?:\d++(?:\.\d++)?+|-)(?:(?:, | : )(?:\d++(?:\.\d++)?+|-))*+)"

NGINX_VARIABLES = frozenset({
    "remote_addr", "remote_user", "remote_port", "time_local", "time_iso8601", "msec", "request",
    "request_method", "request_uri", "uri", "args", "query_string", "server_protocol", "scheme",
    "status", "body_bytes_sent", "bytes_sent", "request_length", "request_time", "host", "hostname",
    "server_name", "server_addr", "server_port", "connection", "connection_requests", "pipe",
    "gzip_ratio", "pid", "request_id", "realip_remote_addr", "binary_remote_addr", "document_root",
    "https", "proxy_protocol_addr", "content_type", "content_length",
})
NGINX_PREFIXES = ("http_", "sent_http_", "cookie_", "arg_", "upstream_", "ssl_", "geoip_", "proxy_")

APACHE_SIMPLE = frozenset("aABbDfhHklLmpPqrRstTuUvVXIOS")
APACHE_BRACED = frozenset("aCeinoptT^")


@dataclass
class _Field:
    name: str  # "$status", "%>s", ... as written
    kind: str  # method | request | status | bytes | bytes_all | rt | upstream | generic
    scale: float = 1.0


def _nginx_fields(text: str) -> list[str | _Field]:
    out: list[str | _Field] = []
    lit = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$":
            lit.append(ch)
            i += 1
            continue
        m = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))").match(text, i)
        if m is None:
            raise FormatError(f"'$' at character {i + 1} is not followed by a variable name")
        name = m.group(1) or m.group(2)
        if name not in NGINX_VARIABLES and not name.startswith(NGINX_PREFIXES):
            raise FormatError(f"unsupported nginx variable ${name}")
        if lit:
            out.append("".join(lit))
            lit = []
        kind = {"status": "status", "body_bytes_sent": "bytes", "bytes_sent": "bytes_all",
                "request": "request", "request_method": "method", "request_time": "rt",
                "upstream_response_time": "upstream"}.get(name, "generic")
        if name in ("upstream_connect_time", "upstream_header_time"):
            kind = "upstream_other"
        out.append(_Field(f"${name}", kind))
        i = m.end()
    if lit:
        out.append("".join(lit))
    return out


def _apache_fields(text: str) -> list[str | _Field]:
    # LogFormat strings are copied from httpd.conf, where quotes inside are written \".
    text = text.replace('\\"', '"').replace("\\t", "\t")
    out: list[str | _Field] = []
    lit: list[str] = []
    pat = re.compile(r"%([<>]?)(?:\{([^}]*)\})?([<>]?)([A-Za-z]|\^t[io])")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            lit.append(ch)
            i += 1
            continue
        if text.startswith("%%", i):
            lit.append("%")
            i += 2
            continue
        m = pat.match(text, i)
        if m is None:
            raise FormatError(f"unsupported Apache directive {text[i:i + 6]!r} at character {i + 1}")
        arg, letters = m.group(2), m.group(4)
        letter = letters
        end = m.end()
        written = text[i:end]
        if letter.startswith("^") or (arg is None and letter not in APACHE_SIMPLE) \
                or (arg is not None and letter not in APACHE_BRACED):
            raise FormatError(f"unsupported Apache directive {written}")
        if letter == "t" and arg is not None:
            raise FormatError(f"unsupported Apache directive {written} (custom time formats are not supported; use %t)")
        kind, scale = "generic", 1.0
        if letter == "t":
            kind = "time"
        elif letter == "s":
            kind = "status"
        elif letter in "bB":
            kind = "bytes"
        elif letter == "O":
            kind = "bytes_all"
        elif letter == "r":
            kind = "request"
        elif letter == "m":
            kind = "method"
        elif letter == "D":
            kind, scale = "rt", 1e-6
        elif letter == "T":
            unit = (arg or "s").lower()
            if unit not in ("s", "ms", "us"):
                raise FormatError(f"unsupported Apache directive {written} (units: s, ms, us)")
            kind, scale = "rt", {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]
        if lit:
            out.append("".join(lit))
            lit = []
        out.append(_Field(written, kind, scale))
        i = end
    if lit:
        out.append("".join(lit))
    return out


def compile_format(text: str, dialect: str, upstream: bool = False) -> AccessParser:
    """Compile nginx (``dialect="nginx"``) or Apache (``"apache"``) format text, or a
    preset name, into an AccessParser. Raises FormatError naming the variable."""
    presets = PRESETS[dialect]
    if text in presets:
        text = presets[text]
    elif re.fullmatch(r"[a-z_]+", text):
        known = ", ".join(sorted(presets))
        other = "apache" if dialect == "nginx" else "nginx"
        hint = f" ({text} is an {other} preset)" if text in PRESETS[other] else ""
        raise FormatError(f"unknown {dialect} preset {text!r}{hint}; presets: {known}, or a format string")
    items = _nginx_fields(text) if dialect == "nginx" else _apache_fields(text)
    fields = [x for x in items if isinstance(x, _Field)]
    if not any(f.kind == "status" for f in fields):
        raise FormatError("the format has no status field ($status or %>s): requests cannot be counted")
    for a, b in zip(items, items[1:], strict=False):
        if isinstance(a, _Field) and isinstance(b, _Field):
            raise FormatError(f"{a.name} and {b.name} have no text between them: the line cannot be split")

    def pick(*kinds: str) -> _Field | None:
        for k in kinds:
            for f in fields:
                if f.kind == k:
                    return f
        return None

    wanted = {
        "method": pick("method", "request"),
        "status": pick("status"),
        "bytes": pick("bytes", "bytes_all"),
        "rt": pick("rt"),
        "upstream": pick("upstream") if upstream else None,
    }
    if upstream and wanted["upstream"] is None:
        raise FormatError("upstream_histogram needs $upstream_response_time in the format")
    chosen = {id(f): k for k, f in wanted.items() if f is not None}
    pattern = []
    group = 0
    index: dict[str, int] = {}
    for n, item in enumerate(items):
        if isinstance(item, str):
            pattern.append(re.escape(item.encode("utf-8")))
            continue
        prev = items[n - 1] if n > 0 else None
        nxt = items[n + 1] if n + 1 < len(items) else None
        quoted = isinstance(prev, str) and prev.endswith('"') and isinstance(nxt, str) and nxt.startswith('"')
        stop = nxt.encode("utf-8")[:1] if isinstance(nxt, str) else b""
        if quoted:
            generic = parsers.QUOTED_BODY
        elif stop:
            generic = b"[^" + re.escape(stop) + rb"\n]*+"
        else:
            generic = rb"[^\n]*+"
        role = chosen.get(id(item))
        if item.kind == "request":
            if role == "method":
                group += 1
                index["method"] = group
                pattern.append(parsers.REQUEST_METHOD + generic)
            else:
                pattern.append(generic)
            continue
        typed = {"time": rb"(\[[^\]\n]*+\])", "status": rb"(\d{3})", "bytes": _NUM, "bytes_all": _NUM,
                 "method": rb"([A-Za-z]{1,20}+|-)",
                 # nginx writes seconds with milliseconds ("0.042"); Apache %D and %T integers.
                 "rt": _SECONDS if item.name.startswith("$") else _NUM,
                 "upstream": _UPSTREAM_TIMES, "upstream_other": _UPSTREAM_TIMES}.get(item.kind)
        if typed is None:
            pattern.append(generic)
            continue
        if role is None:
            # Keep the field's shape (a status is 3 digits wherever it is) without capturing it:
            # every typed pattern is one capturing group, "(" -> "(?:".
            pattern.append(b"(?:" + typed[1:])
            continue
        group += 1
        index[role] = group
        pattern.append(typed)
    pattern.append(rb"[ \t\r]*+$")
    order = ("method", "status", "bytes", "rt", "upstream")
    for k in order:
        if k not in index:
            group += 1
            index[k] = group
            pattern.append(b"(){0}")  # a group that never matches: None, like an absent field
    rt_field = wanted["rt"]
    try:
        regex = re.compile(b"".join(pattern))
    except re.error as exc:  # pragma: no cover - every piece above is a fixed, valid pattern
        raise FormatError(f"cannot compile the format: {exc}") from exc
    return AccessParser(regex, tuple(index[k] for k in order), rt_field.scale if rt_field else 1.0,
                        wanted["upstream"] is not None, text)


def dialect_of(log_type: str) -> str:
    return "apache" if log_type.startswith("apache") else "nginx"


def upstream_seconds(raw: bytes) -> float | None:
    """nginx's "$upstream_response_time" ("0.012", "0.010, 0.004", "-") -> total seconds."""
    total, seen = 0.0, False
    for part in raw.replace(b" : ", b", ").split(b", "):
        if part != b"-":
            total += float(part)
            seen = True
    return total if seen else None
