"""Carrying out one task on its system's connector, on a thread of the system's lane:
each call bounded in time (``connectors/calls.py``), a ``RetriableError`` retried with
exponential backoff and jitter (a system's ``retry_after`` honoured up to
``MAX_RETRY_AFTER_S``), and exactly one ``TaskResult`` whatever happened. Never raises
for a connector's failure."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from connectors.base import ConnectorBase
from connectors.calls import Abandoned, Interrupted, Lane, Stopped
from connectors.dispatch import dispatch, ok_result, task_result
from connectors.errors import ConnectorError, RetriableError
from connectors.results import OperationResult
from services import monitoring
from services.heartbeat import Heart
from streams.records import Task, TaskResult, utcnow

log = logging.getLogger("dsr.runner")

#: How long one connector call may take before it is abandoned and retried
#: (``call_timeout_seconds`` per system in the data map).
DEFAULT_CALL_TIMEOUT_S = 60.0

#: A connector's retry_after is honoured up to this; a longer wait is better spent
#: failing the task and letting the request complete without that system.
MAX_RETRY_AFTER_S = 60.0


class _Stopping(Exception):
    """The runner was told to stop while waiting to retry; the task will run again."""


class Executor:
    """Runs tasks on the hosted systems' connectors, on threads of each system's own."""

    def __init__(
        self,
        connectors: Mapping[str, ConnectorBase[Any]],
        *,
        max_attempts: int,
        backoff_initial_s: float,
        backoff_max_s: float,
        call_timeouts: Mapping[str, float] | None,
        heart: Heart | None,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        self.connectors = dict(connectors)
        self.max_attempts = max_attempts
        # Exponential backoff (initial, 2x, 4x ... up to the max), plus up to `initial` of jitter.
        self._backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s) + (
            wait_random(0, backoff_initial_s)
        )
        #: How many of a system's calls run at once (``concurrency`` in the data map).
        self.concurrency = {s: (concurrency or {}).get(s, 1) for s in self.connectors}
        #: Each system's threads: ``execute`` runs on them (``ConnectorRunner`` submits).
        self.lanes = {
            system: Lane(f"lane-{system}", self.concurrency[system]) for system in self.connectors
        }
        #: Seconds one call of a system may take (``call_timeout_seconds`` in the data map).
        self.call_timeouts = dict(call_timeouts or {})
        self.heart = heart
        #: Set when the runner stops: a wait to retry ends, and the task runs again later.
        self.stop = threading.Event()

    def execute(self, task: Task, interrupted: Interrupted | None = None) -> TaskResult:
        """Run ``task`` on its connector, with retries, on a thread of its system's lane;
        never raises for a connector failure. ``interrupted``: the task carries on from
        a call of its that was abandoned (its attempt failed with the call's error)."""
        started = interrupted.began if interrupted else utcnow()
        ctx = {
            "request_id": task.request_id,
            "stage": "connector",
            "system": task.system,
            "kind": str(task.kind),
        }
        connector = self.connectors.get(task.system)
        if connector is None:
            log.error("task for a system this runner does not host", extra=ctx)
            error = f"this runner does not host system {task.system!r}"
            return _failed(task, started, error, "unknown_system", 0)
        attempts = _Attempts(self, task, connector, ctx, interrupted)
        abandoned = False
        try:
            outcome = attempts.run()
        except Abandoned:
            abandoned = True  # the task went on, on another thread, which holds it now
            raise
        except _Stopping:
            raise
        except RetriableError as exc:
            result = _failed(
                task, started, str(exc), "retries_exhausted", attempts.made, retriable=True
            )
        except ConnectorError as exc:
            result = _failed(task, started, str(exc), exc.code, attempts.made)
        except Exception as exc:
            # The message of an unexpected exception may hold data: report its type only.
            error = f"unexpected {type(exc).__name__} in the connector"
            result = _failed(task, started, error, "internal_error", attempts.made)
        else:
            try:
                result = _result(task, outcome, started, attempts.made)
            except ValidationError as exc:
                # what was wrong, never the values (they may be personal data)
                wrong = "; ".join(e["msg"] for e in exc.errors(include_url=False))
                error = f"the connector returned a malformed OperationResult: {wrong}"
                result = _failed(task, started, error, "internal_error", attempts.made)
        finally:
            if self.heart and not abandoned:
                self.heart.done(task.task_id)
        log.log(
            logging.DEBUG if result.status == "ok" else logging.WARNING,
            "task done" if result.status == "ok" else "task failed",
            extra={
                **ctx,
                "status": result.status,
                "error_code": result.error_code,
                "attempts": attempts.made,
                **({"error": result.error} if result.error else {}),
            },
        )
        monitoring.record_task_result(result)
        return result

    def wait_after(self, state: RetryCallState, done: int) -> float:
        """The wait after attempt ``done + state.attempt_number``."""
        shifted = copy.copy(state)
        shifted.attempt_number += done
        delay = float(self._backoff(shifted))
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None:
            return delay
        # Honour the system's Retry-After, up to a cap (see MAX_RETRY_AFTER_S).
        return max(delay, min(float(retry_after), MAX_RETRY_AFTER_S))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raise ``_Stopping`` if the runner is told to stop meanwhile."""
        if self.stop.wait(seconds):
            raise _Stopping

    def close(self) -> None:
        """Finish the tasks queued, and stop each system's threads."""
        for lane in self.lanes.values():
            lane.close()


class _Attempts:
    """A task's attempts on its connector: one call each, a ``RetriableError`` retried
    with backoff. A task carried on from an abandoned call has made its attempts up to
    that one, which failed with the call's error."""

    def __init__(
        self,
        executor: Executor,
        task: Task,
        connector: ConnectorBase[Any],
        ctx: dict[str, Any],
        interrupted: Interrupted | None,
    ) -> None:
        self.executor, self.task, self.connector, self.ctx = executor, task, connector, ctx
        #: Attempts made so far.
        self.made = interrupted.calls if interrupted else 0
        #: The last attempt's error, while it is to be retried.
        self.failed: Exception | None = interrupted.error if interrupted else None
        if interrupted is not None:
            monitoring.record_connector_call(task.system, task.kind, interrupted.seconds)

    def run(self) -> OperationResult:
        """The connector's outcome; raises the last attempt's error."""
        if isinstance(self.failed, Stopped):
            raise _Stopping
        if self.failed is None:
            try:
                return self.attempt()  # most tasks: one attempt, no retry loop
            except RetriableError as exc:
                self.failed = exc
        # The retry loop's first attempt is the failed one (raising its error again):
        # its backoff, its log line and its count are the loop's.
        done = self.made - 1
        ex = self.executor
        return Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_after_attempt(ex.max_attempts - done),
            wait=lambda state: ex.wait_after(state, done),
            sleep=ex.sleep,
            before_sleep=self.before_sleep,
            reraise=True,
        )(self.attempt)

    def attempt(self) -> OperationResult:
        """The next attempt; in a retry loop, first the failed one again."""
        if self.failed is not None:
            error, self.failed = self.failed, None
            raise error
        self.made += 1
        ex, task = self.executor, self.task
        if ex.heart:
            ex.heart.working(task.task_id, task.system, self.made)
        with monitoring.observe_connector_call(task.system, task.kind):
            return ex.lanes[task.system].call(
                lambda: dispatch(self.connector, task),
                ex.call_timeouts.get(task.system, DEFAULT_CALL_TIMEOUT_S),
                ex.stop,
            )

    def before_sleep(self, state: RetryCallState) -> None:
        monitoring.record_retry(self.task.system)
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            extra={
                **self.ctx,
                "attempt": self.made,
                "max_attempts": self.executor.max_attempts,
                "delay_s": round(state.upcoming_sleep, 3),
                "error": str(error)[:500] if error else None,
            },
        )


def _result(task: Task, outcome: OperationResult, started: datetime, attempts: int) -> TaskResult:
    """The task's result; a dry run's outcome for a task to carry out is a failure: the
    principal must never be told of changes that were only planned."""
    if outcome.dry_run and not task.dry_run:
        error = "the connector returned a dry run's result for a task to carry out"
        return _failed(task, started, error, "internal_error", attempts)
    return ok_result(task, outcome, started, attempts)


def _failed(
    task: Task, started: datetime, error: str, code: str, attempts: int, *, retriable: bool = False
) -> TaskResult:
    return task_result(
        task,
        started,
        attempts,
        status="failed",
        error=error,
        error_code=code,
        retriable=retriable,
    )
