"""The Debian packages' pinned requirement lists hold every distribution the code needs.

debian/rules builds each package's virtualenv from its list with ``--no-deps``, so a dependency
added to setup.cfg but not to the list installs fine everywhere except on the hosts, where the
command then fails at import. This checks the lists against the dependency closure that pip
resolved for this checkout (the installed metadata), without building a package.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.conftest import REPO


def pinned(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / "debian" / f"{name}.requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkg, _, version = line.partition("==")
            out[canonicalize_name(pkg)] = version
    return out


def closure(roots: list[str]) -> set[str]:
    """Names of the distributions ``roots`` need at run time (no extras), themselves included."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += distribution(name).requires or []
        except PackageNotFoundError:
            raise AssertionError(f"{name} is required but not installed in this environment") from None
    return seen


def core_requirements() -> list[str]:
    text = (REPO / "setup.cfg").read_text()
    block = re.search(r"^install_requires =\n((?:[ \t]+.*\n|[ \t]*#.*\n)+)", text, re.M)
    assert block, "setup.cfg: no install_requires"
    return [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines() if ln.split("#", 1)[0].strip()]


def test_server_list_is_the_closure_of_the_core_install() -> None:
    need = closure(core_requirements())
    have = pinned("fleetmon-server")
    assert not need - set(have), f"debian/fleetmon-server.requirements.txt lacks {sorted(need - set(have))}"
    assert not set(have) - need, f"debian/fleetmon-server.requirements.txt has unused {sorted(set(have) - need)}"


def test_exporter_list_covers_what_the_exporter_imports() -> None:
    # The exporter's own imports (exporter/, fleetmon.zk, fleetmon.schema, discovery.registry); the server parts
    # (Flask, Apprise, cryptography, cheroot) are deliberately not on the hosts.
    need = closure(["prometheus-client", "kazoo", "pyyaml", "click", "bcrypt", "fastjsonschema"])
    have = pinned("fleetmon-exporter")
    assert need == set(have), f"exporter list {sorted(have)} != closure {sorted(need)}"
