"""Masking of secrets (Apprise URLs, tokens) before anything reaches a log or an error."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<key>(?:pass|password|token|secret|key|apikey|api_key|auth|to|from|user|phone)=)[^&\s]+",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """Keep the scheme and host so an operator can tell which service; hide credentials,
    path and query values (Apprise puts tokens and phone numbers in all of them)."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#]*)", url or "")
    if not m:
        return "<unparseable url>"
    scheme, netloc = m.group(1), m.group(2)
    host = netloc.rsplit("@", 1)[-1]
    # Host part of several schemes is itself a token (ntfy topic, pushover key ...); keep 4 chars.
    if len(host) > 12:
        host = host[:4] + "..."
    return f"{scheme}://***@{host}/***" if "@" in netloc or "/" in url[m.end():] else f"{scheme}://{host}"


def scrub(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove known secret strings and anything URL-credential shaped from free text."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    return _QUERY_SECRET.sub(lambda m: m.group("key") + "***", text)
