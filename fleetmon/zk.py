"""The one kazoo client factory: bounded retries, TLS, digest credentials and per-path ACLs.

kazoo's defaults retry forever with waits up to an hour; a monitoring agent must
instead fail fast, keep serving, and try again on its own schedule.

Security (docs/security.md): every component connects with the credential of its *role*
(registrar, publisher, sidecar, reader, admin) over ZooKeeper's TLS client port, and every
znode it creates gets the ACL that ``fleetmon.zkacl`` computes from the node's path, so a
registrar's bucket parent is still writable by the reaper and the publisher's bundle is
readable by every sidecar. Where the settings come from, first match wins:

- ``FLEETMON_ZK_<ROLE>_CREDENTIAL`` = ``user:password`` (environment), else the file
  ``<dir>/<role>.credential`` (must be 0600 or stricter), where ``<dir>`` is
  ``FLEETMON_ZK_SECURITY_DIR`` (default ``/etc/fleetmon/zk``);
- ``<dir>/acl-ids``: the digest identities (``role user:base64(sha1)``, not secret) that
  ACLs name, so a process needs only its own password to grant others access;
- ``FLEETMON_ZK_CA`` (else ``<dir>/ca.pem``): TLS to ZooKeeper with that CA; optional
  ``FLEETMON_ZK_CERT``/``FLEETMON_ZK_KEY`` for a client certificate;
- ``FLEETMON_ZK_INSECURE=true`` (or ``insecure=True``): plain TCP, no credential, open ACLs.
  Development only; logged as a warning every time a client is made.

Nothing here ever puts a password in a log line, an exception message or a repr.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient, TransactionRequest
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.serialization import Auth
from kazoo.retry import KazooRetry
from kazoo.security import ACL

from fleetmon import zkacl

log = logging.getLogger(__name__)

# One operation: a few quick tries (about 3 s in all), then the caller decides.
OP_RETRY = {"max_tries": 4, "delay": 0.2, "backoff": 2, "max_delay": 2.0, "ignore_expire": False}
# Connecting: keep trying, but never wait more than 5 s between attempts.
CONNECTION_RETRY = {"max_tries": -1, "delay": 0.5, "backoff": 2, "max_delay": 5.0}
# The session timeout a host's agent asks for (discovery.registry.Registrar's default, so the
# exporter's --zk). 30 s, not 10: measured on a 3-node ensemble with 2,500 per-host sessions
# (docs/capacity.md, "Sessions"), restarting a follower expired 586 sessions at 10 s and none
# at 30 s, and a session pings every third of its timeout, so 30 s also cuts the ensemble's
# ping load threefold (841 -> 290 requests/s). The cost, a crashed agent's liveness node
# lingering 30 s, pages no one: HostDown is on `up`, agent-down is held for minutes.
SESSION_TIMEOUT = 30.0
# Spread of each reconnection wait (kazoo's default is 0.4): see make_client.
CONNECTION_JITTER = 0.4
# Over TLS, each connection attempt after the first waits a random 0..this many seconds, as
# ZooKeeper's own Java client does before every attempt but its first (ClientCnxn.SendThread
# startConnect). kazoo retries the members at once; over TLS each try is a full handshake on
# both sides, and after a leader kill every try during the election is wasted on a member
# that completes the handshake only to drop the connection, while the handshakes take the
# CPU the election needs (docs/benchmarks.md, "ZooKeeper TLS reconnection").
TLS_RECONNECT_SPREAD = 1.0

DEFAULT_SECURITY_DIR = "/etc/fleetmon/zk"
ENV_DIR = "FLEETMON_ZK_SECURITY_DIR"
ENV_INSECURE = "FLEETMON_ZK_INSECURE"
ROLES = zkacl.ROLES


class ZkSecurityError(RuntimeError):
    """Security settings are missing or unsafe; the message names the file or variable,
    never a secret."""


@dataclass(frozen=True)
class Credential:
    """A digest credential. ``repr`` and ``str`` never show the password."""

    role: str
    user: str
    password: str = field(repr=False)

    def auth_data(self) -> list[tuple[str, str]]:
        return [("digest", f"{self.user}:{self.password}")]

    def digest_id(self) -> str:
        return zkacl.digest_id(self.user, self.password)

    def __str__(self) -> str:
        return f"{self.role} credential for user {self.user!r}"


@dataclass(frozen=True)
class ZkSecurity:
    """Everything a client needs besides the connect string: TLS files, its credential, and
    the identities its ACLs grant to. ``insecure`` means plain, open ZooKeeper."""

    insecure: bool = False
    credential: Credential | None = None
    ids: dict[str, str] = field(default_factory=dict)
    ca: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def use_ssl(self) -> bool:
        return bool(self.ca)

    def policy(self) -> zkacl.AclPolicy | None:
        return None if self.insecure or not self.ids else zkacl.AclPolicy(self.ids)


def env_flag(value: str | None, name: str) -> bool:
    """An environment switch: unset or empty is off; otherwise exactly ``true`` or ``false``,
    as in every config file (a typo must not silently pick a mode)."""
    if value is None or value.strip() == "":
        return False
    v = value.strip()
    if v in ("true", "false"):
        return v == "true"
    raise ZkSecurityError(f"{name}: expected true or false, got {value!r}")


def read_secret_file(path: Path) -> str:
    """The stripped content of a secret file that only its owner may read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ZkSecurityError(f"{path}: cannot read ({exc.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ZkSecurityError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read a secret; "
                              f"chmod 600 {path}")
    return path.read_text().strip()


def _parse_credential(role: str, text: str, where: str) -> Credential:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ZkSecurityError(f"{where}: expected user:password")
    return Credential(role, user, password)


def read_ids(path: Path) -> dict[str, str]:
    """``role user:digest`` lines (blank lines and # comments skipped)."""
    ids: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ZkSecurityError(f"{path}: cannot read ({exc.strerror})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        role, _, ident = line.partition(" ")
        ident = ident.strip()
        if role not in ROLES or ":" not in ident:
            raise ZkSecurityError(f"{path}:{n}: expected '<role> user:digest' with role one of {', '.join(ROLES)}")
        ids[role] = ident
    missing = [r for r in ROLES if r not in ids]
    if missing:
        raise ZkSecurityError(f"{path}: no identity for role(s) {', '.join(missing)}")
    return ids


def load_security(role: str, insecure: bool | None = None, env: dict[str, str] | None = None) -> ZkSecurity:
    """Resolve the settings of ``role`` from the environment and the security directory."""
    env = os.environ if env is None else env
    if role not in ROLES:
        raise ValueError(f"unknown ZooKeeper role {role!r} (known: {', '.join(ROLES)})")
    if insecure is None:
        insecure = env_flag(env.get(ENV_INSECURE), ENV_INSECURE)
    if insecure:
        return ZkSecurity(insecure=True)
    d = Path(env.get(ENV_DIR) or DEFAULT_SECURITY_DIR)
    var = f"FLEETMON_ZK_{role.upper()}_CREDENTIAL"
    if env.get(var):
        cred = _parse_credential(role, env[var], var)
    else:
        path = d / f"{role}.credential"
        if not path.exists():
            raise ZkSecurityError(
                f"no ZooKeeper credential for role {role}: set {var} or create {path} (mode 0600); "
                f"for an open development ZooKeeper set {ENV_INSECURE}=true or pass --zk-insecure")
        cred = _parse_credential(role, read_secret_file(path), str(path))
    ids = read_ids(d / "acl-ids")
    if ids.get(role) != cred.digest_id():
        raise ZkSecurityError(f"{d / 'acl-ids'}: the {role} identity does not match the {role} credential "
                              f"(user {cred.user!r}); regenerate it or fix the credential")
    ca = env.get("FLEETMON_ZK_CA") or (str(d / "ca.pem") if (d / "ca.pem").exists() else None)
    if ca is None:
        # A digest password over plain TCP is readable by anyone on the path: no TLS, no credential.
        raise ZkSecurityError(f"no CA for ZooKeeper TLS: set FLEETMON_ZK_CA or create {d / 'ca.pem'}; "
                              f"for an open development ZooKeeper set {ENV_INSECURE}=true")
    return ZkSecurity(credential=cred, ids=ids, ca=ca, certfile=env.get("FLEETMON_ZK_CERT") or None,
                      keyfile=env.get("FLEETMON_ZK_KEY") or None)


class _PolicyTransaction(TransactionRequest):
    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False,
               sequence: bool = False) -> None:
        if acl is None and isinstance(self.client, FleetKazooClient) and self.client.acl_policy:
            acl = self.client.acl_policy.acl_for(path)
        super().create(path, value, acl, ephemeral, sequence)


class _RedactAuth(logging.Filter):
    """kazoo logs every request it sends at DEBUG, the digest ``Auth`` packet (with the
    password) included: replace it before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, Auth) for a in record.args):
            record.args = tuple(f"Auth(scheme={a.scheme!r}, auth=<redacted>)" if isinstance(a, Auth) else a
                                for a in record.args)
        return True


# The logger every fleetmon kazoo client (and its connection) logs to.
KAZOO_LOG = logging.getLogger("kazoo.client")
KAZOO_LOG.addFilter(_RedactAuth())


def _file_key(path: str | None) -> tuple[Any, ...]:
    """What identifies a file's current content cheaply: a replaced CA or key makes a new key."""
    if not path:
        return (None,)
    try:
        st = os.stat(path)
    except OSError:
        return (path,)
    return (path, st.st_ino, st.st_mtime_ns, st.st_size)


_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
# The last TLS session per (context, member address), offered again on the next connection
# to that member: a resumed TLS 1.2 handshake skips the key exchange and the certificate
# signature, ~2.3 ms of ZooKeeper CPU instead of ~7-9 ms (bench/zk_tls_connect.py). After a
# leader kill every session of the fleet reconnects, and while the survivors elect they
# accept each attempt's handshake only to drop it, so the handshakes compete with the
# election for CPU. Every client of a process shares the context, hence the same
# credentials, so sharing its sessions gives no client more than it has.
_sessions: dict[tuple[int, tuple[str, int]], ssl.SSLSession] = {}


def tls_context(ca: str, certfile: str | None = None, keyfile: str | None = None, *,
                context_class: type[ssl.SSLContext] = ssl.SSLContext) -> ssl.SSLContext:
    """The process's client TLS context for ZooKeeper: trusts ``ca`` only, one per file set.

    kazoo builds a fresh context for every connection attempt and loads the system CA bundle
    into it (``load_default_certs``): 27 ms of CPU per attempt on this machine (a 220 KB
    bundle), paid again for every member tried in a reconnection storm: one gevent worker
    holding 300 sessions took 10 s just to notice a leader kill and 14.3 s to have every
    session back (5.6 s with this context; docs/benchmarks.md, "ZooKeeper TLS reconnection").
    It also made any public CA's certificate acceptable to a client that does not check
    host names. Here the context is built once per (CA, cert, key) files -
    re-read when one of them is replaced - and trusts fleetmon's CA alone.
    """
    key = (context_class, _file_key(ca), _file_key(certfile), _file_key(keyfile))
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = context_class(ssl.PROTOCOL_TLS_CLIENT)
            # The server name is not checked (kazoo's default, check_hostname=False): a
            # member is named by the connect string, which may be an IP the certificate
            # does not list; the certificate must still chain to fleetmon's CA.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_verify_locations(cafile=ca)
            if certfile and keyfile:
                ctx.load_cert_chain(certfile=certfile, keyfile=keyfile)
            _contexts[key] = ctx
        return ctx


class _TlsPending:
    """A kazoo handler mixin for TLS connections, for the threading and the gevent handler.

    ``select`` also reports a TLS socket holding decrypted bytes: kazoo's connection loop
    selects on the raw socket before reading the next reply; with TLS, replies already
    decrypted into the SSL object's buffer leave the raw socket idle, so they wait for the
    next packet or the ping timer (seconds). The usual SSL_pending() fix, applied where kazoo
    asks.

    ``create_connection`` connects with the shared context of :func:`tls_context` instead of
    kazoo's per-attempt one, resumes the member's last TLS session when it has one, and
    closes the socket when the connect or handshake fails (kazoo leaves it to the garbage
    collector, a file descriptor per failed attempt).
    """

    def select(self, *args: Any, **kwargs: Any) -> Any:
        rlist = args[0] if args else kwargs.get("rlist", [])
        ready = [s for s in rlist if getattr(s, "pending", None) and s.pending() > 0]
        if ready:
            return ready, [], []
        return super().select(*args, **kwargs)  # type: ignore[misc]

    def _socket_modules(self) -> tuple[Any, type[ssl.SSLContext]]:
        # A gevent handler needs gevent's cooperative socket and SSL classes even when the
        # standard library is not monkey-patched; the module is loaded if such a handler exists.
        gmod = sys.modules.get("kazoo.handlers.gevent")
        if gmod is not None and isinstance(self, gmod.SequentialGeventHandler):
            from gevent import socket as gsocket
            from gevent import ssl as gssl

            return gsocket, gssl.SSLContext
        return socket, ssl.SSLContext

    def create_connection(self, address: tuple[str, int], hostname: str | None = None,
                          timeout: float | None = None, use_ssl: bool = False, ca: str | None = None,
                          certfile: str | None = None, keyfile: str | None = None,
                          verify_certs: bool = True, **kwargs: Any) -> Any:
        # Only the settings make_client uses take the shared-context path; anything else
        # (key passwords, ciphers, no verification) stays kazoo's.
        if not use_ssl or not ca or not verify_certs or any(v for v in kwargs.values()):
            return super().create_connection(  # type: ignore[misc]
                address=address, hostname=hostname, timeout=timeout, use_ssl=use_ssl, ca=ca,
                certfile=certfile, keyfile=keyfile, verify_certs=verify_certs, **kwargs)
        sockmod, context_class = self._socket_modules()
        ctx = tls_context(ca, certfile, keyfile, context_class=context_class)
        family = socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_STREAM)[0][0]
        key = (id(ctx), (address[0], int(address[1])))
        conn = ctx.wrap_socket(sockmod.socket(family, socket.SOCK_STREAM), server_hostname=hostname,
                               session=_sessions.get(key))
        try:
            conn.settimeout(timeout)
            conn.connect(address)  # TCP connect and TLS handshake (resumed when the member agrees)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            conn.close()
            raise
        if not conn.session_reused and conn.session is not None:
            _sessions[key] = conn.session
        return conn


class TlsAwareHandler(_TlsPending, SequentialThreadingHandler):
    """kazoo's threading handler with the TLS fix of :class:`_TlsPending`."""


def _tls_aware(handler: Any) -> Any:
    """``handler`` (a fresh threading handler when None) with the TLS fix mixed in."""
    if handler is None:
        return TlsAwareHandler()
    if not isinstance(handler, _TlsPending):
        cls = type(handler)
        handler.__class__ = type(f"TlsAware{cls.__name__}", (_TlsPending, cls), {})
    return handler


class FleetKazooClient(KazooClient):
    """A KazooClient whose creates without an explicit ``acl`` get the path's policy ACL.

    kazoo applies one ``default_acl`` to every node (and to every parent ``makepath`` and
    ``ensure_path`` create); fleetmon's subtrees need different ACLs, so the policy is applied
    where kazoo sends each create, which covers create, ensure_path, makepath and async forms.
    """

    def __init__(self, *args: Any, acl_policy: zkacl.AclPolicy | None = None, reconnect_spread: float = 0.0,
                 **kwargs: Any):
        self.acl_policy = acl_policy
        # A marker list: when kazoo hands it to a create, the caller gave no ACL of its own.
        self._default_marker: list[ACL] | None = (
            [zkacl.admin_acl(acl_policy.ids)] if acl_policy else None)
        super().__init__(*args, default_acl=self._default_marker, **kwargs)
        if reconnect_spread > 0:
            self._spread_attempts(reconnect_spread)

    def _spread_attempts(self, spread: float) -> None:
        # kazoo has no hook between connection attempts; its connection routine calls
        # _connect_attempt once per member tried, on the connection's own thread/greenlet.
        conn = self._connection
        attempt = conn._connect_attempt
        sleep = self.handler.sleep_func
        first = [True]

        def spread_attempt(*args: Any, **kwargs: Any) -> Any:
            if not first[0] and not self._stopped.is_set():
                sleep(random.uniform(0.0, spread))
            first[0] = False
            return attempt(*args, **kwargs)

        conn._connect_attempt = spread_attempt

    def _create_async_inner(self, path: str, value: bytes, acl: Any, flags: int, trailing: bool = False,
                            include_data: bool = False) -> Any:
        if self.acl_policy is not None and acl is self._default_marker:
            acl = self.acl_policy.acl_for(path)
        return super()._create_async_inner(path, value, acl, flags, trailing=trailing,
                                           include_data=include_data)

    def transaction(self) -> TransactionRequest:
        return _PolicyTransaction(self)


def make_client(hosts: str, timeout: float = 10.0, read_only: bool = False, *, role: str = "reader",
                security: ZkSecurity | None = None, insecure: bool | None = None, handler: Any = None,
                reconnect_jitter: float = CONNECTION_JITTER, **kwargs: Any) -> KazooClient:
    """Return an unstarted client for ``hosts`` ("h1:2281,h2:2281[/chroot]") acting as ``role``.

    ``security`` overrides what ``load_security(role, insecure)`` finds in the environment;
    extra keyword arguments (``client_id`` ...) go to KazooClient. Raises ZkSecurityError when
    no credential is configured and open mode was not asked for.

    ``handler``: a kazoo handler instance (default: threads); many sessions in one process use
    ``kazoo.handlers.gevent.SequentialGeventHandler`` (see simulator/sessions.py).
    ``reconnect_jitter``: each wait between reconnection rounds is multiplied by a random factor
    in [1 - j, 1 + j], so a fleet cut off at once does not come back in the same instant.
    kazoo shuffles the member list on every round, which spreads clients over the members.
    """
    sec = security or load_security(role, insecure)
    if sec.insecure:
        log.warning("ZooKeeper security is OFF (insecure mode): no authentication, no TLS, open ACLs; "
                    "development only")
    tls: dict[str, Any] = {}
    if sec.use_ssl:
        handler = _tls_aware(handler)
        tls = {"use_ssl": True, "ca": sec.ca, "verify_certs": True}
        if sec.certfile:
            tls.update(certfile=sec.certfile, keyfile=sec.keyfile)
    sleep = {} if handler is None else {"sleep_func": handler.sleep_func}
    return FleetKazooClient(
        hosts=hosts,
        timeout=timeout,
        read_only=read_only,
        handler=handler,
        randomize_hosts=True,
        connection_retry=KazooRetry(**CONNECTION_RETRY, max_jitter=reconnect_jitter, **sleep),
        command_retry=KazooRetry(**OP_RETRY, **sleep),
        auth_data=sec.credential.auth_data() if sec.credential else None,
        acl_policy=sec.policy(),
        reconnect_spread=TLS_RECONNECT_SPREAD if sec.use_ssl else 0.0,
        logger=KAZOO_LOG,
        **tls,
        **kwargs,
    )


def op_retry() -> KazooRetry:
    """A fresh bounded retry for wrapping one idempotent operation."""
    return KazooRetry(**OP_RETRY)
