"""The published bundle: every generated file, versioned, checksummed, zlib-compressed, signed.

Payload: zlib(JSON) of
``{"format": 1, "version", "checksum", "created_at", "files": {name: text}, "recipients"}``.
``checksum`` is sha256 over the canonical JSON of ``files``; ``version`` is its first 16
hex digits, so the same rules always give the same version and any change a new one.

Signed form in the znode (``/fleetmon/rules/bundle``): ``b"FMSB1" + Ed25519 signature (64
bytes) + payload``, the signature covering the magic and the payload. An agent checks the
signature against its configured public key *before* it decompresses anything, and
decompresses at most ``MAX_DECOMPRESSED`` bytes, so neither a forged nor a compression-bomb
bundle costs it more than one signature check. A bare payload is an unsigned bundle, which
agents refuse unless started with ``--rules-allow-unsigned``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# ZooKeeper refuses znodes of 1 MiB or more; keep a margin for its own framing.
MAX_COMPRESSED = 900 * 1024
# Decompressed JSON an agent accepts: rule files of 25,000 hosts' worth of rules are ~1 MiB.
MAX_DECOMPRESSED = 16 * 1024 * 1024
MAGIC = b"FMSB1"
SIG_LEN = 64
# Where keys are found when not given: FLEETMON_RULES_SIGNING_KEY / FLEETMON_RULES_PUBLIC_KEY,
# else these names in the fleetmon security directory (FLEETMON_ZK_SECURITY_DIR).
PRIVATE_NAME = "rules-signing.key"
PUBLIC_NAME = "rules-signing.pub"


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


def encode(b: Bundle, key: Ed25519PrivateKey | None = None) -> bytes:
    """The znode bytes of ``b``: signed with ``key``, or a bare (unsigned) payload without."""
    doc = {"format": 1, "version": b.version, "checksum": b.checksum, "created_at": b.created_at,
           "files": b.files, "recipients": b.recipients}
    raw = json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()
    if len(raw) > MAX_DECOMPRESSED:
        raise BundleError(f"bundle is {len(raw) / 1048576:.1f} MiB uncompressed, over the "
                          f"{MAX_DECOMPRESSED // 1048576} MiB agents accept; split the rules")
    data = zlib.compress(raw, 9)
    if key is not None:
        data = MAGIC + key.sign(MAGIC + data) + data
    if len(data) > MAX_COMPRESSED:
        raise BundleError(f"bundle is {len(data) / 1024:.0f} KiB compressed, over the "
                          f"{MAX_COMPRESSED // 1024} KiB limit for one znode; split the rules or shorten them")
    return data


def is_signed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def verify(data: bytes, public_key: Ed25519PublicKey | None, allow_unsigned: bool = False) -> bytes:
    """The payload of znode ``data`` once its signature checks out; BundleError otherwise.

    ``public_key=None`` reads the payload without checking (for `status` and `diff`, which
    only display); agents always pass their key."""
    if data.startswith(MAGIC):
        sig, payload = data[len(MAGIC):len(MAGIC) + SIG_LEN], data[len(MAGIC) + SIG_LEN:]
        if public_key is not None:
            try:
                public_key.verify(sig, MAGIC + payload)
            except InvalidSignature:
                raise BundleError("signature does not verify with the configured public key "
                                  "(tampered, or signed with another key)") from None
        return payload
    if public_key is not None and not allow_unsigned:
        raise BundleError("unsigned bundle (this agent requires bundles signed by `rulesync apply`)")
    return data


def _inflate(payload: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise BundleError(f"bundle is not zlib-compressed JSON: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BundleError(f"bundle decompresses to more than {limit // 1048576} MiB; refused")
    return out


def decode(data: bytes, public_key: Ed25519PublicKey | None = None, allow_unsigned: bool = False,
           max_size: int = MAX_DECOMPRESSED) -> Bundle:
    """Check the signature (see ``verify``), inflate at most ``max_size`` bytes and parse;
    BundleError says what is wrong."""
    if not data:
        raise BundleError("empty bundle znode")
    raw = _inflate(verify(data, public_key, allow_unsigned), max_size)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
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


# --------------------------------------------------------------------------- keys

def _security_dir() -> Path:
    return Path(os.environ.get("FLEETMON_ZK_SECURITY_DIR") or "/etc/fleetmon/zk")


def private_key_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("FLEETMON_RULES_SIGNING_KEY") or _security_dir() / PRIVATE_NAME)


def public_key_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("FLEETMON_RULES_PUBLIC_KEY") or _security_dir() / PUBLIC_NAME)


def load_private_key(path: str | Path | None = None) -> Ed25519PrivateKey:
    """The signing key (PEM PKCS#8, mode 0600 or stricter); BundleError names the file."""
    p = private_key_path(path)
    try:
        st = p.stat()
        pem = p.read_bytes()
    except OSError as exc:
        raise BundleError(f"{p}: cannot read the bundle signing key ({exc.strerror}); pass --signing-key "
                          "or set FLEETMON_RULES_SIGNING_KEY") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BundleError(f"{p}: mode {stat.S_IMODE(st.st_mode):04o} lets others read the signing key; "
                          f"chmod 600 {p}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise BundleError(f"{p}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{p}: not an Ed25519 key")
    return key


def load_public_key(path: str | Path | None = None) -> Ed25519PublicKey:
    p = public_key_path(path)
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except OSError as exc:
        raise BundleError(f"{p}: cannot read the bundle public key ({exc.strerror}); pass "
                          "--rules-public-key or set FLEETMON_RULES_PUBLIC_KEY") from None
    except ValueError:
        raise BundleError(f"{p}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{p}: not an Ed25519 key")
    return key
