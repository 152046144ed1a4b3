"""The Flask application: webhook intake, deliveries API, health, readiness and metrics.

``create_app(config)`` wires the queue, the recipients store, the delivery workers and the
metrics into one app. The webhook answers 200 only after the notification is committed
to the queue, 503 only when it cannot be stored (so Alertmanager retries), and a 4xx with
the offending field for anything malformed (Alertmanager sends those once; retrying
would not fix them).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .config import Config, ConfigError, from_dict, read_token
from .delivery import Deliverer, SendResult, apprise_send
from .metrics import RouterMetrics
from .payload import PayloadError, parse_notification
from .recipients import RecipientStore, SecretScope
from .routing import groups_of, route
from .store import STATUSES, Store

log = logging.getLogger(__name__)
WARN_EVERY = 600  # seconds between repeats of the same warning


@dataclass
class RouterState:
    cfg: Config
    store: Store
    recipients: RecipientStore
    metrics: RouterMetrics
    deliverer: Deliverer
    token: str | None
    # The token file's (inode, mtime, size) when ``token`` was read: taken then, not when the
    # reloader thread starts, so a rotation in between is not mistaken for the original.
    token_sig: tuple | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _reloader: threading.Thread | None = None
    _warned: dict = field(default_factory=dict)
    _warn_lock: threading.Lock = field(default_factory=threading.Lock)

    def first_time(self, key: tuple, every: float = 0.0) -> bool:
        """True if ``key`` was not seen in the last ``every`` (default WARN_EVERY) seconds:
        Alertmanager resends a group on every flush, so per-notification warnings repeat."""
        now = time.monotonic()
        with self._warn_lock:
            last = self._warned.get(key)
            if last is not None and now - last < (every or WARN_EVERY):
                return False
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned[key] = now
            return True

    def secrets(self) -> frozenset[str]:
        extra = {self.token} if self.token else set()
        return self.recipients.current.secrets | extra

    def start(self) -> None:
        if self.deliverer.claims is not None:
            self.deliverer.claims.start()
        self.deliverer.start()
        self._reloader = threading.Thread(target=self._reload_loop, name="alert-router-reload", daemon=True)
        self._reloader.start()

    def _reload_loop(self) -> None:
        token_sig = self.token_sig
        while not self._stop.wait(self.cfg.reload_interval):
            try:
                self.recipients.maybe_reload()
            except Exception:  # noqa: BLE001 - never let the reloader die
                log.exception("recipients reload failed")
            sig = _file_sig(self.cfg.token_file)
            if self.cfg.token_file and sig != token_sig:
                token_sig = sig
                try:
                    self.token = read_token(self.cfg.token_file)
                    log.info("bearer token reloaded from %s", self.cfg.token_file)
                except ConfigError as exc:
                    log.error("keeping the previous bearer token: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self.deliverer.stop()
        if self.deliverer.claims is not None:
            self.deliverer.claims.stop()
        self.store.close()


def _file_sig(path: str | None) -> tuple | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _error(status: int, message: str, fieldname: str | None = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"status": "error", "error": message}
    if fieldname is not None:
        body["field"] = fieldname
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _state() -> RouterState:
    return current_app.extensions["alert_router"]


def _authorized(state: RouterState) -> bool:
    if state.token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), state.token.encode())


api = Blueprint("api", __name__, url_prefix="/api/v1")
ops = Blueprint("ops", __name__)


@api.before_request
def _require_token() -> Response | None:
    if not _authorized(_state()):
        return _error(401, "missing or invalid bearer token", "Authorization",
                      {"WWW-Authenticate": 'Bearer realm="alert-router"'})
    return None


@api.after_request
def _count(resp: Response) -> Response:
    if request.endpoint == "api.post_alerts":
        _state().metrics.requests.labels(str(resp.status_code)).inc()
    return resp


@api.post("/alerts")
def post_alerts() -> Response:
    state = _state()
    t0 = time.perf_counter()
    if request.mimetype != "application/json":
        return _error(415, "Content-Type must be application/json", "Content-Type")
    if request.content_length is not None and request.content_length > state.cfg.max_body_bytes:
        return _error(413, f"body larger than {state.cfg.max_body_bytes} bytes", "body")
    raw = request.get_data(cache=False)
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        return _error(400, "body is not UTF-8", "$")
    except json.JSONDecodeError as exc:
        return _error(400, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", "$")
    except (RecursionError, ValueError) as exc:
        return _error(400, f"invalid JSON: {type(exc).__name__}", "$")
    try:
        notif = parse_notification(doc)
    except PayloadError as exc:
        return _error(400, exc.message, exc.field)
    except RecursionError:
        return _error(400, "nested too deeply", "$")
    if notif.version != "4":
        log.warning("webhook payload version %r (expected \"4\"); accepting the fields we know", notif.version[:10])
    recipients = state.recipients.current.groups
    known = set(recipients)
    for a in notif.alerts:
        _groups, unknown = groups_of(a.labels, known)
        if unknown and state.first_time(("unknown-group", a.name, tuple(unknown))):
            log.warning("alert %s (%s): notify names unknown recipient group(s) %s; using the others or default"
                        " (logged once per %ds)", a.name, a.fingerprint, ", ".join(unknown), WARN_EVERY)
    try:
        res = state.store.enqueue(
            notif, lambda a: route(a.labels, recipients, state.cfg.severity_channels))
    except (sqlite3.Error, OSError) as exc:
        state.metrics.store_errors.inc()
        log.error("cannot store notification %s (answering 503 so Alertmanager retries): %s",
                  notif.group_key[:200], exc)
        return _error(503, "cannot store the notification right now; retry", None)
    m = state.metrics
    m.notifications.inc()
    for a in notif.alerts:
        m.alerts_received.labels(a.status).inc()
    if notif.truncated_alerts:
        m.truncated.inc(notif.truncated_alerts)
        if state.first_time(("truncated", notif.group_key)):
            log.warning("notification for group %s: Alertmanager left out %d alerts (max_alerts)",
                        notif.group_key[:200], notif.truncated_alerts)
    for ch, _h in res.stored:
        m.stored.labels(ch).inc()
    m.duplicates.inc(res.duplicates)
    if res.unroutable:
        m.unroutable.inc(len(res.unroutable))
        log.error("%d alert(s) of group %s match no recipient (no 'notify' group and no 'default' group): %s",
                  len(res.unroutable), notif.group_key[:200], ", ".join(res.unroutable[:20]))
    if res.stored:
        state.deliverer.wake()
    m.accept_seconds.observe(time.perf_counter() - t0)
    return jsonify({"status": "accepted", "notification_id": res.notification_id,
                    "stored": len(res.stored), "duplicates": res.duplicates,
                    "unroutable": len(res.unroutable)})


@api.get("/deliveries")
def get_deliveries() -> Response:
    args = request.args
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        return _error(400, f"must be one of {', '.join(STATUSES)}", "status")
    try:
        limit = int(args.get("limit", "100"))
    except ValueError:
        return _error(400, "must be an integer", "limit")
    if not 1 <= limit <= 1000:
        return _error(400, "must be between 1 and 1000", "limit")
    rows = _state().store.list_deliveries(alert=args.get("alert") or None,
                                          recipient=args.get("recipient") or None, status=status, limit=limit)
    return jsonify({"deliveries": rows, "count": len(rows)})


@ops.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz() -> Response:
    state = _state()
    problems = []
    if not state.store.writable():
        problems.append("queue database is not writable")
    if not state.deliverer.alive():
        problems.append("delivery dispatcher is not running")
    if not state.recipients.current.groups:
        problems.append("no recipients loaded")
    if problems:
        return _error(503, "; ".join(problems))
    return jsonify({"status": "ready", "recipients_error": state.recipients.last_error is not None})


@ops.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_state().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def _http_error(exc: HTTPException) -> Response:
    fieldname = "body" if isinstance(exc, RequestEntityTooLarge) else None
    return _error(exc.code or 500, exc.description or exc.name, fieldname)


def _internal_error(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error(500, "internal error")


def _make_claims(cfg: Config, metrics: RouterMetrics) -> Any:
    """ZooKeeper delivery claims when ``cfg.zk`` is set (router HA), else None."""
    if not cfg.zk:
        metrics.zk_connected.set(0)
        return None
    from fleetmon.zk import ZkSecurityError, make_client

    from .claims import Claims

    try:
        # The router role may write only its claims subtree (fleetmon/zkacl.py).
        client = make_client(cfg.zk, timeout=cfg.zk_session_timeout, role="router")
    except ZkSecurityError as exc:
        raise ConfigError(f"zk: {exc}") from None
    claims = Claims(client, root=cfg.zk_root,
                    router_id=cfg.router_id, bypass_after=cfg.zk_bypass_after, done_ttl=cfg.done_ttl,
                    start_skew=cfg.claim_start_skew,
                    on_outcome=lambda o, n: metrics.claims.labels(o).inc(n) if n else None,
                    on_duplicate=metrics.duplicate_sends.inc)
    metrics.zk_connected.set_function(lambda: 1.0 if claims.connected() else 0.0)
    log.info("router HA: delivery claims in ZooKeeper %s under %s/alert-router", cfg.zk, cfg.zk_root)
    return claims


def create_app(config: Config | dict | None = None, *, start_workers: bool = True,
               send: Any = None) -> Flask:
    """Build the app. ``config`` is a :class:`Config`, a dict in the YAML file's shape, or None.

    ``send`` replaces the Apprise sender (benchmarks of the intake alone); workers start unless
    ``start_workers`` is False. Stop with ``app.extensions["alert_router"].close()``.
    """
    cfg = config if isinstance(config, Config) else from_dict(config or {})
    token_sig = _file_sig(cfg.token_file)
    token = read_token(cfg.token_file) if cfg.token_file else None
    if token is None and not cfg.allow_unauthenticated:
        raise ConfigError("token_file is required (or set allow_unauthenticated: true)")
    if token is None:
        log.warning("INSECURE: allow_unauthenticated: true: anyone who reaches %s can post alerts and "
                    "read deliveries", cfg.listen)
    if not cfg.recipients:
        raise ConfigError("recipients is required: the recipients file written by `rulesync compile`")
    metrics = RouterMetrics()

    def on_reload(ok: bool, _err: str | None) -> None:
        metrics.reloads.labels("success" if ok else "failure").inc()
        metrics.reload_ok.set(1 if ok else 0)
        metrics.recipient_groups.set(len(recipients.current.groups))

    recipients = RecipientStore(cfg.recipients, on_reload=on_reload,
                                scope=SecretScope(cfg.secret_dir, cfg.secret_env_prefix),
                                local_path=cfg.local_recipients)
    recipients.load(strict=True)
    store = Store(cfg.state_dir, cfg.synchronous)
    metrics.watch_queue(store.queue_depth)
    state: RouterState

    def secrets() -> frozenset[str]:
        return state.secrets()

    deliverer = Deliverer(store, cfg, metrics, send=send or apprise_send, secrets=secrets,
                          claims=_make_claims(cfg, metrics))
    state = RouterState(cfg, store, recipients, metrics, deliverer, token, token_sig)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.json.sort_keys = False
    app.extensions["alert_router"] = state
    app.register_blueprint(api)
    app.register_blueprint(ops)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    if start_workers:
        state.start()
    return app


__all__ = ["create_app", "RouterState", "SendResult"]
