"""Connector calls with a time limit.

Python cannot stop a thread, so a call that hangs past its limit is abandoned: its
thread is left to finish (or not) on its own, as a daemon so the process can still
exit, and the system's next call gets a fresh thread. One system's calls still run
one at a time, apart from a hung call left behind.
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
    """Runs one system's connector calls on a thread of its own, each with a time limit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.abandoned = 0
        self._queue = self._start()

    def _start(self) -> queue.SimpleQueue[_Item]:
        q: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(q,), name=self.name, daemon=True).start()
        return q

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
                    self._abandon()
                    raise Stopped from None
                if left <= STOP_CHECK_S:
                    self._abandon()
                    raise CallTimeout(
                        f"the connector did not answer within {timeout_s:g}s"
                    ) from None

    def _abandon(self) -> None:
        self.abandoned += 1
        self._queue.put(None)  # the old thread exits once its hung call returns
        self._queue = self._start()

    def close(self) -> None:
        self._queue.put(None)


def _serve(q: queue.SimpleQueue[_Item]) -> None:
    while (item := q.get()) is not None:
        fn, future = item
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)
