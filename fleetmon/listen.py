"""Listen addresses: ``HOST:PORT`` as every fleetmon server and flag takes it.

``0.0.0.0:9847``, ``127.0.0.1:9847``, ``[::1]:9847`` (brackets for IPv6) or ``:9847`` (the
component's default host, usually all interfaces). The port must be 1-65535; a missing colon or
port is refused with the value in the message, so a typo in a unit file's flag names itself.
"""

from __future__ import annotations

from typing import Any

EXAMPLE = "HOST:PORT, e.g. 0.0.0.0:9847 or [::1]:9847"


def parse(value: Any, default_host: str = "0.0.0.0", any_port: bool = False) -> tuple[str, int]:
    """``"127.0.0.1:9847"`` -> ``("127.0.0.1", 9847)``; ValueError naming the value otherwise.

    ``any_port`` also takes port 0 (the OS picks a free one): for a server that reports the port
    it got (the exporter's ``--listen 127.0.0.1:0`` in tests), never for an address others dial.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected {EXAMPLE}, got {value!r}")
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"expected {EXAMPLE}, got {value!r}")
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address without brackets: ambiguous with the port
        raise ValueError(f"an IPv6 host needs brackets ([::1]:9847), got {value!r}")
    if not sep or not port.isdigit() or not (0 if any_port else 1) <= int(port) < 65536:
        raise ValueError(f"expected {EXAMPLE}, got {value!r}")
    return host or default_host, int(port)


def is_listen(value: Any) -> bool:
    """True when ``parse(value)`` would succeed (the schemas' ``format: listen-address``)."""
    try:
        parse(value)
    except ValueError:
        return False
    return True


def join(host: str, port: int) -> str:
    """The ``HOST:PORT`` text for a host and port, with brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
