"""Connector calls with a time limit.

Python cannot stop a thread, so a call that hangs past its limit is abandoned: its
thread is left to finish (or not) on its own, as a daemon so the process can still
exit, and a fresh thread takes its place. A system's calls run on at most ``size``
threads at once (its ``concurrency`` in the data map), apart from hung calls left
behind.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from connectors.errors import CallTimeout

T = TypeVar("T")

#: How often a waiting caller looks at its stop flag.
STOP_CHECK_S = 0.2

_Item = tuple[Callable[[], Any], "Future[Any]"] | None


class Stopped(Exception):
    """The caller was told to stop while the call was running; it was abandoned."""


class CallThread:
    """Runs one system's connector calls on ``size`` threads of its own, each call with
    a time limit."""

    def __init__(self, name: str, size: int = 1) -> None:
        if size < 1:
            raise ValueError("a system needs at least one call thread")
        self.name = name
        self.size = size
        self.abandoned = 0
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._running: dict[Future[Any], threading.Thread] = {}
        self._retired: set[threading.Thread] = set()
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        threading.Thread(target=self._serve, name=self.name, daemon=True).start()

    def call(self, fn: Callable[[], T], timeout_s: float, stop: threading.Event) -> T:
        """``fn()``'s value or exception; ``CallTimeout`` after ``timeout_s``, ``Stopped``
        as soon as ``stop`` is set."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                return future.result(timeout=max(0.0, min(STOP_CHECK_S, left)))
            except FutureTimeout:
                if stop.is_set():
                    self._abandon(future)
                    raise Stopped from None
                if left <= STOP_CHECK_S:
                    self._abandon(future)
                    raise CallTimeout(
                        f"the connector did not answer within {timeout_s:g}s"
                    ) from None

    def _abandon(self, future: Future[Any]) -> None:
        """Give up on ``future``: unrun, it never runs; running, its thread retires once
        the call returns, and a fresh thread takes its place now."""
        self.abandoned += 1
        if future.cancel():
            return
        thread = self._running.get(future)
        if thread is not None:
            self._retired.add(thread)
            self._start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while me not in self._retired and (item := self._queue.get()) is not None:
            fn, future = item
            self._running[future] = me  # before it runs, so that an abandon finds it
            if not future.set_running_or_notify_cancel():
                del self._running[future]
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)
            finally:
                del self._running[future]
        self._retired.discard(me)

    def close(self) -> None:
        for _ in range(self.size):
            self._queue.put(None)
