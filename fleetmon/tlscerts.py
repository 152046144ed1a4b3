"""A private CA and the certificates it signs, made with the ``openssl`` command.

``make run`` and the tests need HTTPS between local processes (Alertmanager -> alert router,
Prometheus -> exporter) without a public CA. Keys are EC P-256, written 0600; each leaf has
subjectAltNames (Go's TLS, in Prometheus and Alertmanager, ignores the CN) and the extended
key usage of its role, so a client certificate cannot serve and a server one cannot log in.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class CertError(RuntimeError):
    """``openssl`` failed; the message has its stderr."""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {p.stderr.strip()[-500:]}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def make_ca(directory: str | os.PathLike[str], name: str = "fleetmon-local-ca", days: int = 3650) -> KeyPair:
    """A self-signed CA certificate and key in ``directory`` (``NAME.crt``, ``NAME.key``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(d / f"{name}.crt", d / f"{name}.key")
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(pair.key), "-out", str(pair.cert), "-days", str(days), "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _private(pair.key)
    return pair


def issue(ca: KeyPair, directory: str | os.PathLike[str], name: str, role: str = "server",
          hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 825) -> KeyPair:
    """A leaf certificate for ``name`` signed by ``ca``; ``role`` is ``server`` or ``client``."""
    if role not in ("server", "client"):
        raise ValueError(f"role must be server or client, not {role!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(d / f"{name}.crt", d / f"{name}.key")
    sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
           f"extendedKeyUsage={'serverAuth' if role == 'server' else 'clientAuth'}"]
    if sans:
        ext.append(f"subjectAltName={sans}")
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        csr, extfile = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        extfile.write_text("\n".join(ext) + "\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={name}")
        _private(pair.key)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
                 "-CAcreateserial", "-CAserial", str(Path(tmp) / "ca.srl"), "-out", str(pair.cert),
                 "-days", str(days), "-extfile", str(extfile))
    return pair


def self_signed(directory: str | os.PathLike[str], name: str,
                hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> KeyPair:
    """A leaf that no CA signed (its own issuer): for "any certificate" and rejection tests."""
    own_ca = make_ca(directory, f"{name}-issuer")
    return issue(own_ca, directory, name, "client", hosts)
