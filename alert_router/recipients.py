"""The recipients file: group name -> Apprise URLs, with secrets expanded at load time.

``rulesync compile`` writes ``recipients: {NAME: [APPRISE_URL, ...]}`` and leaves
``${ENV_VAR}`` and ``${file:/path}`` references unexpanded; they are expanded here so that
secrets live in the environment or in files readable only by the router. Only what the
router's own configuration allows is expanded (:class:`SecretScope`: files under one
directory, variables with one prefix), so whoever writes recipient URLs cannot point a
reference at the router's token or any other secret and send it away. The file's shape is
declared once, in docs/schemas/recipients.schema.json (examples/recipients.yaml points editors
at it). The file is re-read when it changes; a bad version is reported (every problem as
file:line: key: message, never a secret) and the last good one stays in use.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmon import schema, yamldoc
from fleetmon.secrets import mask_url, scrub

log = logging.getLogger(__name__)

_REF = re.compile(r"\$\{(?:(file):([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}")


class RecipientsError(ValueError):
    """A recipients file that cannot be used; the message names file and line, no secrets."""


@dataclass(frozen=True)
class SecretScope:
    """What ``${...}`` references may read; the default allows nothing.

    ``dir``: ``${file:NAME}`` reads ``dir/NAME``; an absolute path must lie under ``dir``
    after symlinks are resolved. ``env_prefix``: ``${NAME}`` only when NAME starts with it.
    """

    dir: str | None = None
    env_prefix: str | None = None

    def file(self, ref: str, where: str) -> Path:
        if not self.dir:
            raise RecipientsError(f"{where}: ${{file:...}} references are not allowed: the router's config "
                                  f"sets no secret_dir")
        base = os.path.realpath(self.dir)
        target = os.path.realpath(os.path.join(base, ref))
        if os.path.commonpath([base, target]) != base or target == base:
            raise RecipientsError(f"{where}: ${{file:{ref}}} is outside the allowed secret_dir {self.dir}")
        return Path(target)

    def env(self, name: str, where: str) -> None:
        if not self.env_prefix:
            raise RecipientsError(f"{where}: ${{{name}}}: environment references are not allowed: the "
                                  f"router's config sets no secret_env_prefix")
        if not name.startswith(self.env_prefix):
            raise RecipientsError(f"{where}: ${{{name}}}: only variables starting with {self.env_prefix} "
                                  f"may be used (secret_env_prefix)")


@dataclass(frozen=True)
class Recipients:
    groups: dict[str, list[str]]
    secrets: frozenset[str] = field(default_factory=frozenset)

    def masked(self) -> dict[str, list[str]]:
        return {g: [mask_url(u) for u in urls] for g, urls in self.groups.items()}


EMPTY = Recipients({})


def _expand(text: str, where: str, env: Mapping[str, str], secrets: set[str], scope: SecretScope) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            path = m.group(2).strip()
            try:
                value = scope.file(path, where).read_text().strip()
            except OSError as exc:
                raise RecipientsError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None
        else:
            name = m.group(3)
            scope.env(name, where)
            if name not in env:
                raise RecipientsError(f"{where}: environment variable {name} is not set")
            value = env[name]
        if value:
            secrets.add(value)
        return value

    return _REF.sub(sub, text)


def _default_validator(url: str) -> bool:
    import apprise

    return apprise.Apprise.instantiate(url) is not None


def parse_recipients(text: str, source: str = "<recipients>", env: Mapping[str, str] | None = None,
                     validate: Callable[[str], bool] | None = _default_validator,
                     scope: SecretScope | None = None) -> Recipients:
    """Parse and expand a recipients document within ``scope`` (default: no references).

    The file's shape is docs/schemas/recipients.schema.json; what a schema cannot check (the
    references, Apprise knowing the URL) is checked here for every entry the schema passed.
    Raises :class:`RecipientsError` listing every problem, one ``file:line: key: message`` a
    line; no message ever holds a URL's value (only ``mask_url`` of it) or a secret."""
    scope = scope or SecretScope()
    env = os.environ if env is None else env
    doc = yamldoc.load_text(text)
    if doc.error:
        line, message = doc.error
        raise RecipientsError(f"{source}:{line}: {message}" if line else f"{source}: {message}")
    if doc.data is None:
        raise RecipientsError(f"{source}: empty file")
    data = doc.data
    problems: list[tuple[int, str]] = []

    def report(path: tuple[Any, ...], message: str) -> None:
        line = yamldoc.line_at(data, path)
        problems.append((line, f"{_where(source, data, path)}: {message}"))

    groups_in = data.get("recipients") if isinstance(data, dict) else None
    if isinstance(groups_in, yamldoc.LocatedDict):
        for line, key, message in _string_keys(groups_in):
            problems.append((line, f"{source}:{line}: recipients.{key}: {message}"))
    found = schema.check("recipients", data)
    for p in found:
        report(p.path, p.message)
    for key, line in doc.duplicates:
        if isinstance(groups_in, yamldoc.LocatedDict) and groups_in.lines.get(key) == line:
            report(("recipients", key), "defined twice")
        else:
            problems.append((line, f"{source}:{line}: {scrub(str(key))}: defined twice"))
    groups: dict[str, list[str]] = {}
    secrets: set[str] = set()
    if isinstance(groups_in, dict):
        bad = {p.path for p in found}
        for name, items in groups_in.items():
            if ("recipients", name) in bad:
                continue
            urls: list[str] = []
            for i, raw in enumerate(items or []):
                path = ("recipients", name, i)
                if path in bad:
                    continue
                try:
                    url = _check_url(raw.strip(), _where(source, data, path), env, secrets, scope, validate)
                except RecipientsError as exc:
                    problems.append((yamldoc.line_at(data, path), str(exc)))
                    continue
                if url not in urls:
                    urls.append(url)
            groups[name] = urls
    if problems:
        raise RecipientsError("\n".join(text for _, text in sorted(problems, key=lambda x: x[0])))
    return Recipients(groups, frozenset(s for s in secrets if len(s) >= 4))


def _where(source: str, data: Any, path: tuple[Any, ...]) -> str:
    """``file:line: key``; keys are scrubbed, as a URL typed where a group name goes is one."""
    key = yamldoc.keyname(tuple(scrub(p) if isinstance(p, str) else p for p in path))
    where = f"{source}:{yamldoc.line_at(data, path)}"
    return f"{where}: {key}" if key else where


def _string_keys(groups: yamldoc.LocatedDict) -> list[tuple[int, str, str]]:
    """Make every group name a string, in place; (line, key, problem) for keys that cannot be one.

    JSON Schema (and its validators) know only string keys; a group written as a YAML
    number (``123:``) is still a name, as an alert's notify label would spell it.
    """
    out: list[tuple[int, str, str]] = []
    for key in [k for k in groups if not isinstance(k, str)]:
        line = groups.lines.pop(key, groups.line)
        value = groups.pop(key)
        name = str(key)
        if isinstance(key, bool) or not isinstance(key, int | float):
            out.append((line, scrub(name), "group names are letters, digits, '_', '.', '-' (quote the name)"))
        elif name in groups:
            out.append((line, name, "defined twice"))
        else:
            groups[name] = value
            groups.lines[name] = line
    return out


def _check_url(raw: str, where: str, env: Mapping[str, str], secrets: set[str], scope: SecretScope,
               validate: Callable[[str], bool] | None) -> str:
    """One entry expanded and checked; its secrets are added to ``secrets`` only when it is good."""
    found: set[str] = set()
    url = _expand(raw, where, env, found, scope)
    if "://" not in url:
        raise RecipientsError(f"{where}: not an Apprise URL: {mask_url(raw)}")
    if validate is not None and not validate(url):
        raise RecipientsError(f"{where}: Apprise cannot use {mask_url(raw)}")
    # The whole URL and its password part are secrets too.
    found.add(url)
    m = re.match(r"^[^:]+://[^/@]*:([^/@]+)@", url)
    if m:
        found.add(m.group(1))
    secrets |= found
    return url


def load_recipients(path: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                    validate: Callable[[str], bool] | None = _default_validator,
                    scope: SecretScope | None = None) -> Recipients:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RecipientsError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RecipientsError(f"{p}: not UTF-8 text") from None
    return parse_recipients(text, str(p), env, validate, scope)


class RecipientStore:
    """The current recipients, re-read when the file changes; the last good set is kept."""

    def __init__(self, path: str | os.PathLike[str] | None,
                 on_reload: Callable[[bool, str | None], None] | None = None,
                 validate: Callable[[str], bool] | None = _default_validator,
                 scope: SecretScope | None = None,
                 local_path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else None
        # The operator's own groups (secret-bearing URLs): they replace same-named groups of the
        # generated file, whose URLs come from rule authors.
        self.local_path = Path(local_path) if local_path else None
        self._scope = scope
        self._validate = validate
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self._current = EMPTY
        self._signature: tuple | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> Recipients:
        return self._current

    def _stat(self) -> tuple:
        out = []
        for p in (self.path, self.local_path):
            try:
                st = p.stat() if p is not None else None
            except OSError:
                st = None
            out.append((st.st_ino, st.st_mtime_ns, st.st_size) if st is not None else None)
        return tuple(out)

    def read(self) -> Recipients:
        """Parse the file(s) now without touching the current set (``alert-router check``)."""
        assert self.path is not None
        rec = load_recipients(self.path, validate=self._validate, scope=self._scope)
        if self.local_path is None:
            return rec
        local = load_recipients(self.local_path, validate=self._validate, scope=self._scope)
        return Recipients({**rec.groups, **local.groups}, rec.secrets | local.secrets)

    def load(self, strict: bool = False) -> bool:
        """Read the file now. With ``strict`` a bad file raises (startup); else it is logged."""
        if self.path is None:
            return True
        with self._lock:
            sig = self._stat()
            try:
                rec = self.read()
            except RecipientsError as exc:
                self._signature = sig
                self.last_error = str(exc)
                log.error("recipients not reloaded, keeping the last good set: %s", exc)
                if self._on_reload:
                    self._on_reload(False, str(exc))
                if strict:
                    raise
                return False
            self._current = rec
            self._signature = sig
            self.last_error = None
            log.info("recipients loaded from %s: %s", self.path,
                     ", ".join(f"{g} ({len(u)} URLs)" for g, u in rec.groups.items()) or "no groups")
            if "default" not in rec.groups:
                log.warning("%s has no 'default' group: alerts whose notify label names no known group "
                            "will not be delivered", self.path)
            if self._on_reload:
                self._on_reload(True, None)
            return True

    def maybe_reload(self) -> bool:
        """Reload if the file's inode, mtime or size changed. Returns True if reloaded."""
        if self.path is None:
            return False
        if self._stat() == self._signature:
            return False
        return self.load()
