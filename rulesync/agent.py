"""Put a rule bundle into one Prometheus: write, reload, verify, roll back, report.

``sync()`` is the whole job for one Prometheus and is what `rulesync apply --rules-dir`
runs directly. ``RuleAgent`` runs it inside the discovery sidecar whenever the bundle
znode changes, and publishes the outcome to ``<root>/rules/status/<shard>/<replica>``.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.recipe.watchers import DataWatch

from fleetmon import zksession
from fleetmon.secrets import mask_url
from rulesync import bundle as bundle_mod
from rulesync import promtool
from rulesync.generate import VERSION_FILE, VERSION_GROUP, VERSION_METRIC, version_file_text
from rulesync.write import is_generated, write_files

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    version: str | None  # the version this attempt tried to load
    ok: bool
    error: str | None
    loaded_version: str | None  # what Prometheus runs after the attempt
    loaded_at: float

    def status(self) -> dict:
        return asdict(self)


def loaded_version_on_disk(rules_dir: str | Path) -> str | None:
    try:
        text = (Path(rules_dir) / VERSION_FILE).read_text()
    except OSError:
        return None
    m = re.search(r"version: ['\"]?([0-9A-Za-z._-]+)", text)
    return m.group(1) if m else None


def _reload(prometheus_url: str, timeout: float) -> str | None:
    """POST /-/reload; None if Prometheus took the new config, else the reason it gives."""
    try:
        r = requests.post(f"{prometheus_url}/-/reload", timeout=timeout)
    except requests.RequestException as exc:
        return f"reload request to {mask_url(prometheus_url)} failed: {type(exc).__name__}"
    if not 200 <= r.status_code < 300:
        return f"Prometheus answered HTTP {r.status_code} to /-/reload: {r.text.strip()[:500]}"
    try:
        m = requests.get(f"{prometheus_url}/metrics", timeout=timeout)
        for line in m.text.splitlines():
            if line.startswith("prometheus_config_last_reload_successful "):
                if float(line.split()[1]) != 1:
                    return "prometheus_config_last_reload_successful is 0 after /-/reload"
    except requests.RequestException:
        pass
    return None


def _shows_version(prometheus_url: str, version: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = requests.get(f"{prometheus_url}/api/v1/rules", params={"type": "record"}, timeout=10)
            for g in r.json()["data"]["groups"]:
                if g["name"] == VERSION_GROUP:
                    for rule in g["rules"]:
                        if rule.get("name") == VERSION_METRIC and rule.get("labels", {}).get("version") == version:
                            return True
        except (requests.RequestException, ValueError, KeyError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _promtool_reason(rules_dir: Path, names: list[str]) -> str:
    try:
        ok, out = promtool.check_rules([rules_dir / n for n in names])
    except (promtool.PromtoolMissing, OSError) as exc:
        return f"(could not run promtool: {exc})"
    return "" if ok else out.replace(str(rules_dir) + "/", "")


def records_used(files: dict[str, str]) -> dict[str, str]:
    """{recorded series: its recording group} for the fleetmon recorded series (the ones
    built-in signals reuse) that ``files`` read but do not define themselves."""
    from rulesync.signals import reused_records

    out: dict[str, str] = {}
    for rec in reused_records().values():
        word = re.compile(r"(?<![A-Za-z0-9_:])" + re.escape(rec.record) + r"(?![A-Za-z0-9_:])")
        defined = re.compile(r"^\s*-?\s*record:\s*['\"]?" + re.escape(rec.record) + r"['\"]?\s*$", re.M)
        if any(word.search(t) for t in files.values()) and not any(defined.search(t) for t in files.values()):
            out[rec.record] = rec.group
    return out


def missing_records(prometheus_url: str, needed: dict[str, str], timeout: float = 10.0) -> str | None:
    """None if the Prometheus has a recording rule for every series in ``needed``, else why not.

    Without them the reused alerts would be silent forever (their input has no data)."""
    if not needed:
        return None
    try:
        r = requests.get(f"{prometheus_url}/api/v1/rules", params={"type": "record"}, timeout=timeout)
        r.raise_for_status()
        have = {rule.get("name") for g in r.json()["data"]["groups"] for rule in g.get("rules", [])}
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return f"cannot list the recording rules of {mask_url(prometheus_url)} (/api/v1/rules): {type(exc).__name__}"
    missing = sorted(n for n in needed if n not in have)
    if not missing:
        return None
    groups = sorted({needed[n] for n in missing})
    return (f"{mask_url(prometheus_url)} does not load the recording rule(s) {', '.join(missing)} "
            f"(group {', '.join(groups)} of fleetmon's prometheus/rules/recording.yml) that these rules read; "
            "without them the alerts could never fire. Load recording.yml there (a shard's shard-rules/), "
            "or compile without reuse: `use_recorded: false` or --no-recorded. Previous rules kept.")


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def sync(rules_dir: str | Path, files: dict[str, str], version: str, prometheus_url: str,
         precheck: bool = True, timeout: float = 30.0, check_records: bool = True) -> SyncResult:
    """Make the Prometheus at ``prometheus_url`` run exactly ``files`` from ``rules_dir``.

    1. ``promtool check rules`` on the new files in a scratch dir (``precheck``): a bad
       bundle never reaches the rules dir, and the error is promtool's own message.
    2. Write the files atomically, delete our stale generated files, POST /-/reload.
    3. On rejection (non-2xx or prometheus_config_last_reload_successful 0) restore the
       previous files, reload again, and report the reason (promtool's message on the
       rejected files: Prometheus itself only says "failed" and logs the rest).
    4. Check that /api/v1/rules shows the version marker group.

    Before any of that (``check_records``), a bundle reading fleetmon's recorded series is
    refused unless this Prometheus has their recording rules loaded.
    """
    rd = Path(rules_dir)
    with _locks_guard:
        lock = _locks.setdefault(str(rd.resolve()), threading.Lock())
    with lock:
        rd.mkdir(parents=True, exist_ok=True)
        previous = loaded_version_on_disk(rd)
        new_files = dict(files)
        new_files[VERSION_FILE] = version_file_text(version)

        def result(ok: bool, error: str | None, loaded: str | None) -> SyncResult:
            return SyncResult(version, ok, error, loaded, time.time())

        if check_records:
            why = missing_records(prometheus_url, records_used(files), timeout=min(timeout, 10.0))
            if why is not None:
                return result(False, why, previous)

        if precheck:
            with tempfile.TemporaryDirectory(prefix="rulesync-precheck-") as d:
                for name, text in new_files.items():
                    (Path(d) / name).write_text(text)
                try:
                    ok, out = promtool.check_rules([Path(d) / n for n in sorted(new_files)])
                except promtool.PromtoolMissing:
                    ok, out = True, ""
                if not ok:
                    out = out.replace(d + "/", "")
                    return result(False, f"rejected by promtool check rules, previous rules kept:\n{out}", previous)

        snapshot = {p.name: p.read_bytes() for p in rd.iterdir()
                    if p.is_file() and p.suffix in (".yml", ".yaml") and is_generated(p)}
        try:
            write_files(rd, new_files)
        except OSError as exc:  # disk full, permissions: put back what was there
            try:
                _restore(rd, snapshot, new_files)
            except OSError as exc2:
                return result(False, f"cannot write rule files into {rd}: {exc}; restoring the previous "
                              f"files failed too: {exc2} (Prometheus still runs the rules it loaded)", previous)
            return result(False, f"cannot write rule files into {rd}, previous rules kept: {exc}", previous)
        reason = _reload(prometheus_url, timeout)
        if reason is not None:
            detail = _promtool_reason(rd, sorted(new_files))
            _restore(rd, snapshot, new_files)
            again = _reload(prometheus_url, timeout)
            msg = f"Prometheus rejected the rules, previous rules restored: {reason}"
            if detail:
                msg += f"\n{detail}"
            if again is not None:
                msg += f"\nreload after restoring also failed: {again}"
            return result(False, msg, previous if again is None else None)
        if not _shows_version(prometheus_url, version, timeout):
            return result(False, f"Prometheus reloaded but /api/v1/rules does not show version {version} "
                          f"after {timeout:.0f}s: does its rule_files glob cover {rd}/*.yml?", None)
        return result(True, None, version)


def _restore(rd: Path, snapshot: dict[str, bytes], new_files: dict[str, str]) -> None:
    from fleetmon.atomic import write_atomic

    for name in new_files:
        if name not in snapshot:
            try:
                (rd / name).unlink()
            except FileNotFoundError:
                pass
    for name, data in snapshot.items():
        write_atomic(rd / name, data)


class RuleAgent:
    """Keeps one Prometheus on the published bundle; run by the discovery sidecar.

    The kazoo watch callback only records the newest data and wakes a worker thread:
    writing files and reloading Prometheus take seconds and must never block kazoo's
    single event thread.
    """

    def __init__(self, client: KazooClient, root: str, shard: str, replica: str, rules_dir: str | Path,
                 prometheus_url: str, precheck: bool = True, verify_timeout: float = 30.0,
                 public_key: Ed25519PublicKey | None = None, allow_unsigned: bool = False,
                 max_bundle_bytes: int = bundle_mod.MAX_DECOMPRESSED):
        """``public_key`` verifies bundles (default: ``bundle.load_public_key()``); without one
        every bundle is rejected, unless ``allow_unsigned`` (then signatures are not checked)."""
        self.client = client
        self.allow_unsigned = allow_unsigned
        self.max_bundle_bytes = max_bundle_bytes
        self.public_key = public_key
        self._key_error: str | None = None
        if public_key is None and not allow_unsigned:
            try:
                self.public_key = bundle_mod.load_public_key()
            except bundle_mod.BundleError as exc:
                self._key_error = str(exc)
                log.error("rulesync agent: %s; every bundle will be rejected", exc)
        if allow_unsigned:
            log.warning("rulesync agent: --rules-allow-unsigned: bundle signatures are NOT checked")
        self.root = root.rstrip("/")  # "/" -> "": paths then start at the top
        self.shard = str(shard)
        self.replica = str(replica)
        self.rules_dir = Path(rules_dir)
        self.prometheus_url = prometheus_url.rstrip("/")
        self.precheck = precheck
        self.verify_timeout = verify_timeout
        self.bundle_path = f"{self.root}/rules/bundle"
        self.status_path = f"{self.root}/rules/status/{self.shard}/{self.replica}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._latest: bytes | None = None
        self._have_data = False
        self._republish = False
        self._status: dict | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_result: SyncResult | None = None
        self._retry_at: float | None = None

    # -- kazoo side: never blocks
    def _on_data(self, data: bytes | None, stat: object, event: object = None) -> bool | None:
        if self._stop.is_set():
            return False  # ends the DataWatch
        with self._lock:
            self._latest = data
            self._have_data = True
        self._wake.set()
        return None

    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            # The session may have expired and taken our ephemeral status node with it.
            self._republish = True
            self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"rulesync-agent-{self.shard}-{self.replica}",
                                        daemon=True)
        self._thread.start()
        self.client.add_listener(self._on_state)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        try:
            self.client.remove_listener(self._on_state)
        except Exception:  # noqa: BLE001 - listener may already be gone
            pass
        if self._thread is not None:
            self._thread.join(timeout=self.verify_timeout + 30)
        try:
            # Only our own node: another session's status is not ours to remove (fleetmon.zksession).
            stat = self.client.exists(self.status_path)
            if zksession.owned_by_us(self.client, stat):
                self.client.delete(self.status_path, version=stat.version)
        except (KazooException, Exception):  # noqa: BLE001 - best effort: it is ephemeral anyway
            pass

    # -- worker side
    def _watch(self) -> None:
        """Set the bundle watch once connected (the sidecar may start us before it is)."""
        while not self._stop.is_set():
            if self.client.connected:
                try:
                    self.client.ensure_path(f"{self.root}/rules/status/{self.shard}")
                    DataWatch(self.client, self.bundle_path, self._on_data)
                    return
                except KazooException as exc:
                    log.warning("rulesync agent: cannot watch %s yet: %s", self.bundle_path, exc)
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def _run(self) -> None:
        self._watch()
        last_seen: bytes | None = None
        processed = False
        while not self._stop.is_set():
            # A status still to publish (e.g. held by another session) is tried every second.
            self._wake.wait(timeout=1.0 if self._republish else 5.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                data, have = self._latest, self._have_data
            retry = self._retry_at is not None and time.monotonic() >= self._retry_at
            try:
                if have and (not processed or data != last_seen or retry):
                    self._retry_at = None
                    self._republish = False
                    processed, last_seen = True, data
                    self._apply(data)
                elif self._republish or (self._status and not self._status_exists()):
                    self._republish = False
                    self._publish_status()
            except Exception as exc:  # noqa: BLE001 - the agent must survive anything
                log.exception("rulesync agent: %s", exc)

    def _apply(self, data: bytes | None) -> None:
        previous = loaded_version_on_disk(self.rules_dir)
        if data is None:
            self._status = {"version": previous, "ok": True, "error": None, "loaded_version": previous,
                            "loaded_at": time.time()}
            self._publish_status()
            return
        try:
            # Nothing is written, nor even decompressed, before the signature checks out.
            if self._key_error:
                raise bundle_mod.BundleError(self._key_error)
            b = bundle_mod.decode(data, None if self.allow_unsigned else self.public_key,
                                  allow_unsigned=self.allow_unsigned, max_size=self.max_bundle_bytes)
        except bundle_mod.BundleError as exc:
            log.error("rulesync agent %s/%s: rejected bundle: %s; keeping version %s", self.shard,
                      self.replica, exc, previous)
            self._status = {"version": None, "ok": False, "error": f"bad bundle: {exc}", "rejected": str(exc),
                            "loaded_version": previous, "loaded_at": time.time()}
            self._publish_status()
            return
        if previous == b.version and _shows_version(self.prometheus_url, b.version, 0):
            res = SyncResult(b.version, True, None, b.version, time.time())
        else:
            try:
                res = sync(self.rules_dir, b.files, b.version, self.prometheus_url, precheck=self.precheck,
                           timeout=self.verify_timeout)
            except Exception as exc:  # noqa: BLE001 - e.g. promtool crashed; report, retry later
                res = SyncResult(b.version, False, f"agent error: {type(exc).__name__}: {exc}", previous,
                                 time.time())
        self.last_result = res
        transient = ("reload request", "does not show", "agent error", "cannot write")
        if not res.ok and res.loaded_version != res.version and any(t in (res.error or "") for t in transient):
            # Prometheus down or slow, not a bad bundle: try again soon.
            self._retry_at = time.monotonic() + 10.0
        if not res.ok:
            log.error("rulesync agent %s/%s: version %s not loaded: %s", self.shard, self.replica, b.version,
                      res.error)
        self._status = res.status()
        self._publish_status()

    def _status_exists(self) -> bool:
        try:
            return self.client.exists(self.status_path) is not None
        except KazooException:
            return True  # cannot tell; try again on the next state change

    def _publish_status(self) -> None:
        if self._status is None:
            return
        data = json.dumps(self._status, sort_keys=True).encode()
        try:
            if zksession.claim_ephemeral(self.client, self.status_path, data) == zksession.FOREIGN:
                # Left by our previous session (a restart within its timeout) or a twin with the
                # same shard/replica: never deleted (fleetmon.zksession). The worker tries again
                # every second until ZooKeeper removes it.
                self._republish = True
        except NoNodeError:
            self._republish = True
        except KazooException as exc:
            log.warning("rulesync agent: cannot write status %s: %s", self.status_path, exc)
            self._republish = True
