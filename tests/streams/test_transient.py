"""Ledger operations run again while the ledger is transiently away."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from streams import transient

LOCKED = OperationalError("BEGIN", {}, Exception("database is locked"))


class _Locked:
    """A ledger operation that fails with ``error`` its first ``times`` calls."""

    def __init__(self, times: int, error: Exception = LOCKED) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return value


def test_a_ledger_operation_runs_again_while_the_ledger_is_locked() -> None:
    op = _Locked(times=2)
    assert transient.again(op)("done") == "done" and op.calls == 3


def test_a_ledger_operation_gives_up_after_five_attempts() -> None:
    op = _Locked(times=5)
    with pytest.raises(OperationalError):
        transient.again(op)("never")
    assert op.calls == 5


def test_a_fault_that_is_not_transient_is_not_run_again() -> None:
    op = _Locked(times=1, error=KeyError("not transient"))
    with pytest.raises(KeyError):
        transient.again(op)("never")
    assert op.calls == 1
