"""fleet-exporter as a real process: scraped by a real Prometheus, linted by promtool,
rotated under, restarted, served over TLS with basic auth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests.exporter.conftest import parse_samples, value
from tests.harness.servers import wait_until

HOST_FAMILIES = [
    "node_cpu_seconds_total", "node_cpu_guest_seconds_total", "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
    "node_filesystem_free_bytes", "node_filesystem_files", "node_filesystem_files_free",
    "node_filesystem_readonly", "node_filesystem_device_error", "node_disk_read_bytes_total",
    "node_disk_written_bytes_total", "node_disk_io_time_seconds_total", "node_disk_info", "node_load1",
    "node_load5", "node_load15", "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
    "node_boot_time_seconds", "node_context_switches_total", "node_forks_total", "node_intr_total",
    "node_procs_running", "node_procs_blocked", "node_uname_info", "node_time_seconds",
    "node_time_zone_offset_seconds", "node_scrape_collector_success",
    "node_scrape_collector_duration_seconds", "node_textfile_scrape_error", "node_textfile_mtime_seconds",
]
LOG_FAMILIES = [
    "fleetmon_http_requests_total", "fleetmon_http_response_bytes_total",
    "fleetmon_http_request_duration_seconds_bucket", "fleetmon_http_request_duration_seconds_sum",
    "fleetmon_http_request_duration_seconds_count", "fleetmon_webserver_errors_total",
    "fleetmon_syslog_messages_total", "fleetmon_log_lines_total", "fleetmon_log_parse_errors_total",
    "fleetmon_log_rotations_total", "fleetmon_log_lag_bytes",
]


def access(i: int, status: int = 200, rt: str = "0.120") -> str:
    return (f'198.51.100.{i % 250} - - [28/Nov/2026:07:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
            f'"GET /p/{i} HTTP/1.1" {status} {i % 1000} "-" "bench/1.0" {rt}\n')


def append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def write_config(tmp_path: Path, logs: list[dict], **extra) -> Path:
    cfg = {"logs": logs, "tailing": {"state_file": str(tmp_path / "state.json"), "poll_interval": 0.1},
           **extra}
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def scrape_config(target: str, **extra) -> dict:
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "fleet", "static_configs": [{"targets": [target]}], **extra}]}


def test_prometheus_scrapes_every_family_and_promtool_accepts_it(tmp_path, exporter_factory,
                                                                  prometheus_factory) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("".join(access(i, status=200 if i % 10 else 500) for i in range(100)))
    (logs / "error.log").write_text("2026/11/28 07:37:18 [error] 1#1: *1 boom\n"
                                    "2026/11/28 07:37:19 [warn] 1#1: meh\n")
    (logs / "apache_error.log").write_text("[Sat Nov 28 07:37:18.1 2026] [core:crit] [pid 1] x\n")
    (logs / "syslog").write_text("<11>Nov 28 07:37:18 vm app[1]: failed\nNov 28 07:37:18 vm cron[2]: ok\n")
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    (textdir / "site.prom").write_text("# TYPE site_backup_ok gauge\nsite_backup_ok 1\n")
    cfg = write_config(tmp_path, [
        {"path": str(logs / "access.log"), "type": "nginx_access", "name": "access", "start_at": "beginning",
         "labels": {"vhost": "www"}},
        {"path": str(logs / "error.log"), "type": "nginx_error", "name": "nginx_error", "start_at": "beginning"},
        {"path": str(logs / "apache_error.log"), "type": "apache_error", "name": "apache_error",
         "start_at": "beginning"},
        {"path": str(logs / "syslog"), "type": "syslog", "name": "syslog", "start_at": "beginning"},
    ], collectors={"textfile": {"directory": str(textdir)}})
    exp = exporter_factory(["--config", str(cfg)])
    prom = prometheus_factory(scrape_config(f"127.0.0.1:{exp.port}"))
    prom.wait_for_query('fleetmon_log_lines_total{log="access"} == 100', timeout=30)
    names = {r["metric"]["__name__"] for r in prom.query('count by (__name__) ({job="fleet"})')}
    missing = [n for n in HOST_FAMILIES + LOG_FAMILIES + ["site_backup_ok"] if n not in names]
    assert not missing, missing
    res = prom.query('sum by (status) (fleetmon_http_requests_total{log="access",vhost="www"})')
    assert {r["metric"]["status"]: float(r["value"][1]) for r in res} == {"200": 90, "500": 10}
    res = prom.query('histogram_quantile(0.5, sum by (le) (fleetmon_http_request_duration_seconds_bucket))')
    assert 0.1 <= float(res[0]["value"][1]) <= 0.25
    assert float(prom.query('fleetmon_webserver_errors_total{log="nginx_error",level="error"}')[0]["value"][1]) == 1
    assert float(prom.query('fleetmon_webserver_errors_total{log="apache_error",level="crit"}')[0]["value"][1]) == 1
    sev = {r["metric"]["severity"]: float(r["value"][1]) for r in prom.query("fleetmon_syslog_messages_total")}
    assert sev == {"err": 1, "unknown": 1}
    fs = prom.query('node_filesystem_avail_bytes{mountpoint="/"}')
    assert fs and set(fs[0]["metric"]) >= {"device", "fstype", "mountpoint"}
    ok = prom.query("min(node_scrape_collector_success)")
    assert float(ok[0]["value"][1]) == 1
    # The exposition passes promtool's linter except for node_exporter's own camelCase
    # node_memory_* names, which we keep for compatibility.
    body = exp.metrics_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if ln.strip() and not (ln.startswith("node_memory_") and "snake_case" in ln)]
    assert not problems, problems
    assert r.returncode in (0, 3)


def test_rotation_both_ways_mid_stream_counts_every_line(tmp_path, exporter_factory) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    cfg = write_config(tmp_path, [{"path": str(log), "type": "nginx_access", "name": "web"}])
    exp = exporter_factory(["--config", str(cfg)])
    written = 0

    def counted() -> float:
        return value(parse_samples(exp.metrics_text()), "fleetmon_log_lines_total", log="web") or 0

    def wait_count(n: int) -> None:
        wait_until(lambda: counted() == n, timeout=20, what=f"{n} lines counted (now {counted()})")

    wait_until(lambda: "fleetmon_log_lag_bytes" in exp.metrics_text(), timeout=10, what="file followed")
    for rnd in range(2):
        base = rnd * 100000
        append(log, "".join(access(base + i) for i in range(2000)))
        written += 2000
        # logrotate create: rename, writer still appends to the old file, then a new file.
        os.rename(log, tmp_path / f"access.log.{rnd}.r")
        append(tmp_path / f"access.log.{rnd}.r", "".join(access(base + 3000 + i) for i in range(300)))
        append(log, "".join(access(base + 4000 + i) for i in range(400)))
        written += 700
        wait_count(written)
        # copytruncate, with lines landing between our last read and the copy.
        append(log, "".join(access(base + 5000 + i) for i in range(500)))
        shutil.copyfile(log, tmp_path / f"access.log.{rnd}.c")
        with open(log, "r+") as fh:
            fh.truncate(0)
        append(log, "".join(access(base + 6000 + i) for i in range(250)))
        written += 750
        wait_count(written)
    s = parse_samples(exp.metrics_text())
    assert sum(v for k, v in s["fleetmon_http_requests_total"].items()) == written
    assert value(s, "fleetmon_log_parse_errors_total", log="web") == 0
    assert value(s, "fleetmon_log_rotations_total", log="web") == 4
    assert value(s, "fleetmon_log_lag_bytes", log="web", path=str(log)) == 0


def test_restart_resumes_with_zero_loss(tmp_path, exporter_factory) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(access(i) for i in range(50)))  # present at first start: skipped (start at end)
    cfg = write_config(tmp_path, [{"path": str(log), "type": "nginx_access", "name": "web"}])

    def counted(exp) -> float:
        return value(parse_samples(exp.metrics_text()), "fleetmon_log_lines_total", log="web") or 0

    exp = exporter_factory(["--config", str(cfg)])
    wait_until(lambda: "fleetmon_log_lag_bytes" in exp.metrics_text(), timeout=10, what="file followed")
    append(log, "".join(access(1000 + i) for i in range(300)))
    wait_until(lambda: counted(exp) == 300, timeout=15, what="300 lines")
    exp.stop()  # SIGTERM: offsets saved on the way out
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["files"][str(log)]["offset"] == log.stat().st_size
    # Written while down, including a rotation by rename.
    append(log, "".join(access(2000 + i) for i in range(120)))
    os.rename(log, tmp_path / "access.log.1")
    log.write_text("".join(access(3000 + i) for i in range(80)))
    exp2 = exporter_factory(["--config", str(cfg)])
    # Counters continue across restarts (saved with the offsets): 300 + 200 written while down.
    wait_until(lambda: counted(exp2) == 500, timeout=15, what="200 lines written while down")
    # A crash (SIGKILL) neither loses nor repeats lines: counters resume where the offsets do.
    append(log, "".join(access(4000 + i) for i in range(100)))
    wait_until(lambda: counted(exp2) == 600, timeout=15, what="600 lines")
    exp2.kill()
    append(log, "".join(access(5000 + i) for i in range(70)))
    exp3 = exporter_factory(["--config", str(cfg)])
    wait_until(lambda: counted(exp3) >= 670, timeout=15, what="70 lines after crash")
    assert counted(exp3) == 670


def _cert(tmp_path: Path) -> tuple[Path, Path]:
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=60)
    return crt, key


def test_tls_and_basic_auth_with_prometheus(tmp_path, exporter_factory, prometheus_factory) -> None:
    import bcrypt

    crt, key = _cert(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=6)).decode().replace("$2b$", "$2y$")
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": str(crt), "key_file": str(key)},
                                   "basic_auth_users": {"prometheus": hashed}}))
    exp = exporter_factory(["--web.config.file", str(web), "--no-collector.filesystem"], scheme="https",
                           auth=("prometheus", "s3cret"))
    url = f"https://127.0.0.1:{exp.port}/metrics"
    assert requests.get(url, verify=str(crt), timeout=10).status_code == 401
    assert requests.get(url, verify=str(crt), auth=("prometheus", "wrong"), timeout=10).status_code == 401
    r = requests.get(url, verify=str(crt), auth=("prometheus", "s3cret"), timeout=10)
    assert r.status_code == 200 and "node_load1" in r.text
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{exp.port}/metrics", timeout=5)
    prom = prometheus_factory(scrape_config(
        f"127.0.0.1:{exp.port}", scheme="https", tls_config={"ca_file": str(crt)},
        basic_auth={"username": "prometheus", "password": "s3cret"}))
    prom.wait_for_query('up{job="fleet"} == 1', timeout=30)


def test_zookeeper_registration(tmp_path, exporter_factory, zk_server, zk_client, zk_root) -> None:
    from discovery import layout

    cfg = write_config(tmp_path, [], zk={"root": zk_root, "name": "web-01.test",
                                         "labels": {"datacenter": "dc1", "role": "web", "env": "test"}})
    exp = exporter_factory(["--config", str(cfg), "--zk", zk_server.hosts, "--no-collector.filesystem"])
    host = layout.host_path(zk_root, "web-01.test")
    alive = layout.host_alive_path(zk_root, "web-01.test")
    wait_until(lambda: zk_client.exists(alive), timeout=20, what="liveness znode")
    wait_until(lambda: value(parse_samples(exp.metrics_text()), "fleetmon_exporter_zk_registered") == 1,
               timeout=10, what="registered gauge")
    data = json.loads(zk_client.get(host)[0])
    assert data == {"address": f"127.0.0.1:{exp.port}", "metrics_path": "/metrics",
                    "labels": {"datacenter": "dc1", "role": "web", "env": "test"}}
    exp.stop()
    wait_until(lambda: not zk_client.exists(alive), timeout=20, what="liveness znode gone on stop")
    assert zk_client.exists(host)  # inventory stays: the host is still part of the fleet


def test_unreadable_file_is_counted_and_picked_up_once_readable(tmp_path, exporter_factory) -> None:
    # Root reads everything; drop the file-permission override capabilities so a
    # mode-000 file is as unreadable to the exporter as it is to a service user.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("")
    locked = logs / "b.log"
    locked.write_text("".join(access(i, status=403) for i in range(5)))
    locked.chmod(0)
    exp = exporter_factory(["--log", f"nginx_access:{logs}/*.log", "--state-file", str(tmp_path / "st.json"),
                            "--no-collector.filesystem"],
                           prefix=["setpriv", "--bounding-set=-dac_override,-dac_read_search"])

    def samples() -> dict:
        return parse_samples(exp.metrics_text())

    name = f"{logs}/*.log"
    wait_until(lambda: value(samples(), "fleetmon_log_read_errors_total", log=name) == 1, timeout=15,
               what="read error counted")
    append(logs / "a.log", "".join(access(i) for i in range(10)))
    wait_until(lambda: value(samples(), "fleetmon_log_lines_total", log=name) == 10, timeout=15, what="10 lines")
    locked.chmod(0o644)
    # Readable now: read from its start, nothing lost; the error is not counted again.
    wait_until(lambda: value(samples(), "fleetmon_http_requests_total", log=name, status="403") == 5,
               timeout=15, what="locked file read once readable")
    s = samples()
    assert value(s, "fleetmon_log_lines_total", log=name) == 15
    assert value(s, "fleetmon_log_read_errors_total", log=name) == 1


def test_zookeeper_down_does_not_stop_serving(tmp_path, exporter_factory) -> None:
    from tests.harness.servers import free_port

    exp = exporter_factory(["--zk", f"127.0.0.1:{free_port()}", "--no-collector.filesystem"])
    s = parse_samples(exp.metrics_text())
    assert value(s, "node_load1") is not None
    assert value(s, "fleetmon_exporter_zk_registered") == 0
