"""Benchmark: seconds from the webhook POST to the email in a real SMTP server.

Three paths, each with N distinct alerts sent at RATE per second, measured in the same run:

1. POST /api/v1/alerts -> alert-router (durable queue) -> Apprise -> aiosmtpd;
2. Alertmanager 0.25 (POST /api/v2/alerts, group_by ['...'], startsAt in the past so no
   group_wait) -> webhook -> alert-router -> aiosmtpd: the production chain;
3. reference: Alertmanager 0.25's own email receiver -> aiosmtpd (same Alertmanager setup).

Flood protection is raised for the run (every email goes to one address).

    .venv/bin/python -m bench.router_e2e [--count 100] [--rate 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.router_common import DATA, TOKEN, Router, load, summary
from tests.harness.servers import AlertmanagerServer, SmtpSink


def _ts(delta: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def measure(name: str, sink: SmtpSink, send, count: int, rate: float, tag: str) -> list[float]:
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(count):
        target = start + i / rate
        now = time.perf_counter()
        if now < target:
            time.sleep(target - now)
        key = f"{tag}-{i}"
        sent[key] = time.time()
        send(key)
    sink.wait_for(lambda m: tag + "-" in str(m["Subject"]), timeout=60, count=count)
    lat = []
    with sink._cond:
        pairs = list(zip(sink.messages, sink.envelopes, strict=True))
    for msg, env in pairs:
        subj = str(msg["Subject"])
        for key in list(sent):
            if key + " " in subj + " " or key + ")" in subj or subj.endswith(key):
                lat.append(env["received"] - sent.pop(key))
                break
    print(f"{name}\n  POST -> email: {summary(lat)}", flush=True)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--rate", type=float, default=5.0)
    args = ap.parse_args()
    base = json.loads((DATA / "am025_firing_single.json").read_text())
    results = {}
    with SmtpSink() as sink:
        router = Router({"default": [sink.mailto_url()]}, flood={"max_per_window": 100000})
        router.start()
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"

        def post_router(key: str) -> None:
            doc = copy.deepcopy(base)
            a = doc["alerts"][0]
            a["labels"]["instance"] = key
            a["annotations"]["summary"] = f"HighCPULoad on {key}"
            a["fingerprint"] = key.encode().hex()[:32]
            a["startsAt"] = _ts(0)
            doc["groupKey"] = key
            r = s.post(f"{router.url}/api/v1/alerts", json=doc, timeout=10)
            r.raise_for_status()

        try:
            results["router"] = measure("alert-router: POST webhook -> email", sink, post_router,
                                        args.count, args.rate, "direct")
            am_dir = Path(tempfile.mkdtemp(prefix="am-bench-"))
            am = AlertmanagerServer(am_dir, {
                "route": {"receiver": "router", "group_by": ["..."], "group_wait": "10s",
                          "group_interval": "30s", "repeat_interval": "4h",
                          "routes": [{"receiver": "email", "matchers": ['path="email"']}]},
                "receivers": [
                    {"name": "router", "webhook_configs": [{
                        "url": f"{router.url}/api/v1/alerts", "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer",
                                                          "credentials_file": str(router.workdir / "token")}}}]},
                    {"name": "email", "email_configs": [{
                        "to": "oncall@example.test", "from": "am@example.test",
                        "smarthost": f"127.0.0.1:{sink.port}", "require_tls": False,
                        "headers": {"Subject": "[FIRING] {{ .CommonLabels.instance }}"}}]},
                ]})
            am.start()
            try:
                def post_am(path: str):
                    def send(key: str) -> None:
                        am.post_alerts([{"labels": {"alertname": "HighCPULoad", "instance": key, "path": path,
                                                    "severity": "critical"},
                                         "annotations": {"summary": f"HighCPULoad on {key}"},
                                         "startsAt": _ts(-60)}])
                    return send

                results["chain"] = measure("Alertmanager -> alert-router -> email", sink, post_am("router"),
                                           args.count, args.rate, "chain")
                results["am"] = measure("reference: Alertmanager email receiver -> email", sink, post_am("email"),
                                        args.count, args.rate, "amref")
            finally:
                am.stop()
        finally:
            router.stop()
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    print(f"\nmedian ratio (Alertmanager -> router -> email) / (Alertmanager email): "
          f"{med['chain'] / med['am']:.2f}")
    print(f"load average at the end (2-core machine shared with other work): {load()}")


if __name__ == "__main__":
    main()
