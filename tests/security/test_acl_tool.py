"""`fleet-discovery acl check|repair` on a real tree with wrong ACLs (left by open mode or by hand)."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from discovery import layout
from discovery.cli import main
from discovery.registry import Registrar
from fleetmon.zk import ZkSecurity, make_client
from rulesync import bundle, publish


def test_check_finds_and_repair_fixes_wrong_acls(zk_server, zk_client, zk_root) -> None:
    reg = Registrar(zk_server.hosts, root=zk_root, session_timeout=6.0).start()
    try:
        reg.add("web-1", "10.0.0.1:9100")
        assert reg.wait(30)
        publish.publish(zk_client, zk_root, bundle.make({"a.rules.yml": "groups: []\n"}))
        # Left over from open mode, and a bundle node a registrar could rewrite.
        opened = layout.host_path(zk_root, "web-1")
        zk_client.set_acls(opened, OPEN_ACL_UNSAFE)
        zk_client.create(layout.host_path(zk_root, "legacy"), b'{"address": "10.0.0.2:9100"}',
                         acl=OPEN_ACL_UNSAFE, makepath=True)
        args = ["--zk", zk_server.hosts, "--root", zk_root]
        res = CliRunner().invoke(main, ["acl", "check", *args])
        assert res.exit_code == 1, res.output
        assert f"{opened}: ACL is world:anyone=ALL" in res.output
        assert layout.host_path(zk_root, "legacy") in res.output and "2 znode(s) with a wrong ACL" in res.output
        # The subtrees nobody created yet (absent, shards, rules/status) are created by repair.
        res = CliRunner().invoke(main, ["acl", "repair", *args])
        assert res.exit_code == 0 and "repaired 2 ACL(s)" in res.output, res.output
        assert f"created {zk_root}/shards" in res.output
        res = CliRunner().invoke(main, ["acl", "check", *args])
        assert res.exit_code == 0 and "all ACLs match the policy" in res.output, res.output
        # The formerly open node is closed to anonymous clients now.
        anon = make_client(zk_server.hosts, security=ZkSecurity(
            ca=str(Path(os.environ["FLEETMON_ZK_SECURITY_DIR"]) / "ca.pem")))
        anon.start(timeout=15)
        try:
            for p in (opened, layout.host_path(zk_root, "legacy"), f"{zk_root}/shards"):
                try:
                    anon.get(p)
                    raise AssertionError(f"anonymous read {p}")
                except NoAuthError:
                    pass
        finally:
            anon.stop()
            anon.close()
    finally:
        reg.stop()


def test_acl_commands_need_the_admin_credential(zk_server, zk_root, monkeypatch) -> None:
    monkeypatch.setenv("FLEETMON_ZK_ADMIN_CREDENTIAL", "fleetmon-admin:wrong")
    res = CliRunner().invoke(main, ["acl", "check", "--zk", zk_server.hosts, "--root", zk_root])
    assert res.exit_code == 1 and "does not match" in res.output and "wrong" not in res.output.replace(
        "wrong ACL", ""), res.output
