"""What security costs: registration over TLS + ACLs vs plain ZooKeeper, and rule apply with
signed vs unsigned bundles. Each secured figure is printed beside the plain one measured in
the same run (the target: within 1.5x).

Run from the repo root:
``.venv/bin/python -m bench.security_cost [--hosts 25000] [--rounds 2] [--rules 1000] [--applies 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from discovery.registry import Registrar
from fleetmon.zk import ZkSecurity, make_client
from tests.harness.servers import PrometheusServer, ZooKeeperServer


def register(zk: ZooKeeperServer, n: int, security: ZkSecurity | None) -> float:
    """Seconds for one Registrar to hold inventory + liveness of ``n`` hosts (pipelined)."""
    root = f"/bench-{uuid.uuid4().hex[:8]}"
    reg = Registrar(zk.hosts, root=root, session_timeout=30.0, agent="bench", security=security).start()
    try:
        t0 = time.monotonic()
        reg.add_many([(f"host-{i:05d}.dc{i % 4}.example.net", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9847",
                       {"datacenter": f"dc{i % 4}", "role": ("web", "db", "cache")[i % 3], "env": "prod"})
                      for i in range(n)])
        assert reg.wait(900), reg.status()
        return time.monotonic() - t0
    finally:
        reg.stop()


def bench_registration(n: int, rounds: int, work: Path) -> None:
    plain = ZooKeeperServer(work / "zk-plain", insecure=True).start()
    secure = ZooKeeperServer(work / "zk-secure").start()
    open_mode = ZkSecurity(insecure=True)
    try:
        p_s, s_s = [], []
        for _ in range(rounds):  # alternate, so load from other work hits both alike
            p_s.append(register(plain, n, open_mode))
            s_s.append(register(secure, n, None))
        p, s = statistics.median(p_s), statistics.median(s_s)
        print(f"register {n} hosts, Registrar pipelined, median of {rounds}:")
        print(f"  TLS + digest + per-path ACLs   {s:6.1f} s  {n / s:7.0f} hosts/s")
        print(f"  ref: plain, open ZooKeeper     {p:6.1f} s  {n / p:7.0f} hosts/s   ratio {s / p:.2f}x")
    finally:
        plain.stop()
        secure.stop()


def bench_apply(n: int, applies: int, work: Path) -> None:
    from bench.rulesync_scale import _doc, make_rules
    from rulesync import bundle, publish
    from rulesync.agent import RuleAgent
    from rulesync.generate import generate
    from rulesync.testgen import DEFAULT_RECORDING_RULES
    from rulesync.validate import validate

    zk = ZooKeeperServer(work / "zk").start()
    started = []
    try:
        roots = {"signed": "/bench-signed", "unsigned": "/bench-unsigned"}
        for kind, root in roots.items():
            rd = work / f"rules-{kind}"
            rd.mkdir()
            cfg = {"global": {"evaluation_interval": "15s"},
                   "rule_files": [str(rd / "*.rules.yml"), str(DEFAULT_RECORDING_RULES)]}
            prom = PrometheusServer(work / f"prom-{kind}", cfg, name=f"prom-{kind}").start()
            c = make_client(zk.hosts, role="sidecar")
            c.start(timeout=15)
            c.create(f"{root}/shards/s/r0", b"{}", ephemeral=True, makepath=True)
            agent = RuleAgent(c, root, "s", "r0", rd, prom.url, allow_unsigned=(kind == "unsigned"))
            agent.start()
            started.append((prom, c, agent))
        pub = make_client(zk.hosts, role="publisher")
        pub.start(timeout=15)
        key = bundle.load_private_key()
        lat: dict[str, list[float]] = {"signed": [], "unsigned": []}
        for i in range(applies):
            spec, _ = validate([_doc(make_rules(n, bump=i + 1), work / f"a{i}.yaml")], None, False)
            b = bundle.make(generate(spec))
            for kind, root in roots.items():
                t0 = time.perf_counter()
                publish.publish(pub, root, b, signing_key=key, unsigned=(kind == "unsigned"))
                res = publish.wait_for(pub, root, b.version, timeout=120, poll=0.05)
                lat[kind].append(time.perf_counter() - t0)
                assert res.ok, res
        pub.stop()
        pub.close()
        data = bundle.encode(b)
        t0 = time.perf_counter()
        for _ in range(20):
            signed = bundle.encode(b, key)
        t_sign = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        for _ in range(20):
            bundle.decode(signed, key.public_key())
        t_verify = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        for _ in range(20):
            bundle.decode(data)
        t_plain = (time.perf_counter() - t0) / 20
        s, u = statistics.median(lat["signed"]), statistics.median(lat["unsigned"])
        print(f"apply {n} rules (publish -> agent verified, wrote, reloaded, reported), median of {applies}:")
        print(f"  signed, agent verifies          {s:6.2f} s")
        print(f"  ref: unsigned, agent trusts     {u:6.2f} s   ratio {s / u:.2f}x")
        print(f"  bundle {len(signed) / 1024:.0f} KiB: encode+sign {t_sign * 1000:.1f} ms, "
              f"verify+decode {t_verify * 1000:.1f} ms (decode alone {t_plain * 1000:.1f} ms)")
    finally:
        for prom, c, agent in started:
            agent.stop()
            c.stop()
            c.close()
            prom.stop()
        zk.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=25000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--applies", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-security-") as d:
        bench_registration(args.hosts, args.rounds, Path(d))
        bench_apply(args.rules, args.applies, Path(d))


if __name__ == "__main__":
    main()
