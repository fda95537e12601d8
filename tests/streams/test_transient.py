"""Ledger operations run again while the ledger is transiently away, and a worker's batch
waits, for as long as it takes, while the ledger or the broker is away."""

from __future__ import annotations

import asyncio

import pytest
from kafka.errors import KafkaConnectionError
from sqlalchemy.exc import OperationalError

from services.delivery.storage import StorageUnavailable
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


def test_a_slow_failure_is_not_run_again_on_the_event_loop() -> None:
    """A lock's busy wait or a vanished host's time-out ran out: the batch waits instead
    (``patiently``), without holding the loop for more of the same."""
    calls, now = 0, 0.0

    def timed_out(value: str) -> str:
        nonlocal calls, now
        calls += 1
        now += transient.SLOW_FAILURE_S  # the driver's own wait, running out
        raise LOCKED

    with pytest.raises(OperationalError):
        transient.again(timed_out, clock=lambda: now)("never")
    assert calls == 1


def test_a_fault_that_is_not_transient_is_not_run_again() -> None:
    op = _Locked(times=1, error=KeyError("not transient"))
    with pytest.raises(KeyError):
        transient.again(op)("never")
    assert op.calls == 1


class _Away:
    """A batch's attempt that fails with ``error`` its first ``times`` calls; and the
    pauses taken between them."""

    def __init__(self, times: int, error: Exception = LOCKED) -> None:
        self.times, self.error, self.calls = times, error, 0
        self.pauses: list[float] = []
        self.waited: list[tuple[str, str]] = []

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "sent"

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def wait(self, stage: str, exc: BaseException) -> None:
        self.waited.append((stage, type(exc).__name__))

    def patiently(self) -> str:
        return asyncio.run(transient.patiently("intake", self, self.wait, self.sleep))


def test_a_batch_waits_while_the_ledger_is_away_however_long() -> None:
    away = _Away(times=9, error=OperationalError("SELECT", {}, ConnectionRefusedError()))
    assert away.patiently() == "sent" and away.calls == 10
    assert away.pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]
    assert away.waited == [("intake", "OperationalError")] * 9


def test_a_batch_waits_while_the_broker_is_away() -> None:
    away = _Away(times=2, error=KafkaConnectionError())
    assert away.patiently() == "sent" and away.waited == [("intake", "KafkaConnectionError")] * 2


def test_a_batch_that_fails_for_its_own_reason_is_not_tried_again() -> None:
    away = _Away(times=1, error=KeyError("the events' own"))
    with pytest.raises(KeyError):
        away.patiently()
    assert away.calls == 1 and away.pauses == [] and away.waited == []


@pytest.mark.parametrize(
    "error",
    [LOCKED, KafkaConnectionError(), StorageUnavailable("put failed after 5 attempts", attempts=5)],
)
def test_a_timers_work_is_skipped_while_the_infrastructure_is_away(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Raised out of a timer it would stop the worker: it is logged, and the next run
    tries again (tests/integration/test_storage_outage.py)."""
    done = []
    with transient.skipped("time-outs", "sweep"):
        done.append("began")
        raise error
    assert done == ["began"]
    [record] = caplog.records
    assert record.getMessage() == "time-outs skipped: infrastructure away"
    assert record.__dict__["error_code"] == type(error).__name__


def test_a_timers_own_fault_is_not_skipped() -> None:
    with pytest.raises(KeyError), transient.skipped("sweep", "sweep"):
        raise KeyError("a bug")
