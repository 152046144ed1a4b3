"""End-to-end alert latency with the intervals we ship: threshold crossed in the data ->
alert firing in Prometheus -> notification posted by Alertmanager -> email received.

Real parts as subprocesses: ZooKeeper, the simulator, a discovery sidecar (with the rulesync
agent), Prometheus (scrape 15 s, evaluation 15 s), the rulesync-compiled seed rule (5-minute
average CPU above 80%, for 0s), Alertmanager with prometheus/alertmanager.yml (group_wait 10 s,
group_interval 30 s) pointed at alert-router, and a real SMTP server. Each trial drives a
different simulated host to 100% CPU, staggered, so trials overlap as alerts do in production
(later ones join an already-notified group and wait for its next flush).

Stages per trial:
- cross: first instant the rule's expression exceeds 80, found in the stored data
  (query_range at 1 s over the rule's expression);
- fire: the alert's activeAt in Prometheus (for: 0s, so the evaluation that fired it);
- post: Alertmanager's webhook post, seen by a tap receiver beside the router's;
- inbox: the router's email in the SMTP server.
Reference in the same run: Alertmanager's own email_configs to the same SMTP server.

    .venv/bin/python -m bench.alert_latency [--trials 10] [--stagger 15] [--warmup 60]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from fleetmon.zk import make_client
from tests.e2e.parts import REPO, router_for_rules, rulesync, sidecar
from tests.harness.servers import (
    AlertmanagerServer,
    HttpServer,
    PrometheusServer,
    SmtpSink,
    ZooKeeperServer,
    wait_until,
)
from tests.simulator.simproc import SimulatorProcess

RULE_EXPR_THRESHOLD = 80.0
RULES = """\
version: 1
rules:
  - alert: HighCpuUsage
    metric: cpu_usage_percent
    aggregation: avg
    window: 5m
    above: 80
    for: 0s
    severity: critical
    notify: [oncall]
    summary: "CPU above 80% on {{ $labels.instance }}"
recipients:
  oncall: ["@MAILTO@"]
"""


class Tap(HttpServer):
    """Records when Alertmanager posts each firing alert (by instance) for the first time."""

    def __init__(self) -> None:
        super().__init__()
        self.first_post: dict[str, float] = {}

    def respond(self, request: dict) -> tuple[int, str, bytes]:
        for a in json.loads(request["body"] or b"{}").get("alerts", []):
            inst = a.get("labels", {}).get("instance")
            if a.get("status") == "firing" and inst and inst not in self.first_post:
                self.first_post[inst] = request["received"]
        return 200, "text/plain", b""


def am_config(router_port: int, token: Path, tap_port: int, smtp: SmtpSink) -> dict:
    cfg = yaml.safe_load((REPO / "prometheus" / "alertmanager.yml").read_text())
    for rcv in cfg["receivers"]:
        for wh in rcv.get("webhook_configs", []):
            wh["url"] = f"http://127.0.0.1:{router_port}/api/v1/alerts"
            wh["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token)}}
        rcv["webhook_configs"].append({"url": f"http://127.0.0.1:{tap_port}/", "send_resolved": False})
    # Reference: Alertmanager's own email, same route timing, same SMTP server.
    route = cfg["route"]
    route["routes"] = [{"receiver": "am-email", "continue": True, "matchers": ['alertname="HighCpuUsage"']},
                       {"receiver": route["receiver"]}]
    cfg["receivers"].append({"name": "am-email", "email_configs": [{
        "to": "reference@example.test", "from": "alertmanager@example.test",
        "smarthost": f"127.0.0.1:{smtp.port}", "require_tls": False, "send_resolved": False}]})
    return cfg


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--stagger", type=float, default=15.0, help="seconds between trial starts")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of normal data before the first trial")
    ap.add_argument("--scrape", default="15s")
    ap.add_argument("--eval", default="15s")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="alert-latency-"))
    started: list = []
    smtp = SmtpSink().start()
    tap = Tap().start()
    root = f"/bench-{secrets.token_hex(4)}"
    try:
        zk = ZooKeeperServer(tmp / "zk")
        started.append(zk.start())
        router, token = router_for_rules(tmp, RULES, smtp.mailto_url(to="oncall@example.test"))
        started.append(router.start(timeout=30))
        am = AlertmanagerServer(tmp / "am", am_config(router.port, token, tap.port, smtp))
        started.append(am.start())
        pdir = tmp / "prometheus"
        (pdir / "rules").mkdir(parents=True)
        (pdir / "targets.json").write_text("[]")
        prom = PrometheusServer(pdir, {
            "global": {"scrape_interval": args.scrape, "evaluation_interval": args.eval,
                       "external_labels": {"shard": "a", "replica": "r1"}},
            "rule_files": ["rules/*.yml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]},
            "scrape_configs": [{"job_name": "fleet", "file_sd_configs": [{"files": ["targets.json"]}]}],
        })
        started.append(prom.start())
        started.append(sidecar(tmp / "sidecar", zk.hosts, root, "a", pdir / "targets.json", prom.url,
                               pdir / "rules").start(timeout=30))
        client = make_client(zk.hosts)
        client.start(timeout=15)
        wait_until(lambda: client.exists(f"{root}/shards/a/r1"), timeout=20, what="shard registered")
        client.stop()
        client.close()
        n_hosts = max(20, 2 * args.trials + 4)
        sim = SimulatorProcess(tmp / "sim", hosts=n_hosts, args=["--zk", zk.hosts, "--zk-root", root])
        started.append(sim.start())
        print(rulesync("apply", str(tmp / "rules.yaml"), "--zk", zk.hosts, "--root", root, "--timeout", "30").strip())
        prom.wait_for_query(f'count(up{{job="fleet"}} == 1) == {n_hosts}', timeout=90)
        print(f"{n_hosts} hosts scraped every {args.scrape}, rules every {args.eval}; warming up {args.warmup:.0f}s")
        time.sleep(args.warmup)  # benchmark pacing (not a test): let normal data accumulate

        hosts = [f"web-{i + 1:04d}" for i in range(args.trials)]
        starts = {}
        for i, h in enumerate(hosts):
            if i:
                time.sleep(args.stagger)
            starts[h] = sim.post_event({"type": "cpu", "hosts": h, "at": 0, "value": 100})["start_unix"]
            print(f"  trial {i + 1}: {h} to 100% CPU")

        def delivered(h: str, to: str) -> float | None:
            for msg, env in zip(list(smtp.messages), list(smtp.envelopes), strict=False):
                if to in env["to"] and h in str(msg.get("Subject", "")) + SmtpSink.body(msg) \
                        and "FIRING" in str(msg.get("Subject", "")).upper():
                    body = SmtpSink.body(msg)
                    if to.startswith("oncall") and f"Instance:    {h}" not in body.split("== RESOLVED")[0]:
                        continue
                    return env["received"]
            return None

        wait_until(lambda: all(delivered(h, "oncall@example.test") for h in hosts), timeout=600, interval=1,
                   what="every trial's email")
        wait_until(lambda: all(delivered(h, "reference@example.test") for h in hosts), timeout=120, interval=1,
                   what="every reference email")
        alerts = {a["labels"]["instance"]: a for a in prom.api("alerts")["alerts"]
                  if a["labels"].get("alertname") == "HighCpuUsage"}
        expr = [r for g in prom.rules() for r in g["rules"] if r["name"] == "HighCpuUsage"][0]["query"]
        base = expr.rsplit(">", 1)[0].strip()
        rows = []
        for h in hosts:
            fire = _parse_ts(alerts[h]["activeAt"])
            rng = prom.api("query_range", query=f'{base}', start=starts[h] - 5, end=fire + 1, step="1s")
            series = [s for s in rng["result"] if s["metric"].get("instance") == h][0]["values"]
            # On a 1 s grid: the evaluation that fired can be up to 1 s before the grid point.
            cross = min(fire, next(float(t) for t, v in series if float(v) > RULE_EXPR_THRESHOLD))
            rows.append({"host": h, "start": starts[h], "cross": cross, "fire": fire, "post": tap.first_post[h],
                         "inbox": delivered(h, "oncall@example.test"),
                         "ref_inbox": delivered(h, "reference@example.test")})
    finally:
        for p in reversed(started):
            p.stop()
        smtp.stop()
        tap.stop()

    print(f"\n{'trial':<10}{'cross->fire':>12}{'fire->post':>12}{'post->inbox':>13}{'fire->inbox':>13}"
          f"{'ref fire->inbox':>17}")
    for r in rows:
        print(f"{r['host']:<10}{r['fire'] - r['cross']:>12.1f}{r['post'] - r['fire']:>12.1f}"
              f"{r['inbox'] - r['post']:>13.2f}{r['inbox'] - r['fire']:>13.1f}{r['ref_inbox'] - r['fire']:>17.1f}")
    for label, key_a, key_b in (("cross -> fire", "cross", "fire"), ("fire -> post", "fire", "post"),
                                ("post -> inbox", "post", "inbox"), ("fire -> inbox", "fire", "inbox"),
                                ("cross -> inbox", "cross", "inbox"),
                                ("reference (Alertmanager email) fire -> inbox", "fire", "ref_inbox")):
        vals = [r[key_b] - r[key_a] for r in rows]
        print(f"{label:<46} median {statistics.median(vals):6.1f}s  p95 {pct(vals, 0.95):6.1f}s  "
              f"max {max(vals):6.1f}s")
    f2i = [r["inbox"] - r["fire"] for r in rows]
    print(f"\ntarget: every trial < 60 s firing->inbox: {'MET' if max(f2i) < 60 else 'MISSED'}; "
          f"p95 < 30 s: {'MET' if pct(f2i, 0.95) < 30 else 'MISSED'} ({len(rows)} trials)")


def _parse_ts(text: str) -> float:
    from datetime import datetime

    main_part, _, frac = text.rstrip("Z").partition(".")
    ts = datetime.fromisoformat(main_part + "+00:00").timestamp()
    return ts + (float("0." + frac) if frac else 0.0)


if __name__ == "__main__":
    main()
