"""A task on its connector: the retries, and a task carried on from an abandoned call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from connectors.calls import Interrupted
from connectors.errors import CallTimeout
from connectors.runner.execution import Executor
from streams.records import Kind, Task, TaskResult
from tests.connectors.fixtures import Scripted

SYSTEM = "scripted"


def executor(connector: Scripted, max_attempts: int = 3) -> Executor:
    return Executor(
        {SYSTEM: connector},
        max_attempts=max_attempts,
        backoff_initial_s=0.001,
        backoff_max_s=0.002,
        call_timeouts=None,
        heart=None,
    )


@pytest.fixture
def task() -> Task:
    return Task(
        request_id="req-1",
        task_id=Task.make_id("req-1", SYSTEM, Kind.DISCLOSURE),
        system=SYSTEM,
        kind=Kind.DISCLOSURE,
        identifiers={"email": "alice@example.com"},
    )


@pytest.fixture
def flaky() -> Scripted:
    return Scripted(SYSTEM, {"transient_failures": 2})


def run(ex: Executor, task: Task, interrupted: Interrupted | None = None) -> TaskResult:
    """``task`` executed on its system's lane, as the runner does."""
    try:
        return ex.lanes[SYSTEM].submit(lambda _: ex.execute(task, interrupted)).result(10)
    finally:
        ex.close()


def abandoned(calls: int) -> Interrupted:
    began = datetime.now(UTC) - timedelta(seconds=5)
    return Interrupted(calls, CallTimeout("the connector did not answer within 1s"), 1.0, began)


def test_retries_are_logged_and_counted_by_attempt(
    flaky: Scripted, task: Task, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dsr.runner"):
        result = run(executor(flaky, max_attempts=5), task)
    assert result.status == "ok" and result.attempts == 3 and len(flaky.calls) == 3
    retries = [r for r in caplog.records if r.getMessage() == "retrying"]
    assert [(r.attempt, r.max_attempts) for r in retries] == [(1, 5), (2, 5)]  # type: ignore[attr-defined]


def test_a_task_whose_call_was_abandoned_carries_on_with_its_next_attempt(task: Task) -> None:
    answers = Scripted(SYSTEM, {})
    interrupted = abandoned(calls=2)
    result = run(executor(answers, max_attempts=3), task, interrupted)
    assert result.status == "ok" and result.attempts == 3 and len(answers.calls) == 1
    assert result.started_at == interrupted.began  # the task's time, not the last attempt's


def test_a_task_whose_last_attempt_was_abandoned_fails_without_another_call(task: Task) -> None:
    answers = Scripted(SYSTEM, {})
    result = run(executor(answers, max_attempts=3), task, abandoned(calls=3))
    assert not answers.calls
    assert result.status == "failed" and result.error_code == "retries_exhausted"
    assert result.attempts == 3 and result.retriable
    assert "did not answer within 1s" in (result.error or "")


def test_retries_run_out_at_max_attempts(task: Task) -> None:
    always = Scripted(SYSTEM, {"transient_failures": 100})
    result = run(executor(always, max_attempts=3), task)
    assert len(always.calls) == 3 and result.attempts == 3
    assert result.error_code == "retries_exhausted" and result.error == "the system is busy"
