"""alert_router: durable Alertmanager webhook receiver that delivers through Apprise."""

from __future__ import annotations


def create_app(config=None, **kwargs):  # noqa: ANN001 - re-exported lazily (keeps CLI import light)
    from .app import create_app as _create_app

    return _create_app(config, **kwargs)


__all__ = ["create_app"]
