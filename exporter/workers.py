"""Daemon worker threads for calls that may hang (statfs on a dead NFS mount, a
collector stuck in the kernel).

concurrent.futures.ThreadPoolExecutor joins its threads at interpreter exit, so a
thread stuck in statfs would block shutdown forever; these threads are daemons. The
pool grows when every worker is busy (a stuck worker is simply left behind) up to
``max_workers``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class DaemonPool:
    def __init__(self, name: str, max_workers: int = 16):
        self.name = name
        self.max_workers = max_workers
        self._q: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("pool closed")
            self._threads = [t for t in self._threads if t.is_alive()]
            if self._idle == 0 and len(self._threads) < self.max_workers:
                t = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                self._idle += 1
                t.start()
        self._q.put((fut, fn))
        return fut

    def _run(self) -> None:
        while True:
            item = self._q.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            fut, fn = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                    fut.set_exception(exc)
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            n = len(self._threads)
        for _ in range(n):
            self._q.put(None)
