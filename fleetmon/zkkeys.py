"""Make the files a secured fleetmon deployment needs: a CA, ZooKeeper's TLS keystore, one
random digest credential per role (0600), the public ``acl-ids`` list and the Ed25519
rule-bundle signing key pair.

Used by ``make run`` (fleetmon/stack/) and by the test harness; production sites may use
their own PKI and only need the same file names (see docs/security.md).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from fleetmon import zkacl

SERVER_KEYSTORE = "zookeeper-keystore.pem"  # server cert + PKCS#8 key, ZooKeeper's PEM keystore type
# Debian's netty-all.jar is an empty aggregate (its manifest names no parts): ZooKeeper's Netty
# TLS client port needs these jars of the libnetty-java package on its classpath.
NETTY_JARS = tuple(f"/usr/share/java/netty-{part}.jar" for part in (
    "common", "buffer", "transport", "resolver", "codec", "handler",
    "transport-native-unix-common", "transport-native-epoll"))


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with the final mode, so a secret is never readable by others, even briefly.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(d: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 365) -> None:
    """``ca.pem`` (public), ``ca.key`` (0600) and the server keystore (0600) in ``d``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("fleetmon ZooKeeper CA")).issuer_name(_name("fleetmon ZooKeeper CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "ca.pem", ca.public_bytes(pem), 0o644)
    _write(d / "ca.key", ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, nokey), 0o600)
    _write(d / SERVER_KEYSTORE, cert.public_bytes(pem)
           + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, nokey), 0o600)


def make_credentials(d: Path, prefix: str = "fleetmon-") -> dict[str, str]:
    """A random password per role in ``<role>.credential`` (0600) and ``acl-ids``; returns the ids.

    Credentials that already exist are kept (a role added in a newer version gets its own
    without changing the others' passwords); ``acl-ids`` is rewritten from all of them.
    """
    d.mkdir(parents=True, exist_ok=True)
    ids = {}
    for role in zkacl.ROLES:
        path = d / f"{role}.credential"
        if path.exists():
            user, _, password = path.read_text().strip().partition(":")
        else:
            user, password = f"{prefix}{role}", secrets.token_urlsafe(24)
            _write(path, f"{user}:{password}\n".encode(), 0o600)
        ids[role] = zkacl.digest_id(user, password)
    lines = ["# role user:base64(sha1(user:password)) -- digest identities named in fleetmon ACLs; not secret"]
    lines += [f"{r} {ids[r]}" for r in zkacl.ROLES]
    _write(d / "acl-ids", ("\n".join(lines) + "\n").encode(), 0o644)
    return ids


def make_signing_key(d: Path) -> None:
    """The Ed25519 rule-bundle key pair: ``rules-signing.key`` (0600, for `rulesync apply`)
    and ``rules-signing.pub`` (for every sidecar's agent)."""
    key = Ed25519PrivateKey.generate()
    pem = serialization.Encoding.PEM
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "rules-signing.key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), 0o600)
    _write(d / "rules-signing.pub", key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)


def ensure(d: Path) -> Path:
    """Create whatever of the PKI, credentials and signing keys is missing in ``d``; return ``d``."""
    if not (d / "ca.pem").exists() or not (d / SERVER_KEYSTORE).exists():
        make_pki(d)
    if not (d / "acl-ids").exists() or any(not (d / f"{r}.credential").exists() for r in zkacl.ROLES):
        make_credentials(d)
    if not (d / "rules-signing.key").exists():
        make_signing_key(d)
    return d


def zoo_cfg_tls_lines(d: Path) -> list[str]:
    """zoo.cfg lines for a TLS-only client port using the files in ``d``."""
    return [
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        f"ssl.keyStore.location={d / SERVER_KEYSTORE}",
        "ssl.keyStore.type=PEM",
        f"ssl.trustStore.location={d / 'ca.pem'}",
        "ssl.trustStore.type=PEM",
        # Clients authenticate with digest credentials, not certificates (docs/security.md).
        "ssl.clientAuth=none",
    ]
