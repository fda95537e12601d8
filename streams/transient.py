"""Ledger operations run again when they fail for a transient reason: a PostgreSQL
fail-over (``again``); and a worker's batch handled again, for as long
as it takes, while the ledger, the broker or the package store is away (``patiently``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from streams import parking

log = logging.getLogger("dsr.worker")

#: A failure that took this long (seconds) is not tried again on the event loop: the
#: wait was the retry (a SQLite lock's busy wait, a vanished host's time-out), and more
#: would stop the loop beating; ``patiently`` waits without holding it.
SLOW_FAILURE_S = 1.0
#: A ledger operation's later attempts, after its first failed quickly for a transient
#: reason: 4 more at most, backing off, none started after ``SLOW_FAILURE_S``.
_again = Retrying(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(4) | stop_before_delay(SLOW_FAILURE_S),
    wait=wait_random_exponential(multiplier=0.05, max=0.4),
    reraise=True,
)
P = ParamSpec("P")
R = TypeVar("R")


def again(op: Callable[P, R], clock: Callable[[], float] = time.monotonic) -> Callable[P, R]:
    """``op``, run again by ``_again`` if it fails quickly (by ``clock``) for a transient
    reason (a PostgreSQL fail-over, a lock lost to another writer). Its first attempt
    runs bare: a retry policy's bookkeeping costs more than most operations."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        started = clock()
        try:
            return op(*args, **kwargs)
        except OperationalError:
            if clock() - started >= SLOW_FAILURE_S:
                raise
            return _again(op, *args, **kwargs)

    return run


#: Pauses between a batch's attempts while the infrastructure is away: the first, then
#: doubling up to the last.
FIRST_PAUSE_S, LAST_PAUSE_S = 0.2, 5.0


async def patiently(
    stage: str,
    attempt: Callable[[], Awaitable[R]],
    waited: Callable[[str, BaseException], object] = lambda stage, exc: None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> R:
    """``attempt()``; while it fails for a transient reason (``parking.is_transient``: the
    ledger, the broker or the package store away, not the events), again after a pause,
    until it succeeds. Its events are never dead-lettered, nor their requests parked, for
    an outage: the batch waits, unacknowledged, and the event loop goes on (heartbeats,
    timers). ``waited`` is told of each failed attempt."""
    pause = FIRST_PAUSE_S
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not parking.is_transient(exc):
                raise
            waited(stage, exc)
            log.warning(
                "infrastructure away: the batch waits",
                extra={"stage": stage, "error_code": type(exc).__name__, "pause_s": pause},
            )
        await sleep(pause)
        pause = min(pause * 2, LAST_PAUSE_S)


@contextmanager
def skipped(what: str, stage: str) -> Iterator[None]:
    """A timer's work (``what``), skipped until the timer's next run while the ledger,
    the broker or the package store is away (``parking.is_transient``). Raised out of
    the timer, the error would stop the worker, and every agent with it."""
    try:
        yield
    except Exception as exc:
        if not parking.is_transient(exc):
            raise
        log.warning(
            "%s skipped: infrastructure away",
            what,
            extra={"stage": stage, "error_code": type(exc).__name__},
        )
