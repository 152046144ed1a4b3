"""Headless Chromium (Debian's package) driven over the Chrome DevTools Protocol.

Only ``chromium`` and the ``websocket-client`` package are needed: no chromedriver. A page
records every JavaScript exception, console error and failed resource load it sees.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import requests
import websocket

from tests.harness.servers import ManagedProcess, free_port, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Chromium(ManagedProcess):
    name = "chromium"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.port = free_port()

    def command(self) -> list[str]:
        return [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={self.workdir / 'profile'}",
            "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={self.port}",
            "about:blank",
        ]

    def ready(self) -> bool:
        return requests.get(f"http://127.0.0.1:{self.port}/json/version", timeout=1).status_code == 200

    def new_page(self) -> Page:
        r = requests.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10)
        r.raise_for_status()
        return Page(r.json()["webSocketDebuggerUrl"])


class Page:
    """One tab: send CDP commands, collect errors from its events."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.replies: dict[int, dict] = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _read(self) -> None:
        while True:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:  # noqa: BLE001 - the socket closes when the page does
                return
            with self.cond:
                if "id" in msg:
                    self.replies[msg["id"]] = msg
                else:
                    self._event(msg)
                self.cond.notify_all()

    def _event(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                          for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            self.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            self.errors.append(f"load failed: {p.get('errorText')} ({p.get('type')})")
        elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
            self.errors.append(f"HTTP {p['response']['status']}: {p['response']['url']}")

    def send(self, method: str, **params: Any) -> dict:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        with self.cond:
            if not self.cond.wait_for(lambda: i in self.replies, timeout=30):
                raise TimeoutError(f"no reply to {method}")
            reply = self.replies.pop(i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def navigate(self, url: str, width: int = 1400, height: int = 1000) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        # Mark the current document, so that "loaded" means the new one; a URL differing only
        # in its #fragment would not reload, so reload then (the pages read it at load).
        self.eval("window.__fleetmonOld = true")
        self.send("Page.navigate", url=url)
        if "#" in url:
            self.send("Page.reload", ignoreCache=False)
        wait_until(lambda: self.eval("window.__fleetmonOld === undefined && document.readyState === 'complete'"),
                   timeout=30, what=f"{url} loaded")

    def eval(self, expr: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluating {expr!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> None:
        height = int(self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        self.send("Emulation.setDeviceMetricsOverride", width=1400, height=min(height, 6000),
                  deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Page.close")
        except Exception:  # noqa: BLE001 - closing a page that is already gone
            pass
        self.ws.close()
