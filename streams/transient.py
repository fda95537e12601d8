"""Ledger operations run again when they fail for a transient reason: a PostgreSQL
fail-over (``again``); and a worker's batch handled again, for as long
as it takes, while the ledger, the broker or the package store is away (``patiently``)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from streams import parking

log = logging.getLogger("dsr.worker")

#: A ledger operation's later attempts, after its first failed for a transient reason:
#: 4 more at most, backing off.
_again = Retrying(
    retry=retry_if_exception(lambda exc: isinstance(exc, OperationalError) and not _locked(exc)),
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.05, max=2),
    reraise=True,
)
P = ParamSpec("P")
R = TypeVar("R")


def again(op: Callable[P, R]) -> Callable[P, R]:
    """``op``, run again by ``_again`` if it fails for a transient reason. Its first
    attempt runs bare: a retry policy's bookkeeping costs more than most operations.

    A SQLite lock that outlasted its busy wait is not tried again here: the wait was
    the retry, and more would hold the event loop (``patiently`` waits without it)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return op(*args, **kwargs)
        except OperationalError as exc:
            if _locked(exc):
                raise
            return _again(op, *args, **kwargs)

    return run


def _locked(exc: BaseException) -> bool:
    """Whether SQLite gave up waiting for another connection's lock."""
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


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
