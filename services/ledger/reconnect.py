"""Surviving a database restart without a ping per transaction.

The pool hands out its connections unchecked (``pool_pre_ping`` would cost a round
trip every time) and renews them after ``RECYCLE_SECONDS``. A connection the server
dropped (a restart, a fail-over) fails its first statement instead: SQLAlchemy then
invalidates it and every pooled connection as old, and the operation runs once more
from the start, on a new connection. Each ledger operation is one short transaction,
idempotent (``services.ledger.store``), so running it again is safe.

A server whose host vanished answers nothing, not even a reset: its connections carry
the options a SQL system's do (``connectors.sql.engine.POSTGRES_OPTIONS``), which give
up on it in seconds, and the operation fails like any other outage
(``streams.transient``), where it held the worker's event loop for a quarter of an hour.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError

#: Older pooled connections are replaced before use (servers and proxies drop idle ones).
RECYCLE_SECONDS = 1800

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)


def retried(op: Callable[P, R]) -> Callable[P, R]:
    """``op``, run again once if its connection turned out to be dead."""

    @functools.wraps(op)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return op(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return op(*args, **kwargs)

    return run


def reconnecting(cls: C) -> C:
    """``cls`` with each of its public methods ``retried``."""
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, retried(member))
    return cls
