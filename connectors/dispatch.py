"""From a task to a connector call, and from what it returned to the task's result: the
runner's side of the connector contract (``connectors.base``). ``dispatch`` is the one
place that maps a request kind to a connector method."""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from connectors.base import METHODS, Connector, ConnectorBase, Identifiers
from connectors.lookups import lookups, merge
from connectors.loop import run_coroutines
from connectors.results import CheckResult, OperationResult
from streams.records import HOLDS_DATA, Kind, Reason, Task, TaskResult, answered_by


def task_result(task: Task, started: datetime, attempts: int, **outcome: Any) -> TaskResult:
    """A result for ``task``: its identity, timing and attempts, plus ``outcome``."""
    return TaskResult(
        request_id=task.request_id,
        task_id=task.task_id,
        system=task.system,
        kind=task.kind,
        attempts=attempts,
        started_at=started,
        **outcome,
    )


def ok_result(
    task: Task, outcome: OperationResult, started: datetime, attempts: int = 1
) -> TaskResult:
    """The task's result, from what its operation returned (a dry run says so)."""
    withheld = outcome.withheld
    return task_result(
        task,
        started,
        attempts,
        status="ok",
        records=outcome.records,
        changed=outcome.changed,
        kept=outcome.kept,
        pending_purge=outcome.pending_purge,
        fields=outcome.fields,
        details={**outcome.details, **({"dry_run": True} if outcome.dry_run else {})},
        correction=outcome.correction,
        identities=outcome.units(),
        refusal=(
            Reason(
                code=withheld.code,
                message=withheld.reason,
                message_ja=withheld.reason_ja,
                system=task.system,
            )
            if withheld
            else None
        ),
    )


#: The task ``dispatch`` is running, for a blocking connector that keeps its own trail.
_current_task: ContextVar[Task | None] = ContextVar("dsr_current_task", default=None)


def current_request_id() -> str | None:
    """The request whose task a blocking connector is answering; None outside ``dispatch``."""
    task = _current_task.get()
    return task.request_id if task is not None else None


def dispatch(connector: ConnectorBase[Any], task: Task) -> OperationResult:
    """Run ``task`` on ``connector``: the one place that maps a kind to a method.

    An async connector's coroutines run on the event loop of ``connectors.loop``,
    in a thread of its own; the caller's thread waits for the result.
    """
    asked = _operation(task, connector)
    if not connector.supports(asked):
        raise connector._not_supported(asked)
    token = _current_task.set(task)
    try:
        calls = [call(connector, task, ids) for ids in lookups(task)]
    finally:
        _current_task.reset(token)
    result = merge(calls) if isinstance(connector, Connector) else merge(run_coroutines(calls))
    if task.lookup:
        # the resolve phase: who the principal is here, never what is held
        return OperationResult(
            details={HOLDS_DATA: bool(result.records), "records": len(result.records)},
            identities=result.units(),
        )
    if task.kind is Kind.PURPOSE_NOTIFICATION:
        # only whether the system holds data: no record leaves the runner
        return OperationResult(details={HOLDS_DATA: bool(result.records)})
    return result


def _operation(task: Task, connector: ConnectorBase[Any]) -> Kind:
    """The kind of operation ``task`` asks of ``connector``: a lookup is a read."""
    if task.lookup:
        return Kind.DISCLOSURE
    asked = answered_by(task.kind)
    return next((k for k in asked if connector.supports(k)), asked[0])


def check(connector: ConnectorBase[Any]) -> CheckResult:
    """``connector.check()``, awaited on the connectors' loop for an async connector."""
    result = connector.check()
    if isinstance(result, CheckResult):
        return result
    return run_coroutines([_awaited(result)])[0]


async def _awaited(value: Awaitable[CheckResult]) -> CheckResult:
    return await value


def call(connector: ConnectorBase[Any], task: Task, ids: Identifiers) -> Any:
    """Call the operation for ``task.kind``: a result, or a coroutine for an async one."""
    kind = _operation(task, connector)
    method = getattr(connector, METHODS[kind])
    if kind is Kind.CORRECTION:
        return method(ids, task.changes, dry_run=task.dry_run)
    if kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS):
        return method(ids)
    return method(ids, grounds=task.grounds, dry_run=task.dry_run)
