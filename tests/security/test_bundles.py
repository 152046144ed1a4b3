"""Signed rule bundles against a real ZooKeeper (TLS + ACLs) and a real Prometheus.

A tampered, unsigned, foreign-key or oversized bundle is rejected before anything is written;
the previous rules keep evaluating, and `rulesync status` names the reason.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetmon.zk import make_client
from rulesync import HEADER, bundle, publish
from rulesync.agent import RuleAgent
from rulesync.cli import main as rulesync_main
from tests.harness.servers import wait_until
from tests.rulesync.conftest import rules_prometheus  # noqa: F401 - fixture

GOOD = {"good.rules.yml": f"{HEADER}\ngroups:\n- name: g\n  rules:\n  - alert: StillHere\n    expr: vector(1)\n"}
EVIL = {"good.rules.yml": f"{HEADER}\ngroups:\n- name: g\n  rules:\n  - alert: Injected\n    expr: vector(1)\n"}


def _status(client, root: str) -> dict:
    data, _ = client.get(f"{root}/rules/status/s/r")
    return json.loads(data)


def _alerts(prom) -> set[str]:
    return {r["name"] for g in prom.rules() for r in g["rules"]}


def _write_raw(client, root: str, data: bytes) -> None:
    # An attacker with write access (or a bug): bypasses publish() and its signing.
    client.set(publish.bundle_path(root), data)


@pytest.fixture
def agent_on_prometheus(rules_prometheus, zk_server, zk_root, zk_client):  # noqa: F811
    prom, rules_dir = rules_prometheus("signed")
    client = make_client(zk_server.hosts, role="sidecar")
    client.start(timeout=15)
    # Registered like a sidecar, so `rulesync status` counts this replica as live.
    client.create(f"{zk_root}/shards/s/r", json.dumps({"shard": "s", "replica": "r"}).encode(),
                  ephemeral=True, makepath=True)
    agent = RuleAgent(client, zk_root, "s", "r", rules_dir, prom.url, verify_timeout=20)
    agent.start()
    good = bundle.make(GOOD)
    publish.publish(zk_client, zk_root, good)
    wait_until(lambda: _status(zk_client, zk_root).get("ok") and _status(zk_client, zk_root)["version"] == good.version,
               timeout=40, what="the signed bundle to load")
    assert "StillHere" in _alerts(prom)
    yield prom, rules_dir, good
    agent.stop()
    client.stop()
    client.close()


def _oversized_signed(key: Ed25519PrivateKey) -> bytes:
    # Signed with the real key (a compromised or buggy publisher), ~17 MiB once inflated but
    # tiny compressed: the cap, not the znode size limit, must stop it.
    doc = {"format": 1, "version": "x", "checksum": "x", "created_at": 0,
           "files": {"big.rules.yml": " " * (bundle.MAX_DECOMPRESSED + 1024)}, "recipients": ""}
    payload = zlib.compress(json.dumps(doc).encode(), 9)
    assert len(payload) < 200_000
    return bundle.MAGIC + key.sign(bundle.MAGIC + payload) + payload


def test_tampered_unsigned_foreign_and_oversized_bundles_are_rejected_and_old_rules_stay(
        agent_on_prometheus, zk_client, zk_root, zk_server) -> None:
    prom, rules_dir, good = agent_on_prometheus
    files_before = {p.name: p.read_bytes() for p in rules_dir.iterdir()}
    key = bundle.load_private_key()
    evil = bundle.make(EVIL)
    signed = bundle.encode(evil, key)
    tampered = bytearray(signed)
    tampered[len(bundle.MAGIC) + bundle.SIG_LEN + 10] ^= 0x01  # one payload bit
    attacks = {
        "tampered": (bytes(tampered), "signature does not verify"),
        "unsigned": (bundle.encode(evil), "unsigned bundle"),
        "foreign key": (bundle.encode(evil, Ed25519PrivateKey.generate()), "signature does not verify"),
        "oversized": (_oversized_signed(key), "decompresses to more than"),
    }
    for what, (data, reason) in attacks.items():
        before = _status(zk_client, zk_root)["loaded_at"]
        _write_raw(zk_client, zk_root, data)
        st = wait_until(lambda r=reason, t=before: (s := _status(zk_client, zk_root))["loaded_at"] != t
                        and r in (s.get("rejected") or "") and s,
                        timeout=30, what=f"the {what} bundle to be rejected")
        assert st["ok"] is False and st["loaded_version"] == good.version, (what, st)
        # Nothing written, and the old rules are still the ones Prometheus evaluates.
        assert {p.name: p.read_bytes() for p in rules_dir.iterdir()} == files_before, what
        assert "StillHere" in _alerts(prom) and "Injected" not in _alerts(prom), what
        out = CliRunner().invoke(rulesync_main, ["status", "--zk", zk_server.hosts, "--root", zk_root])
        assert out.exit_code == 1 and "REJECTED bundle:" in out.output and reason in out.output, out.output
        if what != "oversized":  # (signed with the real key: only the size cap stops it)
            assert "(REJECTED by agents:" in out.output.splitlines()[0], out.output
    # StillHere is still evaluated (an alert rule with vector(1) fires).
    prom.wait_for_query('ALERTS{alertname="StillHere"}', timeout=30)
    # A properly signed bundle is accepted again afterwards.
    publish.publish(zk_client, zk_root, evil)
    wait_until(lambda: _status(zk_client, zk_root).get("version") == evil.version and _status(zk_client, zk_root)["ok"],
               timeout=40, what="the next signed bundle")
    assert "Injected" in _alerts(prom)


def test_apply_refuses_without_a_readable_signing_key(tmp_path, zk_server, zk_root) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes((bundle.private_key_path()).read_bytes())
    key.chmod(0o644)
    rules = tmp_path / "rules.yaml"
    rules.write_text((Path(__file__).resolve().parents[2] / "examples" / "rules.yaml").read_text())
    out = CliRunner().invoke(rulesync_main, ["apply", str(rules), "--zk", zk_server.hosts, "--root", zk_root,
                                             "--signing-key", str(key), "--timeout", "1"])
    assert out.exit_code == 1 and "NOT published" in out.output and "chmod 600" in out.output, out.output
    assert "PRIVATE KEY" not in out.output


def test_bundle_round_trip_and_decode_checks() -> None:
    key = Ed25519PrivateKey.generate()
    b = bundle.make(GOOD)
    data = bundle.encode(b, key)
    assert bundle.decode(data, key.public_key()).files == GOOD
    with pytest.raises(bundle.BundleError, match="signature does not verify"):
        bundle.decode(data, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(bundle.BundleError, match="unsigned"):
        bundle.decode(bundle.encode(b), key.public_key())
    assert bundle.decode(bundle.encode(b), key.public_key(), allow_unsigned=True).files == GOOD
    with pytest.raises(bundle.BundleError, match="decompresses to more than"):
        bundle.decode(bundle.encode(b, key), key.public_key(), max_size=10)
