"""The local mailbox: an SMTP server (aiosmtpd) storing every message the routers send in a
Maildir, and a page (and ``/api/messages`` JSON) listing them. Run by ``start`` as
``python -m fleetmon.stack mailbox ...``."""

from __future__ import annotations

import email
import email.policy
import email.utils
import html
import json
import os
import signal
from pathlib import Path
from typing import Any

from fleetmon.stack.layout import HOST


def mailbox(smtp_port: int, http_port: int, maildir: Path) -> None:
    """A local SMTP server storing every message in a Maildir, and a page listing them."""
    import mailbox as mb
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    box = mb.Maildir(str(maildir), create=True)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
            box.add(mb.MaildirMessage(envelope.original_content or envelope.content))
            return "250 Message accepted for delivery"

    def messages() -> list[dict[str, Any]]:
        out = []
        for key in box.keys():
            try:
                with open(os.path.join(str(maildir), "new", key), "rb") as fh:
                    raw = fh.read()
            except OSError:
                try:
                    raw = box.get_bytes(key)
                except KeyError:
                    continue
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            part = msg.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            out.append({"id": key, "subject": str(msg.get("Subject", "")), "from": str(msg.get("From", "")),
                        "to": str(msg.get("To", "")), "date": str(msg.get("Date", "")), "body": body})
        out.sort(key=lambda m: email.utils.parsedate_to_datetime(m["date"]).timestamp() if m["date"] else 0,
                 reverse=True)
        return out

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path == "/healthz":
                return self._send(200, "text/plain", b"ok\n")
            if self.path.startswith("/api/messages"):
                return self._send(200, "application/json", json.dumps(messages()).encode())
            if self.path not in ("/", "/index.html"):
                return self._send(404, "text/plain", b"not found\n")
            rows = []
            for m in messages():
                rows.append(f"<details><summary><b>{html.escape(m['subject'])}</b> &mdash; {html.escape(m['date'])}"
                            f" &mdash; to {html.escape(m['to'])}</summary><pre>{html.escape(m['body'])}</pre>"
                            "</details>")
            page = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=10>"
                    "<title>fleetmon mailbox</title><style>body{font-family:sans-serif;margin:2em}"
                    "summary{padding:.3em 0;cursor:pointer}pre{background:#f4f4f4;padding:1em}</style>"
                    f"<h1>fleetmon mailbox</h1><p>{len(rows)} message(s) received on SMTP {HOST}:{smtp_port}"
                    f" (Maildir {html.escape(str(maildir))}); refreshes every 10 s. JSON: "
                    "<a href=/api/messages>/api/messages</a></p>" + "".join(rows))
            self._send(200, "text/html; charset=utf-8", page.encode())

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    controller = Controller(Handler(), hostname=HOST, port=smtp_port)
    controller.start()
    httpd = ThreadingHTTPServer((HOST, http_port), Page)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"mailbox: SMTP {HOST}:{smtp_port}, page http://{HOST}:{http_port}/, Maildir {maildir}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        httpd.server_close()

