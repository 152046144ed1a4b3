"""YAML loaders whose only booleans are ``true`` and ``false``.

PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on``, ``off``, ``y`` and ``n`` are booleans
too: ``allow_unauthenticated: off`` or a country code ``NO`` silently become False. Our config
files accept exactly ``true`` / ``false``; every other spelling stays a string, so the
validator that expects a boolean reports it with the key's name instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_BOOL_TAG = "tag:yaml.org,2002:bool"
_STRICT_BOOL = re.compile(r"^(?:true|false)$")


def _strict(base: type) -> type:
    """A subclass of ``base`` with the YAML 1.1 boolean resolver replaced by ``true|false``."""
    cls = type(f"Strict{base.__name__}", (base,), {})
    # The resolver table is a class attribute shared with SafeLoader: copy before changing it.
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver(_BOOL_TAG, _STRICT_BOOL, list("tf"))
    return cls


StrictSafeLoader: type = _strict(yaml.SafeLoader)
StrictCSafeLoader: type = _strict(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else StrictSafeLoader


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with strict booleans."""
    return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> yaml.Node | None:
    """``yaml.compose`` with strict booleans (scalar tags are resolved while composing)."""
    return yaml.compose(text, Loader=StrictSafeLoader)


def parse_bool(value: Any, key: str) -> bool:
    """``value`` if it is a real boolean, else ValueError naming ``key``.

    A quoted ``"false"`` is a string and ``bool("false")`` is True: never coerce.
    """
    if isinstance(value, bool):
        return value
    raise ValueError(f"{key}: must be true or false (unquoted), got {value!r}")
