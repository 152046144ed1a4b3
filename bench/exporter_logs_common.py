"""Shared pieces of the log benchmarks beyond bench/exporter_common.py: nginx ``main`` lines and
the matching mtail program, adversarial (scanner) lines, and journal files written with
systemd-journal-remote."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from bench.exporter_common import nginx_lines, write_log

# nginx's "main" log_format (RHEL/Fedora packages, the official image), as the exporter is
# configured with it: the format text, not the preset name.
NGINX_MAIN = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
              '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"')

MTAIL_MAIN_PROG = r"""
counter fleetmon_log_lines_total
counter fleetmon_http_requests_total by method, status
counter fleetmon_http_response_bytes_total

/^/ {
  fleetmon_log_lines_total++
}

/^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" "[^"]*"$/ {
  fleetmon_http_requests_total[$method][$status]++
  fleetmon_http_response_bytes_total += $bytes
}
"""

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def _forwarded_for(i: int, rnd: random.Random) -> str:
    return f'"198.51.100.{i % 250}, 10.0.0.{i % 7}"'


def main_lines(n: int, start: int = 0, seed: int = 2) -> list[str]:
    """Lines in nginx's ``main`` format (NGINX_MAIN): combined plus X-Forwarded-For."""
    return nginx_lines(n, start, seed, last=_forwarded_for)


def write_main_log(path: Path, n: int) -> None:
    write_log(path, n, main_lines)


def scanner_lines(n: int, seed: int = 3) -> list[str]:
    """What scanners leave in access logs: 8 KB runs of letters in the request, TLS
    handshakes on a plain port, unbalanced quotes, path traversal, long query strings."""
    rnd = random.Random(seed)
    pre = '198.51.100.9 - - [28/Nov/2026:07:37:18 +0000] "'
    kinds = [
        lambda: pre + "A" * 8192 + '" 400 0 "-" "-"',
        lambda: pre + "GET /" + "a" * 8000 + ' HTTP/1.1" 414 0 "-" "-"',
        lambda: pre + "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03" * 20 + '" 400 157 "-" "-"',
        lambda: pre + "GET /" + "../" * 2000 + 'etc/passwd HTTP/1.1" 400 0 "-" "-"',
        lambda: pre + 'GET /?q=' + '"' * 4000 + ' HTTP/1.1" 400 0',
        lambda: pre + "GET /search?q=" + "%41" * 2500 + ' HTTP/1.1" 200 12 "-" "' + "Z" * 2000 + '"',
        lambda: pre + "\\\\" * 4000 + '" 400 0 "-" "-"',
        lambda: pre + "GET /x" + ' "' * 3000,
    ]
    return [rnd.choice(kinds)() + "\n" for _ in range(n)]


def short_scanner_lines(n: int, seed: int = 4) -> list[str]:
    rnd = random.Random(seed)
    pre = '198.51.100.9 - - [28/Nov/2026:07:37:18 +0000] "'
    kinds = [
        lambda: pre + "A" * rnd.randint(20, 200) + '" 400 0 "-" "-"',
        lambda: pre + '\\x16\\x03\\x01\\x00\\xF7\\x01" 400 157 "-" "-"',
        lambda: pre + 'GET /wp-login.php HTTP/1.1" 404 153 "-" "Mozilla/5.0 zgrab/0.x"',
        lambda: pre + 'GET /' + '"' * rnd.randint(5, 100),
        lambda: pre + "-" + '" 400 0 "-" "-"',
    ]
    return [rnd.choice(kinds)() + "\n" for _ in range(n)]


def journal_export(start: int, n: int) -> bytes:
    """``n`` entries in journal export format, priorities 0-7, three units."""
    units = ("nginx.service", "sshd.service", "cron.service")
    return "".join(
        f"__REALTIME_TIMESTAMP={1764300000000000 + i}\n_SYSTEMD_UNIT={units[i % 3]}\nPRIORITY={i % 8}\n"
        f"SYSLOG_IDENTIFIER=app\n_PID={1000 + i % 50}\n_HOSTNAME=web1\n"
        f"MESSAGE=request {i} handled in {i % 97} ms by worker {i % 8}\n\n"
        for i in range(start, start + n)).encode()


def journal_append(path: Path, data: bytes) -> None:
    subprocess.run([JOURNAL_REMOTE, "-o", str(path), "-"], input=data, check=True, capture_output=True, timeout=600)
