"""A system's lane: its tasks run on threads of the system's own, and each task makes its
connector calls on its own thread, each call within a time limit.

Python cannot stop a thread, so a call that hangs past its limit (or is still running
when its caller is told to stop) is abandoned by the lane's watchdog: the call's thread
is retired, left to finish (or not) on its own, as a daemon so the process can still
exit, and a fresh thread takes its place. The task carries on there: its function runs
again, told which of its calls was abandoned and why (``Interrupted``). When the retired
thread's call returns at last, ``Abandoned`` unwinds it, and nothing it did after the
call counts.

A call is made on the task's own thread, so it costs no hand-over between threads: only
a call that hangs does. A system's tasks run on at most ``size`` threads at once (its
``concurrency`` in the data map), apart from hung calls left behind.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from connectors.errors import CallTimeout

T = TypeVar("T")

#: How often the watchdog looks at the calls in progress, and at their stop flags,
#: while calls are being made: a call is abandoned at most this late.
STOP_CHECK_S = 0.2


class Stopped(Exception):
    """The caller was told to stop while the call was running; it was abandoned."""


class Abandoned(BaseException):
    """Raised on a retired thread when its abandoned call returns: its task went on
    without it. Not an ``Exception``, so that no handler of a connector's errors takes
    it for one."""


@dataclass(frozen=True)
class Interrupted:
    """Why a task's function runs again: its ``calls``-th call was abandoned, after
    ``seconds``, with ``error`` (``CallTimeout``, or ``Stopped``). ``began``: when the
    task first started."""

    calls: int
    error: Exception
    seconds: float
    began: datetime


@dataclass(eq=False)
class _Job:
    fn: Callable[[Interrupted | None], Any]
    future: Future[Any] = field(default_factory=Future)
    began: datetime | None = None
    calls: int = 0
    interrupted: Interrupted | None = None


@dataclass(eq=False)
class _Call:
    job: _Job
    started: float
    timeout_s: float
    stop: threading.Event


class Lane:
    """Runs one system's tasks on ``size`` threads of its own; ``call`` bounds the time
    of each connector call they make."""

    def __init__(self, name: str, size: int = 1) -> None:
        if size < 1:
            raise ValueError("a system needs at least one thread")
        self.name = name
        self.size = size
        #: Calls abandoned so far.
        self.abandoned = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: The call in progress on each thread, and the job each thread is running.
        self._calls: dict[threading.Thread, _Call] = {}
        self._jobs: dict[threading.Thread, _Job] = {}
        #: The threads serving the queue (not the retired ones).
        self._serving: set[threading.Thread] = set()
        #: Calls started so far; the watchdog rests once none is running and none started
        #: since it last looked, and the next call wakes it.
        self._started = 0
        self._watching = False
        self._wake = threading.Event()
        self._closed = False
        for thread in [self._thread(None) for _ in range(size)]:
            thread.start()
        threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True).start()

    def submit(self, fn: Callable[[Interrupted | None], T]) -> Future[T]:
        """Run ``fn(None)`` on one of the lane's threads; its future."""
        job = _Job(fn)
        self._queue.put(job)
        return job.future

    def call(self, fn: Callable[[], T], timeout_s: float, stop: threading.Event) -> T:
        """``fn()``'s value or exception, on this thread (one of the lane's, running a
        task). Past ``timeout_s``, or once ``stop`` is set, the task goes on without it
        (``Interrupted``), and this thread is retired: ``Abandoned`` when ``fn`` returns."""
        me = threading.current_thread()
        job = self._jobs.get(me)
        if job is None:
            raise RuntimeError(f"{self.name}: call() is for the lane's own tasks")
        job.calls += 1
        call = _Call(job, time.monotonic(), timeout_s, stop)
        with self._lock:
            self._calls[me] = call
            self._started += 1
            if not self._watching:
                self._watching = True
                self._wake.set()
        try:
            return fn()
        finally:
            with self._lock:
                mine = self._calls.get(me) is call
                if mine:
                    del self._calls[me]
            if not mine:
                raise Abandoned

    def close(self) -> None:
        """Let the threads finish the tasks queued, and wait for them; calls that hang
        are left to the watchdog, which abandons them once their caller stops (or
        their time is up)."""
        for _ in range(self.size):
            self._queue.put(None)
        while True:
            with self._lock:
                serving = next(iter(self._serving), None)
            if serving is None:
                break
            serving.join(STOP_CHECK_S)  # it may be retired meanwhile, and never end
        with self._lock:
            self._closed = True
            self._wake.set()

    def _thread(self, first: _Job | None) -> threading.Thread:
        """A new thread serving the queue (``first`` first), counted as serving now."""
        thread = threading.Thread(target=self._serve, args=(first,), name=self.name, daemon=True)
        self._serving.add(thread)
        return thread

    def _serve(self, job: _Job | None) -> None:
        """Run jobs from the queue (``job`` first: a task carried on from a retired
        thread) until the lane closes, or this thread is retired."""
        me = threading.current_thread()
        try:
            while True:
                if job is None:
                    job = self._queue.get()
                    if job is None:
                        return
                    if not job.future.set_running_or_notify_cancel():
                        job = None
                        continue
                    job.began = datetime.now(UTC)
                self._jobs[me] = job
                try:
                    value = job.fn(job.interrupted)
                except Abandoned:
                    return
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(value)
                finally:
                    del self._jobs[me]
                job = None
        finally:
            with self._lock:
                self._serving.discard(me)

    def _watch(self) -> None:
        """Abandon each call past its time limit, or whose caller was told to stop."""
        seen = 0
        while True:
            now = time.monotonic()
            with self._lock:
                if self._closed:
                    return
                due = [
                    (thread, call)
                    for thread, call in self._calls.items()
                    if call.stop.is_set() or now - call.started >= call.timeout_s
                ]
                fresh = []
                for thread, call in due:
                    del self._calls[thread]
                    self._serving.discard(thread)
                    fresh.append(self._thread(self._carried_on(call, now)))
                left = [c.started + c.timeout_s - now for c in self._calls.values()]
                watching = self._watching = bool(self._calls) or self._started != seen
                seen = self._started
                if not watching:
                    self._wake.clear()
            for thread in fresh:
                thread.start()
            if watching:
                time.sleep(min([STOP_CHECK_S, *left]))
            else:
                self._wake.wait()

    def _carried_on(self, call: _Call, now: float) -> _Job:
        """``call``'s task, to carry on without it."""
        self.abandoned += 1
        error: Exception = (
            Stopped()
            if call.stop.is_set()
            else CallTimeout(f"the connector did not answer within {call.timeout_s:g}s")
        )
        job = call.job
        job.interrupted = Interrupted(
            job.calls, error, now - call.started, job.began or datetime.now(UTC)
        )
        return job
