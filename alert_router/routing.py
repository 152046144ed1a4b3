"""Who gets an alert, on which channel: a pure function of its labels.

The ``notify`` label (set by rulesync) names recipient groups, comma-separated; an alert
without it, or whose groups are all unknown, goes to the ``default`` group. Each Apprise
URL is classed as ``email``, ``sms`` or ``push`` by its scheme, and the alert's severity
picks which of those channels it may use (``severity_channels``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CHANNELS = ("email", "sms", "push")
DEFAULT_GROUP = "default"

EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
# Apprise services that deliver text messages to a phone number.
SMS_SCHEMES = frozenset({
    "twilio", "sns", "vonage", "nexmo", "d7sms", "clicksend", "msg91", "bulksms", "bulkvs", "burstsms",
    "kudosity", "sinch", "plivo", "kavenegar", "clickatell", "smseagle", "smseagles", "httpsms", "smsmgr",
    "smsmanager", "serwersms", "seven", "46elks", "elks", "atalk", "dapnet", "freemobile", "mobilemessage",
    "mobilemsg", "smsc", "smstunnel", "telnyx", "voipms", "kaleyra", "klr", "exotel", "infobip", "msgbird",
    "octopush", "smpp", "smpps", "notifyre", "telesign", "cm", "ringc", "sfr",
})

# Default per-severity channels: page loudly for critical, mail the rest.
DEFAULT_SEVERITY_CHANNELS: dict[str, list[str]] = {
    "critical": ["email", "sms", "push"],
    "warning": ["email"],
    "info": ["email"],
    "default": ["email", "sms", "push"],
}


def channel_of(url: str) -> str:
    """``email``, ``sms`` or ``push`` for an Apprise URL, by its scheme."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in EMAIL_SCHEMES:
        return "email"
    if scheme in SMS_SCHEMES:
        return "sms"
    return "push"


def groups_of(labels: Mapping[str, str], known: Sequence[str] | set[str]) -> tuple[list[str], list[str]]:
    """(groups to notify, unknown names in ``notify``). Falls back to ``default``."""
    wanted = [g.strip() for g in labels.get("notify", "").split(",") if g.strip()]
    seen: list[str] = []
    unknown: list[str] = []
    for g in wanted:
        if g in known:
            if g not in seen:
                seen.append(g)
        elif g not in unknown:
            unknown.append(g)
    if not seen and DEFAULT_GROUP in known:
        seen = [DEFAULT_GROUP]
    return seen, unknown


@dataclass(frozen=True)
class Route:
    group: str
    url: str
    channel: str


def route(labels: Mapping[str, str], recipients: Mapping[str, Sequence[str]],
          severity_channels: Mapping[str, Sequence[str]] | None = None) -> list[Route]:
    """Every (group, Apprise URL, channel) an alert with ``labels`` goes to, each URL once.

    If the severity allows none of the channels the chosen groups have, the alert goes to all
    of their URLs anyway: a push where only email was wanted beats silence.
    """
    sev_map = severity_channels or DEFAULT_SEVERITY_CHANNELS
    severity = labels.get("severity", "")
    allowed = sev_map.get(severity, sev_map.get("default", CHANNELS))
    groups, _unknown = groups_of(labels, set(recipients))
    candidates: list[Route] = []
    seen: set[str] = set()
    for g in groups:
        for url in recipients.get(g, ()):
            if url in seen:
                continue
            seen.add(url)
            candidates.append(Route(g, url, channel_of(url)))
    chosen = [r for r in candidates if r.channel in allowed]
    return chosen or candidates
