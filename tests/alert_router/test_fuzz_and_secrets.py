"""Hostile input against the real server: 1,000 malformed payloads, and secrets kept out of logs."""

from __future__ import annotations

import copy
import json
import os

import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.alert_router.conftest import TOKEN, load_payload
from tests.harness.servers import free_port, wait_until

BASES = [load_payload(n) for n in ("am025_firing_single.json", "am025_grouped_mixed_10_resolved_15_firing.json",
                                   "am025_truncated_firing_max_alerts_3.json")]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
not_str = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) \
    | st.lists(json_scalars, max_size=3) | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    i = draw(st.integers(0, len(doc["alerts"]) - 1))
    a = doc["alerts"][i]
    kind = draw(st.sampled_from(["drop_top", "type_top", "status", "drop_alert", "label_type", "time",
                                 "fingerprint", "truncated", "alerts_shape"]))
    if kind == "drop_top":
        del doc[draw(st.sampled_from(["version", "status", "receiver", "groupKey", "alerts"]))]
    elif kind == "type_top":
        doc[draw(st.sampled_from(["version", "receiver", "groupKey", "status"]))] = draw(not_str)
    elif kind == "status":
        target = draw(st.sampled_from([doc, a]))
        target["status"] = draw(st.text(max_size=12).filter(lambda s: s not in ("firing", "resolved")))
    elif kind == "drop_alert":
        del a[draw(st.sampled_from(["status", "labels", "startsAt", "fingerprint"]))]
    elif kind == "label_type":
        where = draw(st.sampled_from(["labels", "annotations"]))
        a[where][draw(st.text(min_size=1, max_size=8))] = draw(not_str.filter(lambda v: v is not None))
    elif kind == "time":
        a[draw(st.sampled_from(["startsAt", "endsAt"]))] = draw(
            not_str | st.text(max_size=30).filter(lambda s: not s[:4].isdigit()))
    elif kind == "fingerprint":
        a["fingerprint"] = draw(st.text(min_size=1, max_size=70).filter(lambda s: not s.isascii() or not s.isalnum()))
    elif kind == "truncated":
        doc["truncatedAlerts"] = draw(st.integers(max_value=-1) | st.text(max_size=5) | st.floats(allow_nan=False))
    else:
        doc["alerts"] = draw(st.sampled_from([[], {}, "alerts", None]) | st.lists(not_str, min_size=1, max_size=3))
    return "application/json", json.dumps(doc).encode()


cases = st.one_of(
    mutated(),
    json_values.map(lambda v: ("application/json", json.dumps(v).encode())),
    st.binary(max_size=300).map(lambda b: ("application/json", b)),
    st.text(max_size=200).map(lambda t: ("application/json", t.encode("utf-8", "surrogatepass"))),
    st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"]).map(
        lambda ct: (ct, json.dumps(BASES[0]).encode())),
)


def test_1000_malformed_payloads_only_4xx(router_factory):
    router = router_factory({"default": [f"json://127.0.0.1:{free_port()}/hook"]})
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    seen: list[int] = []

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(cases)
    def check(case: tuple[str, bytes]) -> None:
        ctype, body = case
        r = session.post(f"{router.url}/api/v1/alerts", data=body, headers={"Content-Type": ctype}, timeout=10)
        seen.append(r.status_code)
        assert 400 <= r.status_code < 500, (r.status_code, r.text, body[:300])
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["status"] == "error"

    check()
    assert len(seen) >= 1000
    assert requests.get(f"{router.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{router.url}/readyz", timeout=5).status_code == 200
    assert router.running()
    assert router.deliveries() == []
    assert router.metric("alert_router_notifications_received_total") == 0
    assert router.metric("alert_router_webhook_requests_total", code="500") == 0
    # Still serving real traffic afterwards.
    assert router.post(BASES[0]).status_code == 200


def test_secrets_never_in_logs(router_factory, http_sink, tmp_path):
    secrets = {"FLEETMON_ROUTER_SMTP_PASS": "smtp-Pw-0x5ecret-77", "FLEETMON_ROUTER_HOOK_KEY": "hook-Key-0x5ecret-88"}
    file_secret = "file-Tok-0x5ecret-99"
    secret_file = tmp_path / "hook.pass"
    secret_file.write_text(file_secret + "\n")
    dead = free_port()
    router = router_factory(
        {"default": [
            f"mailto://bot:${{FLEETMON_ROUTER_SMTP_PASS}}@127.0.0.1:{dead}?from=a@example.test&to=b@example.test&mode=insecure",
            f"json://user:${{file:{secret_file}}}@127.0.0.1:{http_sink.port}/hook?+X-Api-Key=${{FLEETMON_ROUTER_HOOK_KEY}}",
        ]},
        env=secrets, args=["--log-level", "DEBUG"], secret_dir=str(tmp_path), secret_env_prefix="FLEETMON_ROUTER_")
    assert router.post(load_payload("am025_firing_single.json")).status_code == 200
    req = http_sink.wait_for(timeout=20)[0]
    assert req["headers"]["X-Api-Key"] == secrets["FLEETMON_ROUTER_HOOK_KEY"]  # the secrets were really expanded and used
    wait_until(lambda: router.metric("alert_router_deliveries_retried_total", channel="email") >= 2,
               timeout=20, what="failing email retries")
    for bad in ("Bearer " + TOKEN[:-1], "Bearer " + secrets["FLEETMON_ROUTER_SMTP_PASS"], TOKEN):
        assert requests.post(f"{router.url}/api/v1/alerts", json={}, headers={"Authorization": bad},
                             timeout=5).status_code == 401
    # A broken recipients file with a secret inline: the error is logged, the secret is not.
    rec = router.workdir / "recipients.yaml"
    rec.write_text(yaml.safe_dump({"recipients": {"default": ["notaservice://inline-0x5ecret-66@h/x"]}}))
    os.utime(rec, ns=(10**18, 10**18))
    wait_until(lambda: "recipients not reloaded" in router.log_path.read_text(), timeout=10, what="reload error")
    router.stop()
    assert router.proc.returncode == 0  # SIGTERM: a clean stop
    log = router.log_path.read_text()
    assert "alert-router stopping" in log
    assert "Apprise cannot use notaservice://" in log and "recipients.yaml:3" in log
    assert "delivery of 1 alert state(s) [HighCPULoad] to mailto://" in log
    for s in [*secrets.values(), file_secret, TOKEN, "inline-0x5ecret-66"]:
        assert s not in log, s
