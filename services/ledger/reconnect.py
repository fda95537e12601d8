"""Surviving a database restart without a ping per transaction.

The pool hands out its connections unchecked (``pool_pre_ping`` would cost a round
trip every time) and renews them after ``RECYCLE_SECONDS``. A connection the server
dropped (a restart, a fail-over) fails its first statement instead: SQLAlchemy then
invalidates it and every pooled connection as old, and the operation runs once more
from the start, on a new connection. Each ledger operation is one short transaction,
idempotent (``services.ledger.store``), so running it again is safe.

A server whose host vanished (it died, or the network to it was cut) answers nothing,
not even a reset: without a limit, a statement would wait for TCP to give up, a quarter
of an hour, and the worker's event loop with it. ``CONNECT_OPTIONS`` give up on it in
seconds, and the operation fails like any other outage (``streams.transient``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

#: Older pooled connections are replaced before use (servers and proxies drop idle ones).
RECYCLE_SECONDS = 1800
#: libpq's options for a PostgreSQL ledger, where its URL does not set them: a new
#: connection is given 3 s; a connection is probed after 3 s of silence, and dropped
#: when 5 s pass with what was sent (a statement, a probe) unacknowledged. A statement
#: that runs long on a live server is not cut: the server's end still answers probes.
CONNECT_OPTIONS: dict[str, int] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 3,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}

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


def connect_options(url: str) -> dict[str, int]:
    """``CONNECT_OPTIONS`` that ``url`` does not set itself."""
    given = make_url(url).query
    return {name: value for name, value in CONNECT_OPTIONS.items() if name not in given}
