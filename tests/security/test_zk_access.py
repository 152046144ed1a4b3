"""ZooKeeper access control against the real server (TLS client port + digest ACLs).

A hostile client on the fleet network: anonymous, with a wrong password, over plain TCP, or
holding a stolen registrar credential. Each must fail at what it tries; each legitimate
role must still do its own job.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from pathlib import Path

import pytest
from click.testing import CliRunner
from kazoo.exceptions import NoAuthError

from discovery import layout
from discovery.registry import Registrar
from fleetmon.zk import Credential, ZkSecurity, ZkSecurityError, load_security, make_client
from rulesync import bundle, publish
from rulesync.cli import main as rulesync_main
from tests.harness.servers import ZooKeeperServer


@pytest.fixture
def role_client(zk_server):
    made = []

    def make(role: str | None = None, security: ZkSecurity | None = None, **kw):
        c = make_client(zk_server.hosts, role=role or "reader", security=security, **kw)
        c.start(timeout=15)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        c.close()


@pytest.fixture
def fleet_tree(zk_server, zk_root, role_client):
    """A small tree written by each role the way the components write it."""
    reg = Registrar(zk_server.hosts, root=zk_root, session_timeout=6.0).start()
    reg.add("web-1", "10.0.0.1:9100", {"role": "web"})
    assert reg.wait(30)
    sidecar = role_client("sidecar")
    sidecar.create(layout.replica_path(zk_root, "s1", "a"), b'{"shard": "s1", "replica": "a"}',
                   ephemeral=True, makepath=True)
    sidecar.create(f"{zk_root}/rules/status/s1/a", b'{"ok": true}', ephemeral=True, makepath=True)
    publisher = role_client("publisher")
    publish.publish(publisher, zk_root, bundle.make({"a.rules.yml": "groups: []\n"}))
    paths = [zk_root, layout.hosts_path(zk_root), layout.host_path(zk_root, "web-1"),
             layout.host_alive_path(zk_root, "web-1"), layout.replica_path(zk_root, "s1", "a"),
             publish.bundle_path(zk_root), f"{zk_root}/rules/status/s1/a"]
    yield paths
    reg.stop()


def _denied(fn, *args, **kw) -> bool:
    try:
        fn(*args, **kw)
    except NoAuthError:
        return True
    return False


def _sec(**kw) -> ZkSecurity:
    return ZkSecurity(ca=str(Path(os.environ["FLEETMON_ZK_SECURITY_DIR"]) / "ca.pem"), **kw)


@pytest.mark.parametrize("who", ["anonymous", "wrong password"])
def test_strangers_can_neither_read_nor_write(who, fleet_tree, role_client) -> None:
    if who == "anonymous":
        sec = _sec()
    else:
        real = load_security("admin")
        sec = _sec(credential=Credential("admin", real.credential.user, "not-the-password"), ids=real.ids)
    c = role_client(security=sec)
    for p in fleet_tree:
        assert c.exists(p) is not None  # ZooKeeper never hides existence; everything else is denied
        assert _denied(c.get, p), p
        assert _denied(c.get_children, p), p
        assert _denied(c.set, p, b"owned"), p
        assert _denied(c.create, f"{p}/x", b"", acl=None), p
        if p != fleet_tree[0]:
            # (Deleting the root itself is decided by "/"'s ACL; it is never empty; see docs/security.md.)
            assert _denied(c.delete, p), p
        assert _denied(c.get_acls, p), p


def test_plain_tcp_client_cannot_talk_to_the_tls_port(zk_server) -> None:
    c = make_client(zk_server.hosts, insecure=True)
    try:
        with pytest.raises(Exception, match="(?i)time-?out|timed out"):
            c.start(timeout=3)
    finally:
        c.stop()
        c.close()


def test_registrar_cannot_publish_rules_or_touch_other_subtrees(fleet_tree, zk_root, role_client) -> None:
    reg = role_client("registrar")
    # Its own job still works.
    reg.create(layout.host_path(zk_root, "db-9"), b'{"address": "10.0.0.9:9100"}', makepath=True)
    assert _denied(publish.publish, reg, zk_root, bundle.make({"evil.rules.yml": "groups: []\n"}))
    assert _denied(reg.set, publish.bundle_path(zk_root), b"evil")
    assert _denied(reg.delete, publish.bundle_path(zk_root))
    assert _denied(reg.create, f"{zk_root}/rules/status/s1/b", b"{}", makepath=True)
    assert _denied(reg.create, layout.replica_path(zk_root, "evil", "a"), b"{}", makepath=True)
    assert _denied(reg.delete, layout.replica_path(zk_root, "s1", "a"))
    # (Root-level names, e.g. the ephemeral <root>/reaper, stay creatable by every role: the
    # known limitation in docs/security.md.)
    # No ADMIN anywhere: it cannot open its own nodes to the world either.
    from kazoo.security import OPEN_ACL_UNSAFE
    assert _denied(reg.set_acls, layout.host_path(zk_root, "web-1"), OPEN_ACL_UNSAFE)
    assert _denied(reg.set_acls, zk_root, OPEN_ACL_UNSAFE)


def test_reader_reads_everything_and_writes_nothing(fleet_tree, zk_root, zk_server, role_client) -> None:
    r = role_client("reader")
    for p in fleet_tree:
        r.get(p)
        assert _denied(r.set, p, b"x"), p
    assert _denied(r.create, layout.host_bucket_path(zk_root, layout.bucket_of("web-1")) + "/x", b"{}")
    out = CliRunner().invoke(rulesync_main, ["status", "--zk", zk_server.hosts, "--root", zk_root])
    assert "published:" in out.output, out.output


def test_publisher_and_sidecar_stay_in_their_lanes(fleet_tree, zk_root, role_client) -> None:
    pub = role_client("publisher")
    assert _denied(pub.get, layout.host_path(zk_root, "web-1"))
    assert _denied(pub.create, layout.host_bucket_path(zk_root, layout.bucket_of("web-1")) + "/evil", b"{}")
    assert _denied(pub.set, f"{zk_root}/rules/status/s1/a", b"{}")
    side = role_client("sidecar")
    assert side.get(publish.bundle_path(zk_root))[0]
    assert _denied(side.set, publish.bundle_path(zk_root), b"evil")
    assert _denied(side.set, layout.host_path(zk_root, "web-1"), b"{}")
    assert _denied(side.create, layout.host_bucket_path(zk_root, layout.bucket_of("web-1")) + "/evil", b"{}")


def test_acls_are_the_policy_and_name_only_fleetmon_roles(fleet_tree, zk_client) -> None:
    ids = load_security("admin").ids
    users = {v.split(":", 1)[0] for v in ids.values()}
    for p in fleet_tree:
        acl, _ = zk_client.get_acls(p)
        assert acl, p
        assert all(e.id.scheme == "digest" and e.id.id.split(":", 1)[0] in users for e in acl), (p, acl)


def test_open_mode_is_explicit_and_logged(tmp_path, caplog) -> None:
    zk = ZooKeeperServer(tmp_path / "zk", insecure=True).start()
    try:
        with caplog.at_level(logging.WARNING, logger="fleetmon.zk"):
            c = make_client(zk.hosts, insecure=True)
        assert "security is OFF" in caplog.text
        c.start(timeout=15)
        c.create("/open/x", b"1", makepath=True)
        assert c.get_acls("/open/x")[0][0].id.scheme == "world"
        c.stop()
        c.close()
    finally:
        zk.stop()


def test_credentials_from_files_are_checked_and_never_shown(tmp_path) -> None:
    d = tmp_path / "sec"
    d.mkdir()
    env = {"FLEETMON_ZK_SECURITY_DIR": str(d)}
    with pytest.raises(ZkSecurityError, match="FLEETMON_ZK_REGISTRAR_CREDENTIAL.*registrar.credential"):
        load_security("registrar", env=env)
    from fleetmon import zkkeys

    zkkeys.ensure(d)
    secret = (d / "registrar.credential").read_text().strip()
    assert stat_mod.S_IMODE((d / "registrar.credential").stat().st_mode) == 0o600
    sec = load_security("registrar", env=env)
    assert secret.split(":", 1)[1] not in repr(sec) + str(sec.credential)
    (d / "registrar.credential").chmod(0o644)
    with pytest.raises(ZkSecurityError) as exc:
        load_security("registrar", env=env)
    assert "chmod 600" in str(exc.value) and secret.split(":", 1)[1] not in str(exc.value)
    # A credential that does not match the published identity is refused, naming no secret.
    env["FLEETMON_ZK_REGISTRAR_CREDENTIAL"] = "fleetmon-registrar:guessed-password"
    with pytest.raises(ZkSecurityError) as exc:
        load_security("registrar", env=env)
    assert "does not match" in str(exc.value) and "guessed-password" not in str(exc.value)


def test_cli_without_credentials_fails_clearly(zk_server, zk_root, monkeypatch, tmp_path) -> None:
    from discovery.cli import main as discovery_main

    monkeypatch.setenv("FLEETMON_ZK_SECURITY_DIR", str(tmp_path))
    res = CliRunner().invoke(discovery_main, ["status", "--zk", zk_server.hosts, "--root", zk_root])
    assert res.exit_code == 1 and "no ZooKeeper credential for role reader" in res.output, res.output
    assert "Traceback" not in res.output


def test_no_password_in_kazoo_debug_logs(zk_server, caplog) -> None:
    """kazoo logs each request at DEBUG, the Auth packet included; fleetmon redacts it."""
    sec = load_security("registrar")
    # The "kazoo" logger itself: a CLI run earlier in the session (discovery.cli) sets it to WARNING.
    with caplog.at_level(logging.DEBUG, logger="kazoo"):
        c = make_client(zk_server.hosts, role="registrar")
        c.start(timeout=15)
        c.exists("/")
        c.stop()
        c.close()
    assert "Auth(scheme='digest', auth=<redacted>)" in caplog.text
    assert sec.credential.password not in caplog.text
