"""rulesync at scale: validate, compile and test 1,000 rules; apply latency to 2 shards.

Run from the repo root: ``.venv/bin/python -m bench.rulesync_scale [--rules 1000] [--applies 5]``.
Reference figures measured in the same run: ``promtool check rules`` on the compiled output
(parsing what we generate), a bare ``promtool test rules`` over the generated tests, and a
direct write + /-/reload of one Prometheus (what apply costs without ZooKeeper).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from rulesync import bundle, promtool, publish
from rulesync.agent import RuleAgent, sync
from rulesync.generate import generate
from rulesync.load import load_file
from rulesync.signals import SIGNALS
from rulesync.testgen import DEFAULT_RECORDING_RULES, run_tests
from rulesync.validate import validate

THRESHOLDS = {"percent": 80, "ratio": 0.05, "count": 2, "per_second": 10, "per_minute": 5, "seconds": 1.5,
              "hours": 24}


def make_rules(n: int, bump: float = 0.0) -> dict:
    sigs = list(SIGNALS.values())
    rules = []
    for i in range(n):
        s = sigs[i % len(sigs)]
        agg = s.aggregations[(i // len(sigs)) % len(s.aggregations)]
        r = {"alert": f"Rule{i:04d}_{s.name}", "metric": s.name, "aggregation": agg,
             "window": ["5m", "10m", "15m"][i % 3], "for": ["0s", "2m", "5m"][(i // 3) % 3],
             "hosts": {"role": f"role{i % 17}", "datacenter": ["dc1", "dc2"]},
             "severity": "warning", "notify": ["oncall"],
             "summary": f"rule {i} on {{{{ $labels.instance }}}}"}
        if s.directions:
            d = s.directions[i % len(s.directions)]
            r[d] = THRESHOLDS[s.unit] + (bump if s.unit not in ("ratio",) else 0)
        rules.append(r)
    return {"version": 1, "rules": rules, "recipients": {"oncall": ["mailto://oncall@example.test"]}}


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def bench_pipeline(n: int, work: Path) -> None:
    src = work / "rules.yaml"
    src.write_text(yaml.safe_dump(make_rules(n), sort_keys=False))
    doc, t_load = timed(load_file, src)
    (spec, problems), t_val = timed(validate, [doc], None, False)
    assert spec is not None, problems[:3]
    files, t_gen = timed(generate, spec)
    out = work / "out"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    (ok, msg), t_check = timed(promtool.check_rules, list(out.iterdir()))
    assert ok, msg
    b = bundle.make(files)
    size = len(bundle.encode(b))
    rep, t_test = timed(run_tests, spec, work / "tests")
    assert rep.ok, rep.failures[:2]
    tests = sorted((work / "tests").glob("test-*.yml"))
    (_, t_ref_test) = timed(promtool.test_rules, tests, 1, len(tests))
    print(f"rules: {n}")
    print(f"  load (YAML with lines)       {t_load * 1000:8.0f} ms")
    print(f"  validate                     {t_val * 1000:8.0f} ms")
    print(f"  generate                     {t_gen * 1000:8.0f} ms")
    print(f"  compile = load+validate+gen  {(t_load + t_val + t_gen) * 1000:8.0f} ms   (target < 1000 ms)")
    print(f"  ref: promtool check rules    {t_check * 1000:8.0f} ms   on the same output")
    print(f"  bundle                       {size / 1024:8.1f} KiB compressed "
          f"({sum(map(len, files.values())) / 1024:.0f} KiB of rule files; limit 900 KiB)")
    print(f"  test (generate + 2 promtool) {t_test:8.1f} s    (target < 60 s; {rep.test_files} test files)")
    print(f"  ref: one promtool, one run   {t_ref_test:8.1f} s    same test files, not parallel")


def bench_apply(n: int, applies: int, work: Path) -> None:
    from fleetmon.zk import make_client
    from tests.harness.servers import PrometheusServer, ZooKeeperServer

    zk = ZooKeeperServer(work / "zk").start()
    proms, agents, clients = [], [], []
    try:
        for shard in ("a", "b"):
            rd = work / f"rules-{shard}"
            rd.mkdir()
            # Shards load fleetmon's recording rules (memory rules read one of their series).
            cfg = {"global": {"evaluation_interval": "15s"},
                   "rule_files": [str(rd / "*.rules.yml"), str(DEFAULT_RECORDING_RULES)]}
            p = PrometheusServer(work / f"prom-{shard}", cfg, name=f"prom-{shard}").start()
            c = make_client(zk.hosts, role="sidecar")
            c.start(timeout=15)
            c.create(f"/bench/shards/{shard}/r0", b"{}", ephemeral=True, makepath=True)
            a = RuleAgent(c, "/bench", shard, "r0", rd, p.url)
            a.start()
            proms.append((p, rd))
            agents.append(a)
            clients.append(c)
        admin = make_client(zk.hosts, role="publisher")
        admin.start(timeout=15)
        lat, ref = [], []
        for i in range(applies):
            spec, _ = validate([_doc(make_rules(n, bump=i + 1), work / f"a{i}.yaml")], None, False)
            files = generate(spec)
            b = bundle.make(files)
            t0 = time.perf_counter()
            publish.publish(admin, "/bench", b)
            res = publish.wait_for(admin, "/bench", b.version, timeout=120, poll=0.05)
            lat.append(time.perf_counter() - t0)
            assert res.ok, res
            # Reference: shard a rewritten directly (write + reload + verify), as
            # `apply --rules-dir` does, without ZooKeeper in between.
            spec2, _ = validate([_doc(make_rules(n, bump=i + 0.5), work / f"r{i}.yaml")], None, False)
            f2 = generate(spec2)
            v2 = bundle.make(f2).version
            r, t = timed(sync, proms[0][1], f2, v2, proms[0][0].url)
            assert r.ok, r.error
            ref.append(t)
            # put shard a back on the published version for the next round
            sync(proms[0][1], files, b.version, proms[0][0].url)
        admin.stop()
        admin.close()
        print(f"apply {n} rules to 2 shards via ZooKeeper: median {statistics.median(lat):.2f} s, "
              f"max {max(lat):.2f} s over {applies} applies")
        print(f"  ref: local write + promtool + /-/reload + verify on one Prometheus: median "
              f"{statistics.median(ref):.2f} s")
    finally:
        for a in agents:
            a.stop()
        for c in clients:
            c.stop()
            c.close()
        for p, _ in proms:
            p.stop()
        zk.stop()


def _doc(data: dict, path: Path):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_file(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--applies", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rulesync-bench-") as d:
        bench_pipeline(args.rules, Path(d))
        bench_apply(args.rules, args.applies, Path(d))


if __name__ == "__main__":
    main()
