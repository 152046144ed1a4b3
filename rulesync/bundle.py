"""The published bundle: every generated file, versioned, checksummed, zlib-compressed.

Layout in the znode (``/fleetmon/rules/bundle``): zlib(JSON) of
``{"format": 1, "version", "checksum", "created_at", "files": {name: text}, "recipients"}``.
``checksum`` is sha256 over the canonical JSON of ``files``; ``version`` is its first 16
hex digits, so the same rules always give the same version and any change a new one.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import dataclass

# ZooKeeper refuses znodes of 1 MiB or more; keep a margin for its own framing.
MAX_COMPRESSED = 900 * 1024


class BundleError(ValueError):
    pass


@dataclass
class Bundle:
    version: str
    checksum: str
    files: dict[str, str]
    recipients: str = ""
    created_at: float = 0.0


def checksum_of(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def make(files: dict[str, str], recipients: str = "", created_at: float | None = None) -> Bundle:
    if not files:
        raise BundleError("refusing to publish an empty rule set")
    c = checksum_of(files)
    return Bundle(version=c[:16], checksum=c, files=dict(files), recipients=recipients,
                  created_at=time.time() if created_at is None else created_at)


def encode(b: Bundle) -> bytes:
    doc = {"format": 1, "version": b.version, "checksum": b.checksum, "created_at": b.created_at,
           "files": b.files, "recipients": b.recipients}
    data = zlib.compress(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode(), 9)
    if len(data) > MAX_COMPRESSED:
        raise BundleError(f"bundle is {len(data) / 1024:.0f} KiB compressed, over the "
                          f"{MAX_COMPRESSED // 1024} KiB limit for one znode; split the rules or shorten them")
    return data


def decode(data: bytes) -> Bundle:
    """Parse and verify a bundle; BundleError says what is wrong with it."""
    if not data:
        raise BundleError("empty bundle znode")
    try:
        doc = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as exc:
        raise BundleError(f"bundle is not zlib-compressed JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != 1:
        raise BundleError(f"unsupported bundle format {doc.get('format') if isinstance(doc, dict) else doc!r}")
    files = doc.get("files")
    if not isinstance(files, dict) or not files or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise BundleError("bundle has no rule files")
    for name in files:
        if "/" in name or name.startswith(".") or not name.endswith((".yml", ".yaml")):
            raise BundleError(f"bad file name in bundle: {name!r}")
    c = checksum_of(files)
    if c != doc.get("checksum"):
        raise BundleError(f"checksum mismatch: bundle says {doc.get('checksum')}, content is {c}")
    return Bundle(version=str(doc.get("version")), checksum=c, files=files,
                  recipients=str(doc.get("recipients") or ""), created_at=float(doc.get("created_at") or 0))
