"""Ledger operations run again when they fail for a transient reason: a locked SQLite
file, a PostgreSQL fail-over."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

#: A ledger operation's later attempts, after its first failed for a transient reason:
#: 4 more at most, backing off.
_again = Retrying(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.05, max=2),
    reraise=True,
)
P = ParamSpec("P")
R = TypeVar("R")


def again(op: Callable[P, R]) -> Callable[P, R]:
    """``op``, run again by ``_again`` if it fails for a transient reason. Its first
    attempt runs bare: a retry policy's bookkeeping costs more than most operations."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return op(*args, **kwargs)
        except OperationalError:
            return _again(op, *args, **kwargs)

    return run
